"""One look for every figure, and saving figures as PNG and SVG."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from ..core.files import write_atomic
from ..core.timings import timed

PALETTE = "colorblind"


def theme() -> None:
    """Apply the ipkit seaborn theme (white grid, colour-blind palette, readable fonts)."""
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    matplotlib.rcParams.update(
        {"figure.dpi": 100, "savefig.bbox": "tight", "axes.titleweight": "bold", "svg.hashsalt": "ipkit"}
    )


@timed("plot", "savefig")
def savefig(fig, stem: Path) -> Path:
    """Write ``fig`` to ``stem.png`` (150 dpi) and ``stem.svg``, each atomically; return the PNG path."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    png = write_atomic(
        stem.with_suffix(".png"), lambda tmp: fig.savefig(tmp, format="png", dpi=150, metadata={"Software": None})
    )
    write_atomic(stem.with_suffix(".svg"), lambda tmp: fig.savefig(tmp, format="svg", metadata={"Date": None}))
    return png


def strip(ax, **kwargs):
    """``seaborn.stripplot`` on ``ax`` with its jitter drawn from a fixed seed (seaborn draws
    it from NumPy's global generator), so a figure does not depend on what ran before it."""
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


VERDICT_COLORS = {
    "holds": "#029e73",
    "does not hold": "#d55e00",
    "inconclusive": "#949494",
    "untestable here": "#56b4e9",
}


def sweep_verdicts(table, title: str = ""):
    """One panel per claim of a sweep summary: the deciding quantity per setting with its
    interval as error bars, coloured by verdict, and the claim's threshold dashed."""
    import matplotlib.pyplot as plt

    rows = table[table["claim"] != ""]
    claims = list(dict.fromkeys(rows["claim"]))
    names = list(dict.fromkeys(table["setting"]))
    cols = max(1, min(3, len(claims)))
    nrows = max(1, -(-len(claims) // cols))
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    x = np.arange(len(names))
    for ax, claim in zip(axes.flat, claims):
        part = rows[rows["claim"] == claim].set_index("setting").reindex(names)
        value = part["value"].to_numpy(float)
        low = np.nan_to_num(value - part["ci_lo"].to_numpy(float))
        high = np.nan_to_num(part["ci_hi"].to_numpy(float) - value)
        for verdict, color in VERDICT_COLORS.items():
            m = (part["verdict"] == verdict).to_numpy()
            if m.any():
                ax.errorbar(x[m], value[m], yerr=[low[m], high[m]], fmt="o", color=color, capsize=3, label=verdict)
        if part["threshold"].notna().any():
            ax.plot(x, part["threshold"].to_numpy(float), "k--", lw=1, label="threshold")
        ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
        ax.set_xlim(-0.5, len(names) - 0.5)
        ax.set_title(claim)
    for ax in axes.flat[len(claims) :]:
        ax.axis("off")
    handles = {h.get_label(): h for ax in axes.flat for h in ax.get_legend_handles_labels()[0]}
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles.values(), handles.keys(), loc="lower center", ncol=len(handles), frameon=False)
    return fig


def integer_axis(ax, which: str = "x") -> None:
    """Put ticks on whole numbers only, labelled plainly, on ``ax``'s ``which`` axis ("x" or
    "y"), for a count such as input pairs or queries; on a log axis at 1, 2 and 5 x 10^k."""
    from matplotlib import ticker

    if which not in ("x", "y"):
        raise ValueError(f"which must be 'x' or 'y', got {which!r}")
    axis = ax.xaxis if which == "x" else ax.yaxis
    if axis.get_scale() == "log":
        axis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(ticker.NullFormatter())
    else:
        axis.set_major_locator(ticker.MaxNLocator(integer=True))
    axis.set_major_formatter(ticker.StrMethodFormatter("{x:.0f}"))
