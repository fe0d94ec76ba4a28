"""Explore sections: controls bound to cheap recomputation from cached models.

:func:`explore` shows one panel: the controls, a one-line status and the figure the function
draws. It draws the starting values once, so a headless run (papermill, nbmake) draws the
default view and never waits for input. The figures of the last :data:`KEEP_DRAWN` settings
are kept, so going back to a setting already drawn shows it at once (``fn`` is expected to
draw the same figure for the same values). A redraw replaces the figure and leaves nothing else
in the panel: progress bars are off while the function runs, and the old figure stays until
the new one is ready, with "computing ..." in the status line meanwhile.

The panel's output also carries the first figure as PNG and the controls' values as text,
the static fallback that a reader without a kernel sees (nbconvert, GitHub, an untrusted
notebook, :func:`ipkit.notebook.publish.strip`). Heavy work behind a control is cached by the caller
(see :mod:`ipkit.methods.cache`).
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import traceback
from collections.abc import Callable, Iterator
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
_SHOWN: list[Panel] = []  # the panel :func:`explore` showed last (see :func:`last_panel`)
KEEP_DRAWN = 32  # settings whose figures a panel keeps for an instant redraw


def explore(fn: Callable[..., Any], **controls: Any) -> None:
    """Show one Explore panel binding ``fn``'s keyword arguments to ``controls``, drawn once.

    Each control is an ipywidgets widget, or a list (dropdown) or tuple (slider range), as
    with ``ipywidgets.interactive``. Updates happen when a slider is released, not while it
    moves. Displays the panel and returns None, so a cell ending with ``explore(...)`` shows
    it once. Without ipywidgets, ``fn`` is called once with the first values.
    """
    try:
        import ipywidgets  # noqa: F401  (only: is it installed?)
        from IPython.display import display
    except ImportError:
        fn(**{k: _first(v) for k, v in controls.items()})
        return
    panel = Panel(fn, controls)
    _SHOWN[:] = [panel]
    handle = display(panel.bundle(), raw=True, display_id=True)
    panel.draw(raise_errors=True)
    if handle is not None:
        handle.update(panel.bundle(), raw=True)


def last_panel() -> Panel:
    """The Explore panel this kernel showed last (the redraw benchmark,
    :func:`ipkit.orchestrate.bench.redraw`, times its :meth:`Panel.draw`)."""
    if not _SHOWN:
        raise LookupError("no Explore panel has been shown in this kernel")
    return _SHOWN[0]


class Panel:
    """One Explore panel: ``fn``'s controls, a status line and the output ``fn`` draws into.

    Changing a control's value redraws (:meth:`draw`); :meth:`bundle` is what the notebook
    shows: the widget view, and after the first draw its figure as PNG and the controls'
    values as text for readers without a kernel.
    """

    def __init__(self, fn: Callable[..., Any], controls: dict[str, Any]):
        import ipywidgets as w

        self.fn = fn
        self.controls = {name: _control(name, c) for name, c in controls.items()}
        self.status = w.Label(value="")
        self.out = w.Output()
        self.view = w.VBox([*self.controls.values(), self.status, self.out])
        self.png: bytes | None = None
        self.drawn: dict[tuple, list[bytes]] = {}  # settings already drawn, oldest first
        for c in self.controls.values():
            c.observe(lambda _change: self.draw(), names="value")

    def values(self) -> dict[str, Any]:
        """The controls' current values, by ``fn``'s argument names."""
        return {name: c.value for name, c in self.controls.items()}

    def describe(self) -> str:
        """The controls' values as one line, e.g. ``queries = 810, method = 'probs'``."""
        return ", ".join(f"{name} = {value!r}" for name, value in self.values().items())

    def draw(self, raise_errors: bool = False) -> bytes | None:
        """Run ``fn`` with the controls' values (or take the figures of a setting already
        drawn) and show them in place of the last figure; return the first as PNG (kept as
        the fallback after the first draw).

        The figures are set as the Output widget's outputs (its state), not captured with
        ``with out:``: a headless client (papermill, nbmake) then sees only widget-state
        messages, never output redirected by message id, which left such runs waiting
        forever on the cell here. An error is shown in the panel, or raised with
        ``raise_errors`` (the first draw, so a headless run fails on it).
        """
        key = tuple(self.values().items())
        self.status.value = f"computing {self.describe()} ..."
        try:
            pngs = self.drawn.pop(key) if key in self.drawn else _figures_as_png(self.fn, self.values())
        except Exception as err:
            if raise_errors:
                raise
            self.out.outputs = (
                {"output_type": "stream", "name": "stderr", "text": "".join(traceback.format_exception(err))},
            )
            return None
        finally:
            self.status.value = ""
        self.drawn[key] = pngs
        while len(self.drawn) > KEEP_DRAWN:
            self.drawn.pop(next(iter(self.drawn)))
        self.out.outputs = tuple(
            {
                "output_type": "display_data",
                "metadata": {},
                "data": {"image/png": base64.b64encode(png).decode("ascii"), "text/plain": "<figure>"},
            }
            for png in pngs
        )
        if self.png is None and pngs:
            self.png = pngs[0]
        return pngs[0] if pngs else None

    def bundle(self) -> dict[str, Any]:
        """The panel's display data: the widget view, the controls' values as text, and the
        first figure as PNG once drawn."""
        data = {WIDGET_VIEW: self.view._repr_mimebundle_()[WIDGET_VIEW], "text/plain": f"Explore: {self.describe()}"}
        if self.png is not None:
            data["image/png"] = base64.b64encode(self.png).decode("ascii")
        return data


def _control(name: str, abbrev: Any):
    """The widget for one control (a widget, or an ``interactive`` abbreviation), updating on
    release and labelled with ``name`` when it has no description."""
    import ipywidgets as w

    c = w.interactive.widget_from_abbrev(abbrev)
    if c is None:
        raise ValueError(f"control '{name}': {abbrev!r} is not a widget, list or tuple")
    if hasattr(c, "continuous_update"):
        c.continuous_update = False
    if not c.description:
        c.description = name
    return c


def _figures_as_png(fn: Callable[..., Any], kwargs: dict[str, Any]) -> list[bytes]:
    """Call ``fn(**kwargs)`` with progress bars off; return the figures it opened (or
    returned) as PNG and close them, so none is drawn again when the cell ends."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = set(plt.get_fignums())
    with _progress_off():
        result = fn(**kwargs)
    figs = [plt.figure(n) for n in plt.get_fignums() if n not in before]
    if isinstance(result, Figure) and result not in figs:
        figs.append(result)
    pngs = []
    for fig in figs:
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight")
        pngs.append(buf.getvalue())
        plt.close(fig)
    return pngs


@contextlib.contextmanager
def _progress_off() -> Iterator[None]:
    """Silence :func:`ipkit.methods.train.progress` (``IPKIT_QUIET=1``) for the duration."""
    old = os.environ.get("IPKIT_QUIET")
    os.environ["IPKIT_QUIET"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["IPKIT_QUIET"]
        else:
            os.environ["IPKIT_QUIET"] = old


def _first(v: Any) -> Any:
    if hasattr(v, "value"):
        return v.value
    if isinstance(v, list):
        return v[0]
    if isinstance(v, tuple):
        return v[0]
    return v


def slider(value: float, lo: float, hi: float, step: float, description: str):
    """A float or int slider (int when every bound is an int) that updates on release."""
    import ipywidgets as w

    cls = w.IntSlider if all(isinstance(v, int) for v in (value, lo, hi, step)) else w.FloatSlider
    return cls(
        value=value,
        min=lo,
        max=hi,
        step=step,
        description=description,
        continuous_update=False,
        style={"description_width": "initial"},
    )


def dropdown(options: list, value: Any, description: str):
    """A dropdown of ``options`` starting at ``value``."""
    import ipywidgets as w

    return w.Dropdown(options=options, value=value, description=description, style={"description_width": "initial"})
