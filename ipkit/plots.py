"""One look for every figure, and saving figures as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

from .timings import timed

PALETTE = "colorblind"


def theme() -> None:
    """Apply the ipkit seaborn theme (white grid, colour-blind palette, readable fonts)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight",
                                "axes.titleweight": "bold", "svg.hashsalt": "ipkit"})


@timed("plot", "savefig")
def savefig(fig, stem: Path) -> Path:
    """Write ``fig`` to ``stem.png`` (150 dpi) and ``stem.svg``, each atomically; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    from .results import write_atomic

    png = write_atomic(stem.with_suffix(".png"),
                       lambda tmp: fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None}))
    write_atomic(stem.with_suffix(".svg"), lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    return png


def strip(ax, **kwargs):
    """``seaborn.stripplot`` on ``ax`` with its jitter drawn from a fixed seed (seaborn draws
    it from NumPy's global generator), so a figure does not depend on what ran before it."""
    import numpy as np
    import seaborn as sns

    state = np.random.get_state()
    np.random.seed(0)
    try:
        return sns.stripplot(ax=ax, **kwargs)
    finally:
        np.random.set_state(state)


def bars(frame, x: str, y: str, hue: str, title: str = "", ylim: tuple[float, float] = (0, 1.05)):
    """A grouped bar chart of ``y`` by ``x`` and ``hue``: mean with the std as error bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=frame, x=x, y=y, hue=hue, errorbar="sd", ax=ax, capsize=0.1)
    ax.set(ylim=ylim, xlabel="", ylabel=y, title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig
