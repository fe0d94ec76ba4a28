"""The bootstrap behind every claim interval, the three-valued verdict and how a claim
combines its parts (ipkit.core.stats, ipkit.evidence.results)."""

import math

import numpy as np
import pandas as pd
import pytest

from ipkit.core import stats
from ipkit.evidence import results


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    reps = 200
    for _ in range(reps):
        frame = pd.DataFrame({"x": rng.exponential(1.0, size=60)})
        lo, hi = stats.bootstrap_ci(frame, stats.mean_of("x"), group=None, n_boot=400, seed=int(rng.integers(1 << 30)))
        covered += lo <= 1.0 <= hi
    assert 0.88 <= covered / reps <= 0.99


def test_two_stage_bootstrap_widens_with_between_seed_spread():
    rng = np.random.default_rng(0)
    rows = 40
    tight = pd.DataFrame({"seed": np.repeat([0, 1, 2], rows), "x": rng.normal(0, 1, 3 * rows)})
    spread = tight.assign(x=tight.x + tight.seed.map({0: -2.0, 1: 0.0, 2: 2.0}))
    w_tight = np.diff(stats.bootstrap_ci(tight, stats.mean_of("x")))[0]
    w_spread = np.diff(stats.bootstrap_ci(spread, stats.mean_of("x")))[0]
    assert w_spread > 3 * w_tight


def test_bootstrap_is_seeded_and_leaves_global_rng_alone():
    frame = pd.DataFrame({"seed": [0, 0, 1, 1], "x": [0.1, 0.4, 0.3, 0.9]})
    np.random.seed(3)
    before = np.random.get_state()[1].copy()
    a = stats.bootstrap_ci(frame, stats.mean_of("x"))
    assert a == stats.bootstrap_ci(frame, stats.mean_of("x"))
    assert (np.random.get_state()[1] == before).all()


def test_paired_difference_stays_paired():
    base = np.linspace(0, 1, 50)
    frame = pd.DataFrame({"a": base + 0.1, "b": base})
    lo, hi = stats.bootstrap_ci(frame, stats.mean_difference("a", "b"), group=None)
    assert lo == pytest.approx(0.1)
    assert hi == pytest.approx(0.1)


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


def test_fast_row_mean_path_matches_the_generic_resampling():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"seed": np.repeat([0, 1, 2], [20, 25, 30]), "a": rng.random(75), "b": rng.random(75)})
    fast = stats.bootstrap_ci(frame, stats.mean_difference("a", "b"))
    slow = stats.bootstrap_ci(frame, lambda f: float((f.a - f.b).mean()))
    assert fast == pytest.approx(slow, abs=0.01)  # the same interval up to Monte Carlo error


def test_familywise_intervals_keep_95_percent_coverage_where_per_part_intervals_fall_short():
    """k = 6 parts, each the mean of 100 draws from a known distribution (N(1, 1)).
    All six intervals cover their means together in about 95% of 300 repetitions at
    Bonferroni's level (tolerance: 0.91-0.99, three binomial standard errors and the
    percentile bootstrap's small-sample shortfall), but only about 0.95^6 = 74% of the
    time with per-part 95% intervals (at most 0.85 here)."""
    rng = np.random.default_rng(2024)
    k, reps = 6, 300
    joint = {0.95: 0, stats.familywise_level(k): 0}
    for _ in range(reps):
        frames = [pd.DataFrame({"x": rng.normal(1.0, 1.0, size=100)}) for _ in range(k)]
        for level in joint:
            joint[level] += all(
                lo <= 1.0 <= hi
                for lo, hi in (
                    stats.bootstrap_ci(
                        f, stats.mean_of("x"), group=None, n_boot=1000, level=level, seed=int(rng.integers(1 << 30))
                    )
                    for f in frames
                )
            )
    assert stats.familywise_level(k) == pytest.approx(1 - 0.05 / 6)
    assert 0.91 <= joint[stats.familywise_level(k)] / reps <= 0.99
    assert joint[0.95] / reps <= 0.85


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
