"""Methods: the paper-agnostic building blocks, one job per module.

``data`` (datasets and splits), ``models``, ``train``, ``cache`` (trained models on disk),
``recipes`` (cached trainings of the common models), ``transforms`` (fine-tuning, pruning,
quantization, ...), ``compression``, ``watermark``, ``ingrain`` (the ingrain watermark),
``steal``, ``attacks``, ``similarity``, ``uncertainty`` and ``unpairing``. They know no
study, claim or notebook; they import only :mod:`ipkit.core`.
"""
