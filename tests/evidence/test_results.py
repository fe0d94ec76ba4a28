"""Claims and verdicts: how a claim combines its parts, not-measured evidence, and the
results.json schema (ipkit.evidence.results)."""

import json
import math

import numpy as np
import pandas as pd
import pytest

from ipkit.core import stats
from ipkit.evidence import results
from tests.helpers import _fake_run


@pytest.mark.parametrize(
    "ci, side, expected",
    [
        ((0.3, 0.5), "above", "holds"),
        ((0.05, 0.15), "above", "does not hold"),
        ((0.1, 0.3), "above", "inconclusive"),
        ((0.0, 0.1), "below", "holds"),
        ((0.25, 0.4), "below", "does not hold"),
        ((0.1, 0.25), "below", "inconclusive"),
        ((math.nan, math.nan), "above", "inconclusive"),
    ],
)
def test_verdict_reads_the_whole_interval(ci, side, expected):
    assert results.verdict(ci, 0.2, side) == expected


def _part(ci, threshold=0.2, side="above", name="q", trainings=3, ceiling=None):
    return results.Evidence(name, sum(ci) / 2, ci, threshold, side, 10, "carrier", trainings, ceiling)


def _claim(*parts, quantifier="every"):
    return results.claim("X", "s", "p", *parts, quantifier=quantifier, paper_words="the paper's words")


def test_claim_holds_only_when_every_part_holds_and_reports_the_deciding_part():
    good, weak, bad = _part((0.5, 0.7), name="a"), _part((0.1, 0.3), name="b"), _part((0.0, 0.1), name="c")
    assert _claim(good).verdict == "holds"
    mixed = _claim(good, weak)
    assert mixed.verdict == "inconclusive"
    assert mixed.ci == [0.1, 0.3]
    assert not mixed.holds
    failed = _claim(good, weak, bad)
    assert failed.verdict == "does not hold"
    assert failed.ci == [0.0, 0.1]
    assert [p["verdict"] for p in failed.parts] == ["holds", "inconclusive", "does not hold"]


def test_part_counts_units_and_seeds():
    frame = pd.DataFrame({"seed": np.repeat([0, 1], 30), "hit": np.tile([1, 1, 0], 20)})
    e = results.part("rate", frame, stats.mean_of("hit"), threshold=0.5, holds_when="above", unit="carrier")
    assert e.n == 60
    assert e.unit == "carriers over 2 seeds"
    assert e.trainings == 2
    assert e.value == pytest.approx(2 / 3)
    assert e.ci[0] <= e.value <= e.ci[1]


def test_part_keeps_a_given_ceiling_and_training_count():
    frame = pd.DataFrame({"seed": np.repeat([0, 1, 2], 10), "hit": np.tile([1, 0], 15)})
    e = results.part(
        "rate", frame, stats.mean_of("hit"), threshold=0.9, holds_when="above", unit="carrier", ceiling=0.8, trainings=5
    )
    assert e.trainings == 5
    assert e.verdict == "untestable here"


def test_part_of_an_empty_frame_is_not_measured_with_its_reason():
    empty = pd.DataFrame({"seed": [], "hit": []})
    e = results.part(
        "rate", empty, stats.mean_of("hit"), threshold=0.5, holds_when="above", unit="carrier", empty="method not run"
    )
    assert e.name == "rate (method not run)"
    assert (e.n, e.trainings) == (0, 0)
    assert math.isnan(e.value)
    assert e.verdict == "inconclusive"
    c = results.claim("X", "s", "p", e, quantifier="direction", paper_words="")
    assert c.why == "not measured: rate (method not run)"


@pytest.mark.parametrize(
    "make",
    [
        lambda: results.part(
            "rate", pd.DataFrame({"hit": [1.0]}), stats.mean_of("hit"), threshold=0.5, holds_when="over", unit="carrier"
        ),
        lambda: results.not_measured("rate", threshold=0.5, holds_when="over", unit="carrier"),
    ],
)
def test_part_and_not_measured_refuse_an_unknown_side(make):
    with pytest.raises(ValueError, match="holds_when"):
        make()


def test_a_not_measured_part_keeps_a_decided_claim_from_holding():
    c = _claim(
        _part((0.5, 0.7)),
        results.not_measured("gap", threshold=0.1, holds_when="below", unit="carrier", why="no ood carriers"),
    )
    assert c.verdict == "inconclusive"
    assert c.trainings == 0
    assert [p["verdict"] for p in c.parts] == ["holds", "inconclusive"]


def test_schema_rejects_a_holds_that_disagrees_with_the_verdict():
    row = results.claim_dict(_claim(_part((0.5, 0.7))))
    data = {
        "schema_version": results.SCHEMA_VERSION,
        "threads": 1,
        "study": "s",
        "title": "t",
        "profile": "smoke",
        "date": "d",
        "ipkit": "0",
        "device": "cpu",
        "torch": "2",
        "runtime_s": 1.0,
        "params": {},
        "metrics": {},
        "claims": [row],
        "figures": [],
        "tables": [],
    }
    results.check_results(data)
    with pytest.raises(ValueError, match="holds must be true exactly"):
        results.check_results(dict(data, claims=[dict(row, holds=False)]))
    with pytest.raises(ValueError, match="verdict"):
        results.check_results(dict(data, claims=[dict(row, verdict="maybe", holds=False)]))
    with pytest.raises(ValueError, match="quantifier"):
        results.check_results(dict(data, claims=[dict(row, quantifier="mostly")]))
    with pytest.raises(ValueError, match="missing keys"):
        results.check_results(dict(data, claims=[{k: v for k, v in row.items() if k != "trainings"}]))


def test_a_claim_takes_every_part_at_the_familywise_level():
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({"seed": np.repeat([0, 1, 2], 30), "x": rng.normal(1, 1, 90)})
    part = results.part("x", frame, stats.mean_of("x"), threshold=0, holds_when="above", unit="carrier")
    one, three = _claim(part), _claim(part, part, part)
    assert one.level == 0.95
    assert three.level == pytest.approx(1 - 0.05 / 3)
    assert three.ci[0] < one.ci[0] < one.ci[1] < three.ci[1]  # simultaneous intervals are wider
    assert one.trainings == 3
    assert results.claim_dict(three)["parts"][0]["trainings"] == 3


@pytest.mark.parametrize("trainings, expected", [(1, "inconclusive"), (2, "inconclusive"), (3, "holds")])
def test_fewer_than_three_trainings_cap_a_decided_verdict(trainings, expected):
    c = _claim(_part((0.5, 0.7), trainings=trainings))
    assert c.verdict == expected
    assert c.trainings == trainings
    assert (c.why is not None) == (trainings < 3)
    if c.why:
        assert c.why.startswith(f"{trainings} training")
        assert "uncapped: holds" in c.why
    failed = _claim(_part((0.0, 0.1), trainings=trainings))
    assert failed.verdict == ("does not hold" if trainings >= 3 else "inconclusive")


def test_a_threshold_beyond_the_ceiling_is_untestable_here_not_a_failure():
    beyond = _part((0.0, 0.1), threshold=0.5, ceiling=0.4)  # nothing here can reach 0.5
    reachable = _part((0.0, 0.1), threshold=0.5, ceiling=0.9)
    assert beyond.verdict == "untestable here"
    assert reachable.verdict == "does not hold"
    c = _claim(_part((0.6, 0.7)), beyond)
    assert c.verdict == "untestable here"
    assert not c.holds
    assert c.ceiling == 0.4
    assert "0.4" in c.why
    assert _claim(beyond, _part((0.0, 0.1))).verdict == "does not hold"  # a testable part decides
    below = _part((0.3, 0.4), threshold=0.1, side="below", ceiling=0.2)  # cannot go below 0.2
    assert below.verdict == "untestable here"
    assert "untestable here" in results.claims_markdown([results.claim_dict(c)])


def test_claim_checks_its_quantifier_and_not_measured_is_inconclusive():
    with pytest.raises(ValueError, match="quantifier"):
        _claim(_part((0.5, 0.7)), quantifier="mostly")
    c = _claim(
        _part((0.5, 0.7)),
        results.not_measured("gap", threshold=0.1, holds_when="below", unit="carrier", why="no ood carriers"),
    )
    assert c.verdict == "inconclusive"
    assert "no ood carriers" in c.measured
    assert c.n == 0
    assert c.why == "not measured: gap (no ood carriers)"


def test_results_json_follows_schema(tmp_path, monkeypatch):
    _, path = _fake_run(tmp_path, monkeypatch)
    data = json.loads(path.read_text())
    results.check_results(data)
    row = data["claims"][0]
    assert row["holds"] is True
    assert row["verdict"] == "holds"
    assert row["measured"].startswith("rate = 0.75 [")
    assert row["ci"][0] < 0.75 < row["ci"][1]
    assert row["n"] == 120
    assert row["trainings"] == 3
    assert row["threshold"] == 0.2
    assert data["figures"] == ["line"]
    assert (path.parent / "line.png").exists()
    bad = dict(data, claims=[dict(data["claims"][0], holds="yes")])
    with pytest.raises(ValueError):
        results.check_results(bad)


def test_claim_needs_evidence_not_a_typed_verdict():
    with pytest.raises(TypeError):
        results.claim("X", "s", "p", 1.0, "yes")


def test_recorded_threads_read_the_field_or_a_version_0_files_device_line():
    assert results.recorded_threads({"threads": 4, "device": "cpu (x86_64, 1 threads)"}) == 4
    assert results.recorded_threads({"device": "cpu (x86_64, 2 threads)"}) == 2
    assert results.recorded_threads({"schema_version": 1, "threads": None, "device": "cpu (x86_64, 2 threads)"}) is None
    assert results.recorded_threads({"device": "NVIDIA H200", "threads": None}) is None
    assert results.recorded_threads({}) is None


def test_results_json_states_its_schema_version_and_newer_ones_are_refused(tmp_path, monkeypatch):
    _, path = _fake_run(tmp_path, monkeypatch)
    data = json.loads(path.read_text())
    assert data["schema_version"] == results.SCHEMA_VERSION == 1
    with pytest.raises(ValueError, match="lacks 'threads'"):
        results.check_results({k: v for k, v in data.items() if k != "threads"})
    with pytest.raises(ValueError, match="update ipkit"):
        results.check_results(dict(data, schema_version=2))
    with pytest.raises(ValueError, match="`ipkit report` upgrades it"):
        results.check_results({k: v for k, v in data.items() if k != "schema_version"})
