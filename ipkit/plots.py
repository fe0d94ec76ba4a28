"""One look for every figure, and saving figures as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import matplotlib

PALETTE = "colorblind"


def theme() -> None:
    """Apply the ipkit seaborn theme (white grid, colour-blind palette, readable fonts) and
    seed NumPy's global generator, which seaborn draws strip-plot jitter from, so that a
    rerun draws the same figures."""
    import numpy as np
    import seaborn as sns

    np.random.seed(0)
    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.bbox": "tight",
                                "axes.titleweight": "bold", "svg.hashsalt": "ipkit"})


def savefig(fig, stem: Path) -> Path:
    """Write ``fig`` to ``stem.png`` (150 dpi) and ``stem.svg``; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = stem.with_suffix(".png")
    fig.savefig(png, dpi=150, metadata={"Software": None})
    fig.savefig(stem.with_suffix(".svg"), metadata={"Date": None})
    return png


def bars(frame, x: str, y: str, hue: str, title: str = "", ylim: tuple[float, float] = (0, 1.05)):
    """A grouped bar chart of ``y`` by ``x`` and ``hue``: mean with the std as error bars."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=frame, x=x, y=y, hue=hue, errorbar="sd", ax=ax, capsize=0.1)
    ax.set(ylim=ylim, xlabel="", ylabel=y, title=title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig
