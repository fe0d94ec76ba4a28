"""ipkit: rerun the findings of model intellectual-property papers in notebooks.

Layers, each importing only from those below it (``docs/architecture.md``;
``tests/test_layers.py`` checks it):

- ``ipkit.core``: paths, atomic file writing, seed roles, bootstrap statistics, timings;
- ``ipkit.methods``: the paper-agnostic methods (data, models, training, the model cache,
  watermarks, stealing, attacks, similarity, uncertainty, compression, unpairing);
- ``ipkit.evidence``: claim rows and their verdicts, the results file, stability records,
  sensitivity findings;
- ``ipkit.notebook``: what a notebook works with (parameters, the study registry,
  ``Run`` / ``start``, publishing, plots, widgets);
- ``ipkit.studies``: one module per paper;
- ``ipkit.orchestrate``: runs of notebooks (parallel, sweeps, verify, bench);
- ``ipkit.cli``: the ``ipkit`` command.
"""

__version__ = "0.1.0"
