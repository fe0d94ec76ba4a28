"""'What would make it hold' sweeps (ipkit.evidence.sensitivity, `ipkit sweep --sensitivity`)."""

import json
import sys
import types

import pandas as pd
import pytest

from ipkit import cli
from ipkit.core.paths import repo_root
from ipkit.evidence import results, sensitivity
from ipkit.evidence.sensitivity import Sweep
from ipkit.notebook.registry import get_study, study_module
from ipkit.notebook.runtime import publish_folder
from ipkit.orchestrate import sweep
from ipkit.studies import quickstart

STUDIES = ["quickstart", "memorized_transfer", "uq_stealing", "distillation_ingrain", "modeldiff", "ondevice_unpairing"]


def summary_frame(rows):
    return pd.DataFrame(
        [
            {
                "setting": s,
                "x": s.split("=")[1],
                "claim": c,
                "verdict": v,
                "value": x,
                "ci_lo": lo,
                "ci_hi": hi,
                "threshold": 0.5,
                "measured": "",
            }
            for s, c, v, x, lo, hi in rows
        ]
    )


def test_finding_names_each_setting_and_where_it_holds():
    sw = Sweep(("T1",), {"x": [1, 2]}, "the x knob", {"seeds": [0]})
    table = summary_frame(
        [
            ("x=1", "T1", "does not hold", 0.2, 0.1, 0.3),
            ("x=2", "T1", "holds", 0.7, 0.6, 0.8),
            ("x=2", "T2", "holds", 1, 1, 1),
        ]
    )
    text = sensitivity.finding(table, "T1", sw)
    assert text.startswith("T1 along the x knob (seeds=[0]): x=1 0.2 [0.1, 0.3] does not hold; ")
    assert "x=2 0.7 [0.6, 0.8] holds against threshold 0.5: it holds at x=2." in text


def test_finding_says_when_it_holds_nowhere_and_which_settings_failed():
    sw = Sweep(("T1",), {"x": [1, 2]}, "x")
    table = summary_frame([("x=1", "T1", "inconclusive", 0.5, 0.4, 0.6)])
    table = pd.concat(
        [
            table,
            pd.DataFrame(
                [{"setting": "x=2", "x": "2", "claim": "", "verdict": "run failed", "measured": "cell 3: ValueError"}]
            ),
        ]
    )
    text = sensitivity.finding(table, "T1", sw)
    assert "it holds at none of these settings; x=2 failed." in text
    assert "no setting" in sensitivity.finding(table, "T9", sw)


def test_grid_pairs_join_list_values_with_semicolons():
    sw = Sweep(("A",), {"seeds": [[0, 1], [2]], "eps": [0.1, 0.2]}, "w")
    assert sensitivity.grid_pairs(sw) == ["seeds=0,1;2", "eps=0.1,0.2"]
    assert sw.id == "sensitivity-seeds+eps"
    assert sw.table == "sweeps/sensitivity-seeds+eps/summary.md"


@pytest.mark.parametrize("sid", STUDIES)
def test_declared_sweeps_validate_and_name_the_claims_left_open(sid):
    """Every declared sweep's settings resolve in the default profile; every claim of the
    committed default results that does not hold has a sensitivity sweep or an
    alternatives sweep that speaks to it."""
    info = get_study(sid)
    swept = set()
    for sw in sensitivity.declared(study_module(sid)) + sensitivity.declared(study_module(sid), "alternatives"):
        sweep.validate(info, "default", sweep.settings(sweep.parse_grid(info, sensitivity.grid_pairs(sw)), sw.fixed))
        swept |= set(sw.claims)
    data = json.loads((repo_root() / "figures" / sid / "default" / "results.json").read_text())
    ids = {c["id"] for c in data["claims"]}
    assert swept <= ids, f"{sid} declares sweeps for unknown claims {sorted(swept - ids)}"
    open_rows = {c["id"] for c in data["claims"] if c["verdict"] != "holds"}
    assert open_rows - swept == set()


def _tiny(monkeypatch, **declared) -> types.ModuleType:
    """A study module ``ipkit.studies.tiny`` declaring ``declared`` (its SENSITIVITY,
    ALTERNATIVES), found by the registry for the length of the test."""
    module = types.ModuleType("ipkit.studies.tiny")
    for name, sweeps in declared.items():
        setattr(module, name, sweeps)
    monkeypatch.setitem(sys.modules, "ipkit.studies.tiny", module)
    return module


def _profile(folder, claims=("T1", "T2")):
    folder.mkdir(parents=True)
    data = {
        "study": "tiny",
        "title": "Tiny",
        "profile": "smoke",
        "date": "d",
        "device": "cpu",
        "runtime_s": 1.0,
        "claims": [
            {
                "id": c,
                "statement": "s",
                "paper": "p",
                "measured": "m",
                "holds": True,
                "verdict": "holds",
                "ci": [0, 1],
                "threshold": 0.5,
                "n": 3,
                "unit": "seed",
            }
            for c in claims
        ],
    }
    (folder / "results.json").write_text(json.dumps(data))
    return folder


def test_attach_names_the_table_and_stores_the_findings(tmp_path, monkeypatch):
    sw = Sweep(("T1",), {"x": [1, 2]}, "the x knob")
    tiny = _tiny(monkeypatch, SENSITIVITY=(sw,))
    folder = _profile(tmp_path / "tiny" / "smoke")
    assert not sensitivity.attach(tiny, folder)  # nothing drawn yet
    (folder / "sweeps" / sw.id).mkdir(parents=True)
    summary_frame([("x=1", "T1", "holds", 0.7, 0.6, 0.8)]).to_csv(
        folder / "sweeps" / sw.id / "summary.csv", index=False
    )
    assert sensitivity.attach(tiny, folder)
    data = json.loads((folder / "results.json").read_text())
    assert data["claims"][0]["sensitivity"] == sw.table
    assert "sensitivity" not in data["claims"][1]
    assert data["sensitivity"][0]["text"].endswith("it holds at x=1.")
    assert "## What would make it hold" in (folder / "results.md").read_text()


def test_attach_records_the_verdict_at_each_alternative_and_whether_it_is_robust(tmp_path, monkeypatch):
    alt = Sweep(("T1", "T2"), {"x": [1, 2, 3]}, "x, chosen after a trial", kind="alternatives")
    tiny = _tiny(monkeypatch, ALTERNATIVES=(alt,))
    folder = _profile(tmp_path / "tiny" / "smoke")
    (folder / "sweeps" / alt.id).mkdir(parents=True)
    summary_frame(
        [
            ("x=2", "T1", "holds", 0.7, 0.6, 0.8),
            ("x=3", "T1", "holds", 0.7, 0.6, 0.8),
            ("x=2", "T2", "holds", 0.7, 0.6, 0.8),
            ("x=3", "T2", "inconclusive", 0.5, 0.4, 0.6),
        ]
    ).to_csv(folder / "sweeps" / alt.id / "summary.csv", index=False)
    assert alt.id == "alternatives-x"
    assert sensitivity.attach(tiny, folder)
    t1, t2 = json.loads((folder / "results.json").read_text())["claims"]
    assert t1["alternatives"] == {"x=2": "holds", "x=3": "holds"}
    assert t1["robust"] is True
    assert t2["alternatives"]["x=3"] == "inconclusive"
    assert t2["robust"] is False
    assert "x=3 0.5 [0.4, 0.6] inconclusive" in (folder / "results.md").read_text()
    assert "(not robust)" in results.claims_markdown([t2])


def test_attach_forgets_a_sweep_that_is_no_longer_drawn(tmp_path, monkeypatch):
    sw = Sweep(("T1",), {"x": [1, 2]}, "the x knob")
    tiny = _tiny(monkeypatch, SENSITIVITY=(sw,))
    folder = _profile(tmp_path / "tiny" / "smoke")
    (folder / "sweeps" / sw.id).mkdir(parents=True)
    summary_frame([("x=1", "T1", "holds", 0.7, 0.6, 0.8)]).to_csv(
        folder / "sweeps" / sw.id / "summary.csv", index=False
    )
    assert sensitivity.attach(tiny, folder)
    (folder / "sweeps" / sw.id / "summary.csv").unlink()  # removed: drawn under a former protocol
    assert sensitivity.attach(tiny, folder)
    data = json.loads((folder / "results.json").read_text())
    assert "sensitivity" not in data
    assert all("sensitivity" not in c for c in data["claims"])
    assert not sensitivity.attach(tiny, folder)  # nothing left to update


def test_publishing_a_run_keeps_the_sweeps_and_renames_their_table(tmp_path, monkeypatch):
    sw = Sweep(("T2",), {"x": [1]}, "x")
    _tiny(monkeypatch, SENSITIVITY=(sw,))
    target = _profile(tmp_path / "figures" / "tiny" / "smoke")
    (target / "sweeps" / sw.id).mkdir(parents=True)
    summary_frame([("x=1", "T2", "holds", 0.7, 0.6, 0.8)]).to_csv(
        target / "sweeps" / sw.id / "summary.csv", index=False
    )
    new_run = _profile(tmp_path / "run")
    publish_folder(new_run, target)
    assert (target / "sweeps" / sw.id / "summary.csv").is_file()
    assert json.loads((target / "results.json").read_text())["claims"][1]["sensitivity"] == sw.table


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "quickstart", "--sensitivity", "-p", "epochs=1,2"], "leave out -p"),
        (["sweep", "quickstart", "--sensitivity", "--seeds-sets", "0;1"], "leave out -p and --seeds-sets"),
        (["sweep", "quickstart", "--sensitivity", "--id", "x"], "is none of quickstart's sensitivity sweeps"),
    ],
)
def test_sensitivity_flag_rejects_a_grid(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err


def test_a_study_without_declared_sweeps_is_named(capsys, monkeypatch):
    monkeypatch.setattr(quickstart, "SENSITIVITY", ())
    assert cli.main(["sweep", "quickstart", "--sensitivity"]) == 2
    assert "declares no sensitivity sweeps" in capsys.readouterr().err


TINY_PARAMETERS = 'profile = "default"  # {@profiles} run size\nvalue = 1.0  # [0, 10] measured\n'
TINY_BODY = """import pandas as pd
from ipkit.evidence import results, sensitivity
from ipkit.notebook.runtime import start
PROFILES = {"smoke": {}}
run = start("tiny", globals(), PROFILES)
part = results.part("value", pd.DataFrame({"seed": [0, 1, 2], "x": [value] * 3}), lambda f: f.x.mean(),
                        threshold=0.5, holds_when="above", unit="seed")
claim = results.claim("T1", "value above 0.5", "-", part, quantifier="direction", paper_words="")
run.record({"value": value}, [claim])
sensitivity.show(run)
"""


@pytest.mark.slow
def test_sensitivity_sweep_end_to_end(tiny_study, monkeypatch):
    """`ipkit run tiny`, then `ipkit sweep tiny --sensitivity`: the summary, the claim's
    table and finding in the profile's results.json; a later run keeps both."""
    tmp_path = tiny_study(TINY_PARAMETERS, TINY_BODY)
    tiny = _tiny(monkeypatch, SENSITIVITY=(Sweep(("T1",), {"value": [0.2, 1.0]}, "the measured value"),))
    assert cli.main(["run", "tiny", "--profile", "smoke", "-p", "value=0.2"]) == 0
    assert cli.main(["sweep", "tiny", "--profile", "smoke", "--sensitivity"]) == 0
    folder = tmp_path / "figures" / "tiny" / "smoke"
    assert (folder / "sweeps" / "sensitivity-value" / "summary.png").is_file()
    data = json.loads((folder / "results.json").read_text())
    results.check_results(data)
    assert data["claims"][0]["sensitivity"] == "sweeps/sensitivity-value/summary.md"
    assert "value=0.2 0.2 [0.2, 0.2] does not hold" in data["sensitivity"][0]["text"]
    assert "it holds at value=1.0" in data["sensitivity"][0]["text"]
    assert cli.main(["run", "tiny", "--profile", "smoke", "-p", "value=0.2"]) == 0
    assert json.loads((folder / "results.json").read_text())["claims"][0]["sensitivity"]
    text = sensitivity.report(tiny, "smoke", folder)
    assert (
        "it holds at value=1.0. Its default point (value=1.0) differs from the committed row. "
        "Table: `sweeps/sensitivity-value/summary.md`."
    ) in text
    pending = sensitivity.report(tiny, "default", tmp_path)
    assert "not swept in profile `default` yet" in pending
    assert "`ipkit sweep tiny --sensitivity --id sensitivity-value --profile default` draws it" in pending
    assert data["sensitivity"][0]["default_point"] == "differs"  # committed at 0.2, default 1.0
    assert cli.main(["run", "tiny", "--profile", "smoke"]) == 0  # now committed at the default
    found = json.loads((folder / "results.json").read_text())["sensitivity"][0]
    assert found["default_point"] == "reproduces"
    assert found["text"].endswith("Its default point (value=1.0) reproduces the committed row.")


def test_default_point_compares_verdict_and_measured_text():
    frame = summary_frame([("x=1", "T1", "holds", 0.7, 0.6, 0.8), ("x=2", "T1", "holds", 0.9, 0.8, 1.0)])
    frame["measured"] = ["a = 0.7 [0.6, 0.8]", "a = 0.9 [0.8, 1]"]
    frame["default"] = [False, True]
    row = {"verdict": "holds", "measured": "a = 0.9 [0.8, 1]"}
    assert sensitivity.default_point(frame, row, "T1") == "reproduces"
    assert sensitivity.default_point(frame, {**row, "measured": "a = 0.901 [0.8, 1]"}, "T1") == "differs"
    assert sensitivity.default_point(frame, {**row, "verdict": "inconclusive"}, "T1") == "differs"
    assert sensitivity.default_point(frame, row, "T2") is None  # the sweep never produced T2
    assert sensitivity.default_point(frame.drop(columns="default"), row, "T1") is None  # drawn before the column


@pytest.mark.slow
def test_alternatives_sweep_runs_each_alternative_but_the_default(tiny_study, monkeypatch):
    """`ipkit sweep tiny --alternatives`: only the non-default value runs; the claim row
    records its verdict there and that it is not robust."""
    tmp_path = tiny_study(TINY_PARAMETERS, TINY_BODY)
    _tiny(monkeypatch, ALTERNATIVES=(Sweep(("T1",), {"value": [1.0, 0.2]}, "value, chosen after a trial"),))
    assert cli.main(["run", "tiny", "--profile", "smoke"]) == 0
    assert cli.main(["sweep", "tiny", "--profile", "smoke", "--alternatives"]) == 0
    folder = tmp_path / "figures" / "tiny" / "smoke"
    assert sorted(p.name for p in (folder / "sweeps" / "alternatives-value").iterdir() if p.is_dir()) == ["value=0.2"]
    row = json.loads((folder / "results.json").read_text())["claims"][0]
    assert row["verdict"] == "holds"
    assert row["alternatives"] == {"value=0.2": "does not hold"}
    assert row["robust"] is False
