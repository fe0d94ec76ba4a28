"""The notebook runtime: what a study notebook works with.

``params`` (the parameter-comment format and value checks), ``registry`` (the study
notebooks, their profiles and modules, resolved values), ``runtime`` (``Run`` / ``start``
and publishing a run's folder), ``publish`` (executed notebooks readable without a kernel),
``plots`` and ``widgets`` (Explore panels). Imports the layers below: core, methods,
evidence.
"""
