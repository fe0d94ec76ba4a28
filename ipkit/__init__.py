"""ipkit: rerun the findings of model intellectual-property papers in notebooks.

Method modules, paper-agnostic, one job each: ``data``, ``models``, ``train``, ``cache``,
``recipes``, ``watermark``, ``ingrain`` (the ingrain watermark), ``steal``, ``transforms``,
``uncertainty``, ``similarity``, ``compression``, ``attacks``, ``stats`` (bootstrap
intervals), ``seeds`` (seed roles),
``results`` (evidence and claim rows), ``plots``, ``widgets``. Study modules, one per paper:
``ipkit.studies.<study_id>``. Running: ``study`` (parameters, profiles, the run context),
``verify``, ``parallel`` (notebook runs here or on Ray), ``sweep`` (grids of settings and
their claims), ``bench`` and ``cli`` (the ``ipkit`` command).
"""
__version__ = "0.1.0"

from .study import Run, start  # noqa: E402

__all__ = ["Run", "start", "__version__"]
