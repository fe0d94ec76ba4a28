"""Core: what every layer above may use, with no knowledge of models or studies.

``paths`` (the repository's folders and the user cache), ``files`` (atomic file writing:
JSON, tables), ``seeds`` (seed roles), ``stats`` (bootstrap intervals) and ``timings``
(seconds per kind of work). Imports nothing else from ipkit.
"""
