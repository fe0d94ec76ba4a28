"""Figures are reproducible: strip-plot jitter does not depend on the global RNG's state."""
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from ipkit import plots


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
