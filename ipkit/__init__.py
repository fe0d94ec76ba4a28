"""ipkit: rerun the findings of model intellectual-property papers in notebooks.

Modules, one job each: ``data`` (datasets and splits), ``models`` (architectures),
``train`` (the trainer), ``cache`` (trained-model store), ``recipes`` (cached owner,
independent and stolen models), ``watermark``, ``steal``, ``ingrain`` (the ingrain
defence), ``transforms``, ``uncertainty`` (UQ
surrogates), ``similarity`` (model-similarity measures), ``zoo`` (the reuse benchmark),
``compression`` (quantized and pruned siblings), ``attacks``, ``unpairing``, ``results``
(claim rows), ``plots``, ``widgets``, ``study`` (parameters, profiles and the run
context), ``bench`` and ``cli`` (the ``ipkit`` command); ``studies`` holds one module per
study.
"""
__version__ = "0.1.0"

from .study import Run, start  # noqa: E402

__all__ = ["Run", "start", "__version__"]
