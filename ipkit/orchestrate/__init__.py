"""Orchestration: running study notebooks and gathering their outcomes.

``parallel`` (notebook runs here or on Ray, then published), ``sweep`` (grids of settings
and their claims), ``verify`` (reruns with other seeds) and ``bench`` (trainer and redraw
timings). Used by :mod:`ipkit.cli`.
"""
