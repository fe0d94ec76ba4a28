"""Timings: nested blocks split their seconds, cache hits and misses are counted by recipe,
and an executed notebook's cell durations add up per markdown section."""

import json
import os
import time

import torch

from ipkit.core import timings
from ipkit.methods import cache


def test_nested_blocks_count_whole_and_self_seconds():
    timings.reset()

    @timings.timed("train", "outer")
    def outer():
        with timings.timed("evaluate", "inner"):
            time.sleep(0.05)
        time.sleep(0.02)

    outer()
    outer()
    rows = {(r["kind"], r["name"]): r for r in timings.kinds()}
    out, inner = rows[("train", "outer")], rows[("evaluate", "inner")]
    assert out["count"] == 2
    assert inner["count"] == 2
    assert out["seconds"] >= inner["seconds"] >= 0.1
    assert abs(out["self_s"] - (out["seconds"] - inner["seconds"])) < 0.02
    timings.reset()
    assert timings.kinds() == []


def test_cache_counts_hits_and_misses_by_recipe(tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    timings.reset()
    make = lambda: ({"w": torch.ones(2)}, {})  # noqa: E731
    for _ in range(3):
        cache.cached("toy", {"a": 1}, make)
    rows = {(r["kind"], r["name"]): r["count"] for r in timings.kinds()}
    assert rows == {("cache miss", "toy"): 1, ("cache hit", "toy"): 2, ("train", "toy"): 1}


def _notebook(path, cells):
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))


def test_sections_add_cell_durations_under_each_heading(tmp_path):
    md = lambda text: {"cell_type": "markdown", "source": [text], "metadata": {}}  # noqa: E731
    code = lambda s: {"cell_type": "code", "source": [""], "metadata": {"papermill": {"duration": s}}}  # noqa: E731
    nb = tmp_path / "run.ipynb"
    _notebook(
        nb,
        [code(1.0), md("# Title\ntext"), code(2.0), code(0.5), md("no heading"), code(1.0), md("## Claims"), code(3.0)],
    )
    assert timings.sections(nb) == [
        {"section": "(before the first heading)", "cells": 1, "seconds": 1.0},
        {"section": "Title", "cells": 3, "seconds": 3.5},
        {"section": "Claims", "cells": 1, "seconds": 3.0},
    ]


def test_add_sections_keeps_this_runs_kinds_and_drops_an_older_runs(tmp_path):
    nb = tmp_path / "run.ipynb"
    _notebook(nb, [{"cell_type": "code", "source": [""], "metadata": {"papermill": {"duration": 2.0}}}])
    timings.reset()
    with timings.timed("plot", "savefig"):
        pass
    timings.write_kinds(tmp_path, "toy", "smoke")
    data = timings.add_sections(tmp_path, "toy", "smoke", nb, since=time.time() - 60)
    assert data["kinds"][0]["name"] == "savefig"
    assert data["sections"][0]["seconds"] == 2.0
    assert "| savefig |" in (tmp_path / "timings.md").read_text()
    os.utime(tmp_path / "timings.json", (0, 0))
    data = timings.add_sections(tmp_path, "toy", "smoke", nb, since=time.time() - 60)
    assert "kinds" not in data
