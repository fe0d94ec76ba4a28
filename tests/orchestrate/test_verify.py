"""`ipkit verify` (ipkit.orchestrate.verify): committed verdicts against a rerun with other seeds."""

import json

import pytest

from ipkit import cli
from ipkit.evidence import stability
from ipkit.orchestrate import parallel, verify


def _doc(*rows):
    return {"claims": [{"id": i, "verdict": v, "holds": v == "holds", "ci": [0.1, 0.2]} for i, v in rows]}


def test_flip_is_only_between_holds_and_does_not_hold():
    rows = verify.compare(
        _doc(("A", "holds"), ("B", "holds"), ("C", "inconclusive"), ("D", "does not hold")),
        _doc(("A", "does not hold"), ("B", "inconclusive"), ("C", "holds"), ("D", "does not hold")),
    )
    assert [(r.id, r.flip, r.changed) for r in rows] == [
        ("A", True, True),
        ("B", False, True),
        ("C", False, True),
        ("D", False, False),
    ]


def test_verify_without_committed_results_exits_2(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_FIGURES", str(tmp_path))
    assert cli.main(["verify", "quickstart", "--profile", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "no committed results" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["verify", "nosuch"], "unknown study"),
        (["verify", "quickstart", "--seeds", "a,b"], "expects list[int]"),
        (["verify", "quickstart", "-p", "seeds=1"], "--seeds"),
        (["verify", "quickstart", "--profile", "huge"], "unknown profile"),
        (["verify", "quickstart", "--seeds", "1,2;1,2"], "seed set twice"),
        (["verify", "quickstart", "--seeds", ";"], "at least one seed set"),
        (["verify", "quickstart", "--jobs", "0"], "is not a positive whole number"),
        (["verify", "quickstart", "--threads", "0"], "is not a positive whole number"),
    ],
)
def test_verify_bad_input_exits_2(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_FIGURES", str(tmp_path))
    (tmp_path / "quickstart" / "smoke").mkdir(parents=True)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1


def _committed(tmp_path, monkeypatch, **fields):
    monkeypatch.setenv("IPKIT_FIGURES", str(tmp_path))
    folder = tmp_path / "quickstart" / "default"
    folder.mkdir(parents=True)
    doc = {"params": {"seeds": [0]}, "claims": [], "device": "cpu (x86_64, 1 threads)", **fields}
    (folder / "results.json").write_text(json.dumps(doc))


@pytest.mark.parametrize(
    "fields, argv, threads",
    [
        ({}, [], 1),  # a results.json from before the threads field
        ({"threads": 3}, [], 3),
        ({"threads": 3}, ["--threads", "2"], 2),  # given wins
        ({"device": "NVIDIA H100", "threads": None}, [], None),
    ],
)
def test_verify_reruns_with_the_committed_runs_threads(capsys, tmp_path, monkeypatch, fields, argv, threads):
    _committed(tmp_path, monkeypatch, **fields)
    seen = {}

    def fake(info, profile, sets, given, **dispatch):
        seen.update(dispatch)
        return tmp_path / "results.json", [([101], [])]

    monkeypatch.setattr(verify, "verify", fake)
    assert cli.main(["verify", "quickstart", "--profile", "default", "--seeds", "101", *argv]) == 0
    assert seen["threads"] == threads


def test_sensitivity_sweeps_run_with_the_committed_runs_threads(capsys, tmp_path, monkeypatch):
    _committed(tmp_path, monkeypatch)
    seen = []

    def interrupted(jobs, **options):
        seen.append(options["threads"])
        raise KeyboardInterrupt

    monkeypatch.setattr(parallel, "run_jobs", interrupted)
    assert cli.main(["sweep", "quickstart", "--profile", "default", "--sensitivity"]) == 130
    assert cli.main(["sweep", "quickstart", "--profile", "default", "-p", "query_budget=300,600"]) == 130
    assert seen == [1, None]  # a plain grid keeps this process's threads


@pytest.mark.slow
def test_verify_smoke_same_seeds_no_flip_then_planted_flip(capsys, tmp_path, monkeypatch):
    figures = tmp_path / "figures"
    monkeypatch.setenv("IPKIT_FIGURES", str(figures))
    # three seeds: with fewer trainings every verdict is capped at inconclusive
    assert cli.main(["run", "quickstart", "--profile", "smoke", "-p", "seeds=0,1,2"]) == 0
    path = figures / "quickstart" / "smoke" / "results.json"
    committed = json.loads(path.read_text())
    before = sorted(p.name for p in path.parent.iterdir())
    capsys.readouterr()
    assert cli.main(["verify", "quickstart", "--profile", "smoke", "--seeds", "0,1,2", "--record"]) == 0
    out = capsys.readouterr().out
    assert "0 flip(s)" in out
    assert "FLIP" not in out
    recorded = json.loads(path.read_text())["stability"]
    assert recorded["flips"] == 0
    assert recorded["runs"][0]["seeds"] == [0, 1, 2]
    # the committed seeds with the committed run's threads reproduce every interval
    assert all(c["rerun_ci"] == c["committed_ci"] for c in recorded["runs"][0]["claims"])
    decided = next(c for c in committed["claims"] if c["verdict"] in stability.DECIDED)
    planted = "holds" if decided["verdict"] == "does not hold" else "does not hold"
    decided.update(verdict=planted, holds=planted == "holds")
    path.write_text(json.dumps(committed))
    assert cli.main(["verify", "quickstart", "--profile", "smoke", "--seeds", "0,1,2"]) == 1
    out = capsys.readouterr().out
    assert f"{decided['id']}" in out
    assert "FLIP" in out
    assert "1 flip(s)" in out
    assert sorted(p.name for p in path.parent.iterdir()) == before


def test_a_failed_rerun_ends_verify_with_exit_1_and_its_reason(tmp_path, monkeypatch, capsys):
    """A rerun that fails (or Ray that fails) is reported in one line, exit 1, not a traceback."""
    _committed(tmp_path, monkeypatch)

    def failing(*args, **kwargs):
        raise RuntimeError("quickstart [seeds=101] failed in cell 7: ValueError: planted")

    monkeypatch.setattr(verify, "verify", failing)
    code = cli.main(["verify", "quickstart", "--seeds", "101"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.strip().endswith("failed in cell 7: ValueError: planted")
