"""Figures are reproducible: strip-plot jitter does not depend on the global RNG's state."""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ipkit.notebook import plots


def _strip_offsets(frame: pd.DataFrame) -> np.ndarray:
    fig, ax = plt.subplots()
    plots.strip(ax, data=frame, x="group", y="value")
    offsets = np.asarray(ax.collections[0].get_offsets()).copy()
    plt.close(fig)
    return offsets


def test_strip_jitter_is_fixed_and_leaves_the_global_rng_alone():
    frame = pd.DataFrame({"group": ["a"] * 30, "value": np.arange(30.0)})
    np.random.seed(1)
    first = _strip_offsets(frame)
    np.random.seed(2)
    expected_next = np.random.rand()
    np.random.seed(2)
    second = _strip_offsets(frame)
    assert np.array_equal(first, second)
    assert np.ptp(first[:, 0]) > 0
    assert np.random.rand() == expected_next


def _tick_labels(ax, which):
    ax.figure.canvas.draw()
    axis = ax.xaxis if which == "x" else ax.yaxis
    lo, hi = sorted(ax.get_xlim() if which == "x" else ax.get_ylim())
    ticks = zip(axis.get_majorticklocs(), (t.get_text() for t in axis.get_majorticklabels()))
    return [(loc, label) for loc, label in ticks if lo <= loc <= hi]


def test_integer_axis_ticks_only_whole_counts():
    fig, (bars, curve) = plt.subplots(2, 1, figsize=(8, 6))
    bars.bar(range(3), [1, 2, 3], width=1.0)
    assert any(loc % 1 for loc, _ in _tick_labels(bars, "x")), "matplotlib's default has fractions"
    plots.integer_axis(bars, "x")
    curve.plot([5, 10, 20, 50, 100], [0.4, 0.5, 0.55, 0.6, 0.64])
    curve.set_xscale("log")
    plots.integer_axis(curve, "x")
    for ax in (bars, curve):
        ticks = _tick_labels(ax, "x")
        assert len(ticks) >= 3
        assert all(loc % 1 == 0 and label == f"{loc:.0f}" for loc, label in ticks)
    plt.close(fig)
