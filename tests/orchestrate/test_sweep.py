"""Sweeps: grids of settings, the summary of claims across settings, and the parameters of
a rerun (ipkit.orchestrate.sweep)."""

import json

from ipkit.notebook.registry import get_study
from ipkit.orchestrate import sweep
from tests.helpers import QUICK


def test_rerun_keeps_the_committed_parameters_but_the_seeds():
    info = get_study("quickstart")
    committed = {"params": {"profile": "default", "query_budget": 800, "seeds": [0, 1], "gone": 3}}
    params = sweep.rerun_params(committed, info, [101], {"epochs": 2})
    assert params["query_budget"] == 800
    assert params["seeds"] == [101]
    assert params["epochs"] == 2
    assert "gone" not in params
    assert "profile" not in params


def test_grid_takes_list_sets_separated_by_semicolons():
    info = get_study(QUICK)
    grid = sweep.parse_grid(info, ["query_budget=300,500", "seeds=0,1;101,102"])
    assert grid == {"query_budget": [300, 500], "seeds": [[0, 1], [101, 102]]}
    names = [s.name for s in sweep.settings(grid)]
    assert names == [
        "query_budget=300__seeds=0-1",
        "query_budget=300__seeds=101-102",
        "query_budget=500__seeds=0-1",
        "query_budget=500__seeds=101-102",
    ]
    assert sweep.sweep_id(grid) == sweep.sweep_id(dict(grid)) != sweep.sweep_id({"query_budget": [300]})


def _results(folder, claims):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps({"claims": claims}))


def test_summary_reads_intervals_and_falls_back_to_holds(tmp_path):
    new = {
        "id": "Q1",
        "statement": "s",
        "paper": "p",
        "measured": "gap = 0.2",
        "holds": False,
        "verdict": "inconclusive",
        "ci": [0.05, 0.3],
        "threshold": 0.1,
        "n": 3,
        "unit": "seed",
        "parts": [{"name": "other", "value": 9.0, "ci": [8.0, 10.0]}, {"name": "gap", "value": 0.2, "ci": [0.05, 0.3]}],
    }
    old = {"id": "Q1", "statement": "s", "paper": "p", "measured": "thief_wm_acc = 0.125, floor = 0.1", "holds": True}
    grid = sweep.settings({"epochs": [1, 2, 3]})
    _results(tmp_path / grid[0].name, [new])
    _results(tmp_path / grid[1].name, [old])
    table = sweep.summary(grid, {s.name: tmp_path / s.name for s in grid}, {grid[2].name: "cell 4: ValueError: x"})
    rows = table.set_index("setting")
    assert rows.loc["epochs=1", ["verdict", "value", "ci_lo", "ci_hi", "threshold"]].tolist() == [
        "inconclusive",
        0.2,
        0.05,
        0.3,
        0.1,
    ]
    assert rows.loc["epochs=2", "verdict"] == "holds"
    assert rows.loc["epochs=2", "value"] == 0.125
    assert rows.loc["epochs=3", "verdict"] == "run failed"
    assert "ValueError" in rows.loc["epochs=3", "measured"]
    from ipkit.notebook import plots

    assert len(plots.sweep_verdicts(table).axes) >= 1
