"""Evidence: what a run's numbers say about a paper's claims.

``results`` (claim rows, their verdicts and the results file), ``stability`` (how verdicts
fared in reruns with other seeds) and ``sensitivity`` (the declared sweeps that could
decide an open claim, and their findings). Imports :mod:`ipkit.core` and
:mod:`ipkit.methods` only.
"""
