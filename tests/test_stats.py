"""The bootstrap behind every claim interval, the three-valued verdict and how a claim
combines its parts (ipkit.stats, ipkit.results)."""
import math

import numpy as np
import pandas as pd
import pytest

from ipkit import results, stats


def test_bootstrap_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(7)
    covered = 0
    reps = 200
    for _ in range(reps):
        frame = pd.DataFrame({"x": rng.exponential(1.0, size=60)})
        lo, hi = stats.bootstrap_ci(frame, stats.mean_of("x"), group=None, n_boot=400,
                                    seed=int(rng.integers(1 << 30)))
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
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.1)


@pytest.mark.parametrize("ci, side, expected", [
    ((0.3, 0.5), "above", "holds"), ((0.05, 0.15), "above", "does not hold"),
    ((0.1, 0.3), "above", "inconclusive"), ((0.0, 0.1), "below", "holds"),
    ((0.25, 0.4), "below", "does not hold"), ((0.1, 0.25), "below", "inconclusive"),
    ((math.nan, math.nan), "above", "inconclusive"),
])
def test_verdict_reads_the_whole_interval(ci, side, expected):
    assert results.verdict(ci, 0.2, side) == expected


def _part(ci, threshold=0.2, side="above", name="q"):
    return results.Evidence(name, sum(ci) / 2, ci, threshold, side, 10, "carrier")


def test_claim_holds_only_when_every_part_holds_and_reports_the_deciding_part():
    good, weak, bad = _part((0.5, 0.7), name="a"), _part((0.1, 0.3), name="b"), _part((0.0, 0.1), name="c")
    assert results.claim("X", "s", "p", good).verdict == "holds"
    mixed = results.claim("X", "s", "p", good, weak)
    assert mixed.verdict == "inconclusive" and mixed.ci == [0.1, 0.3] and not mixed.holds
    failed = results.claim("X", "s", "p", good, weak, bad)
    assert failed.verdict == "does not hold" and failed.ci == [0.0, 0.1]
    assert [p["verdict"] for p in failed.parts] == ["holds", "inconclusive", "does not hold"]


def test_evidence_counts_units_and_seeds():
    frame = pd.DataFrame({"seed": np.repeat([0, 1], 30), "hit": np.tile([1, 1, 0], 20)})
    e = results.evidence("rate", frame, stats.mean_of("hit"), threshold=0.5, holds_when="above",
                         unit="carrier")
    assert e.n == 60 and e.unit == "carriers over 2 seeds" and e.value == pytest.approx(2 / 3)
    assert e.ci[0] <= e.value <= e.ci[1]


def test_schema_rejects_a_holds_that_disagrees_with_the_verdict():
    row = results.claim_dict(results.claim("X", "s", "p", _part((0.5, 0.7))))
    data = {"study": "s", "title": "t", "profile": "smoke", "date": "d", "ipkit": "0", "device": "cpu",
            "torch": "2", "runtime_s": 1.0, "params": {}, "metrics": {}, "claims": [row],
            "figures": [], "tables": []}
    results.check_results(data)
    with pytest.raises(ValueError, match="holds must be true exactly"):
        results.check_results(dict(data, claims=[dict(row, holds=False)]))
    with pytest.raises(ValueError, match="verdict"):
        results.check_results(dict(data, claims=[dict(row, verdict="maybe", holds=False)]))


def test_fast_row_mean_path_matches_the_generic_resampling():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"seed": np.repeat([0, 1, 2], [20, 25, 30]), "a": rng.random(75),
                          "b": rng.random(75)})
    fast = stats.bootstrap_ci(frame, stats.mean_difference("a", "b"))
    slow = stats.bootstrap_ci(frame, lambda f: float((f.a - f.b).mean()))
    assert fast == pytest.approx(slow, abs=0.01)  # the same interval up to Monte Carlo error
