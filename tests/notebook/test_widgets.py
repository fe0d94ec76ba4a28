"""Explore panels (ipkit.notebook.widgets): one panel per call, the figure as the only thing a redraw
leaves, a status line while computing, and a static fallback for readers without a kernel."""

import time

import matplotlib.pyplot as plt
import pytest

from ipkit.methods import train
from ipkit.notebook import widgets

WIDGET_VIEW = widgets.WIDGET_VIEW


def _bars(seen):
    def draw(bars: int = 2, style: str = "a"):
        seen.append((bars, train.quiet()))
        fig, ax = plt.subplots(figsize=(2, 1.5))
        ax.bar(range(bars), range(1, bars + 1))

    return draw


def test_redraw_shows_the_new_figure_quickly_with_progress_off(monkeypatch):
    monkeypatch.delenv("IPKIT_QUIET", raising=False)
    monkeypatch.delenv("CI", raising=False)
    seen = []
    open_before = set(plt.get_fignums())  # figures other tests left open are not ours
    panel = widgets.Panel(_bars(seen), {"bars": widgets.slider(2, 1, 9, 1, "bars")})
    first = panel.draw()
    statuses = []
    panel.status.observe(lambda change: statuses.append(change["new"]), names="value")
    started = time.perf_counter()
    panel.controls["bars"].value = 5
    redraw_s = time.perf_counter() - started
    assert seen == [(2, True), (5, True)]
    assert not train.quiet()
    assert statuses == ["computing bars = 5 ...", ""]
    assert panel.png == first
    assert first.startswith(b"\x89PNG")
    assert set(plt.get_fignums()) <= open_before
    assert redraw_s < 1.0, f"one redraw of a cheap figure took {redraw_s:.2f} s"


def test_going_back_to_a_drawn_setting_shows_its_figure_without_calling_again(monkeypatch):
    monkeypatch.setattr(widgets, "KEEP_DRAWN", 2)
    seen = []
    panel = widgets.Panel(_bars(seen), {"bars": widgets.slider(2, 1, 9, 1, "bars")})
    two = panel.draw()
    panel.controls["bars"].value = 3
    panel.controls["bars"].value = 2
    assert [b for b, _ in seen] == [2, 3]
    assert panel.draw() == two
    panel.controls["bars"].value = 4  # keeps 2 settings: 3 is now the oldest and goes
    panel.controls["bars"].value = 3
    assert [b for b, _ in seen] == [2, 3, 4, 3]


def test_bundle_carries_the_first_figure_and_the_values_as_fallback():
    panel = widgets.Panel(_bars([]), {"bars": widgets.slider(3, 1, 9, 1, "bars"), "style": ["a", "b"]})
    before = panel.bundle()
    assert set(before) == {WIDGET_VIEW, "text/plain"}
    panel.draw()
    after = panel.bundle()
    assert after["text/plain"] == "Explore: bars = 3, style = 'a'"
    assert after[WIDGET_VIEW]["model_id"] == panel.view.model_id
    assert "image/png" in after


def test_first_draw_raises_a_callback_error():
    def broken(bars: int = 1):
        raise RuntimeError("no model")

    panel = widgets.Panel(broken, {"bars": widgets.slider(1, 1, 3, 1, "bars")})
    with pytest.raises(RuntimeError, match="no model"):
        panel.draw(raise_errors=True)
    assert panel.status.value == ""


def test_explore_in_a_kernel_leaves_one_panel_and_only_its_figure(explore_notebook):
    from nbclient import NotebookClient

    NotebookClient(explore_notebook, timeout=120, kernel_name="python3").execute()
    outputs = explore_notebook.cells[1].outputs
    assert len(outputs) == 1
    assert outputs[0].output_type == "display_data"
    data = outputs[0].data
    assert set(data) == {WIDGET_VIEW, "image/png", "text/plain"}
    assert data["text/plain"] == "Explore: bars = 2"
    state = explore_notebook.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
    captured = [m["state"]["outputs"] for m in state.values() if m["model_name"] == "OutputModel"]
    assert len(captured) == 1
    assert [set(o["data"]) for o in captured[0]] == [{"image/png", "text/plain"}]
    assert not any(m["model_name"] == "FloatProgressModel" for m in state.values())


@pytest.mark.slow
def test_redraw_bench_times_the_quickstart_panel(capsys):
    """`ipkit bench --what redraw --study quickstart` (smoke): a redraw of the setting
    already drawn within the goal, and the recomputed one timed beside it."""
    from ipkit import cli

    assert cli.main(["bench", "--what", "redraw", "--study", "quickstart"]) == 0
    out = capsys.readouterr().out
    assert "quickstart" in out
    assert "recomputed from cached models" in out
    assert "1 of 1 notebooks redraw within 1 s" in out


def test_redraw_bench_names_an_unknown_study(capsys):
    from ipkit import cli

    assert cli.main(["bench", "--what", "redraw", "--study", "nosuch"]) == 2
    assert "unknown study" in capsys.readouterr().err
