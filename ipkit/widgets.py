"""Explore sections: controls bound to cheap recomputation from cached models.

:func:`explore` shows the controls and runs the function once with their starting values,
so a headless run (papermill, nbmake) draws the default view and never waits for input.
Heavy work behind a control is cached by the caller (see :mod:`ipkit.cache`).
"""
from __future__ import annotations

from typing import Any, Callable


def explore(fn: Callable[..., Any], **controls: Any):
    """Bind ``fn``'s keyword arguments to widgets and show them with ``fn``'s output.

    Each control is an ipywidgets widget, or a list (dropdown) or tuple (slider range),
    as with ``ipywidgets.interactive``. Updates happen when a slider is released, not
    while it moves. Without ipywidgets, ``fn`` is called once with the first values.
    """
    try:
        import ipywidgets as w
        from IPython.display import display
    except ImportError:
        return fn(**{k: _first(v) for k, v in controls.items()})
    for c in controls.values():
        if isinstance(c, w.ValueWidget) and hasattr(c, "continuous_update"):
            c.continuous_update = False
    ui = w.interactive(fn, {"manual": False}, **controls)
    display(ui)
    return ui


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
    return cls(value=value, min=lo, max=hi, step=step, description=description,
               continuous_update=False, style={"description_width": "initial"})


def dropdown(options: list, value: Any, description: str):
    """A dropdown of ``options`` starting at ``value``."""
    import ipywidgets as w

    return w.Dropdown(options=options, value=value, description=description,
                      style={"description_width": "initial"})
