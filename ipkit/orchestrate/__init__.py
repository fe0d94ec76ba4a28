"""Orchestration: running study notebooks and gathering their outcomes.

``parallel`` (notebook runs here or on Ray, then published), ``sweep`` (grids of settings
and their claims), ``verify`` (reruns with other seeds), ``bench`` (trainer and redraw
timings) and ``site`` (the offline HTML gallery). Used by :mod:`ipkit.cli`.
"""
