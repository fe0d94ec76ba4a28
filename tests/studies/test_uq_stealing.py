"""The uq_stealing study (ipkit.studies.uq_stealing): its per-unit tables, the reducers
behind the claims, the claims and the parameter rules checked before a run."""

import numpy as np
import pandas as pd
import pytest

from ipkit.methods import recipes
from ipkit.methods import uncertainty as uq
from ipkit.notebook.registry import get_study, resolve
from ipkit.studies import uq_stealing as uqs


def _cfg(**kw):
    values = resolve(get_study("uq_stealing"), "default", {})
    return uqs.Config.from_params(type("P", (), {**values, **kw}))


def test_config_from_the_notebook_parameters():
    cfg = _cfg()
    assert cfg.uq_methods == ("ensemble", "mc_dropout", "vi", "swag", "laplace")
    assert cfg.budgets == (250, 500, 1000, 2000)
    assert cfg.marginal == 0.02
    assert cfg.falls_to == 0.5


def test_hyperparameters_name_each_surrogates_settings_without_training(digits):
    cfg = _cfg(dataset="digits", members=3, uq_methods=["mc_dropout", "vi"])
    surrogates = uqs.hyperparameters(digits, cfg)["surrogates"]
    assert list(surrogates) == ["single", "mc_dropout", "vi"]
    assert surrogates["single"]["members"] == 1
    assert surrogates["mc_dropout"]["members"] == 3
    assert surrogates["mc_dropout"]["trace_points"] == 12
    assert not [k for s in surrogates.values() for k in s if k == "seed" or k.startswith("_")]


def test_hyperparameters_name_the_settings_of_the_surrogates_trained_or_cached(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    cfg = _cfg(dataset="digits", victim_arch="mlp", epochs=1, members=2, uq_methods=["mc_dropout"])
    recorded = uqs.hyperparameters(digits, cfg)["surrogates"]["mc_dropout"]
    victim = recipes.owner_model(digits, "mlp", epochs=1, seed=0)
    for _ in ("trained", "from the cache"):
        sur = uq.stolen_surrogate(
            "mc_dropout",
            victim,
            digits,
            cfg.thief_arch,
            budget=128,
            monitor=20,
            members=cfg.members,
            epochs=uqs.method_epochs(cfg, "mc_dropout"),
            seed=0,
        )
        assert {k: v for k, v in sur.settings().items() if k != "seed"} == recorded


def test_trace_curves_and_last_over_peak():
    traces = pd.DataFrame(
        {
            "method": "vi",
            "seed": np.repeat([0, 1], 3),
            "step": [0, 2, 8] * 2,
            "variance": [0.2, 0.4, 0.1, 0.4, 0.8, 0.1],
        }
    )
    curves = uqs.trace_curves(traces, "vi")
    assert list(curves.seed) == [0, 1]
    assert list(curves.columns) == ["seed", 0, 2, 8]
    assert curves[2].tolist() == [0.4, 0.8]
    assert uqs.last_over_peak(curves) == pytest.approx(0.1 / 0.6)
    assert uqs.last_over_peak(curves[curves.seed == 0]) == pytest.approx(0.25)


def test_gap_best_method_sweep_epochs_and_metrics_table():
    frame = pd.DataFrame({"single": [1, 1, 0, 0], "vi": [1, 0, 0, 0]})
    assert uqs.absolute_gap("vi")(frame) == pytest.approx(0.25)
    scores = pd.DataFrame(
        {
            "method": ["single", "vi", "swag"] * 2,
            "seed": [0] * 3 + [1] * 3,
            "fidelity": [0.9, 0.92, 0.95, 0.8, 0.84, 0.7],
            "accuracy": 0.9,
            "variance": 0.0,
            "disagreement": 0.0,
            "ece": 0.1,
        }
    )
    assert uqs.best_method(scores) == "vi"
    table = uqs.metrics_table(scores).set_index("method")
    assert table.loc["swag", "fidelity"] == pytest.approx(0.825)
    assert table.loc["single", "fidelity_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    cfg = _cfg(epochs=10, query_budget=1000)
    assert [uqs.sweep_epochs(cfg, b) for b in (250, 1000, 2000)] == [40, 10, 10]


def _outcome(seeds=3, images=200, rng=None, gain=None, acc_gap=None):
    """A synthetic outcome: ``vi`` agrees with the victim like the single copy, shifted by
    ``gain`` (share of images flipped), and is correct like it, shifted by ``acc_gap``."""
    rng = rng or np.random.default_rng(0)
    unit = {"seed": np.repeat(range(seeds), images), "image": np.tile(range(images), seeds), "budget": 1000}
    same = rng.integers(0, 2, seeds * images)
    agreement = pd.DataFrame({"single": same, "ensemble": same, "vi": _shift(same, gain or {}, rng), **unit})
    correct = pd.DataFrame({"single": same, "ensemble": same, "vi": _shift(same, acc_gap or {}, rng), **unit})
    variance = pd.DataFrame({"single": 0.0, "ensemble": 0.001, "vi": rng.normal(0.01, 0.01, seeds * images), **unit})
    traces = pd.DataFrame(
        [
            {"method": m, "seed": k, "step": e, "variance": e * 0.01, "disagreement": 1.0 / (e + 1)}
            for m in ("ensemble", "vi")
            for k in range(seeds)
            for e in range(0, 5)
        ]
    )
    return uqs.Outcome(pd.DataFrame(), traces, agreement, variance, correct)


def _shift(outcomes, by, rng):
    """``outcomes`` with a share ``abs(by)`` of them set to 1 (by > 0) or 0 (by < 0)."""
    out = outcomes.copy()
    share = by if isinstance(by, float) else 0.0
    if share:
        pick = rng.random(len(out)) < abs(share) * 2
        out[pick] = 1 if share > 0 else 0
    return out


def test_claims_holds_does_not_hold_and_inconclusive():
    cfg = _cfg(uq_methods=["ensemble", "vi"], budgets=[1000])
    out = _outcome()
    u0, u1, u2, u2b, u3, u4 = uqs.claims(out, out, "vi", cfg)
    assert u0.verdict == "holds"
    assert [p["name"] for p in u0.parts] == ["accuracy_gap_ensemble", "accuracy_gap_vi"]
    assert u1.verdict == "holds"
    assert u1.quantifier == "marginal"
    assert u1.paper_words
    assert [p["name"] for p in u1.parts] == ["gain_ensemble", "not_worse_ensemble", "gain_vi", "not_worse_vi"]
    assert u1.level == pytest.approx(1 - 0.05 / 4)
    assert u2.verdict == "does not hold"
    assert u2.ci == [1.0, 1.0]
    assert u2.n == 3
    assert u2.trainings == 3
    assert u2b.verdict == "holds"
    assert u2b.parts[0]["value"] == pytest.approx(0.2)
    assert u3.verdict == "inconclusive"
    assert [p["verdict"] for p in u3.parts] == ["holds", "inconclusive"]
    assert u4.verdict == "holds"
    assert u4.parts[0]["name"] == "gap_1000"
    assert u4.n == 600
    assert "+-2%" in u1.statement
    assert "at most 0.5 of the peak" in u2.statement
    assert "(< 0.01)" in u3.statement
    assert "(beyond the paper)" in u0.statement
    assert u0.paper_words == ""
    assert {c.quantifier for c in (u0, u2, u2b, u3, u4)} == {"every"}


def test_u1_is_two_sided_a_worse_surrogate_is_reported_as_worse():
    cfg = _cfg(uq_methods=["ensemble", "vi"], budgets=[1000])
    out = _outcome(images=2000, gain=-0.1)
    u1 = uqs.claims(out, out, "vi", cfg)[1]
    parts = {p["name"]: p for p in u1.parts}
    assert parts["gain_vi"]["verdict"] == "holds"
    assert parts["not_worse_vi"]["verdict"] == "does not hold"
    assert u1.verdict == "does not hold"
    assert parts["not_worse_vi"]["value"] < -0.02
    better = uqs.claims(*(2 * [_outcome(images=2000, gain=0.1)]), "vi", cfg)[1]
    assert {p["name"]: p["verdict"] for p in better.parts}["gain_vi"] == "does not hold"


def test_an_under_trained_surrogate_is_not_counted_in_u1():
    cfg = _cfg(uq_methods=["ensemble", "vi"], budgets=[1000], parity=0.01)
    out = _outcome(images=2000, acc_gap=-0.05)
    table = uqs.parity_table(out, cfg).set_index("method")
    assert table.loc["ensemble", "at_parity"]
    assert not table.loc["vi", "at_parity"]
    assert table.loc["vi", "gap"] < -0.01
    u0, u1 = uqs.claims(out, out, "vi", cfg)[:2]
    assert u0.verdict == "does not hold"
    vi_parts = [p for p in u1.parts if p["name"].startswith(("gain_vi", "not_worse_vi"))]
    assert len(vi_parts) == 2
    assert all("under-trained" in p["name"] and p["n"] == 0 for p in vi_parts)
    assert u1.verdict == "inconclusive"


def test_diversity_verdicts_per_model_and_combined():
    cfg = _cfg(uq_methods=["ensemble", "vi"], budgets=[1000])
    out = _outcome()
    table = uqs.diversity_verdicts(uqs.claims(out, out, "vi", cfg)).set_index("method")
    assert list(table.index) == ["ensemble", "vi", "combined"]
    assert table.loc["combined", "U2"] == "does not hold"
    assert table.loc["vi", "U2b"] == "holds"


def test_method_epochs_and_alternatives():
    cfg = _cfg(epochs=10, dropout_epochs=2)
    assert uqs.method_epochs(cfg, "mc_dropout") == 20
    assert uqs.method_epochs(cfg, "swag") == 10
    assert uqs.method_epochs(cfg, "mc_dropout", 4) == 8
    assert uqs.ALTERNATIVES[0].grid == {"dropout_epochs": [1, 2]}
    assert all(
        set(sw.grid) <= set(resolve(get_study("uq_stealing"), "default", {}))
        for sw in (*uqs.ALTERNATIVES, *uqs.SENSITIVITY)
    )


def test_steal_and_score_units_reproduce_the_scores_and_traces(digits):
    cfg = _cfg(dataset="digits", victim_arch="mlp", epochs=2, members=2, uq_methods=["mc_dropout"])
    victim = recipes.owner_model(digits, "mlp", epochs=2, seed=0)
    out = uqs.steal_and_score(victim, digits, cfg, cfg.uq_methods, budget=200, seed=0)
    scores = out.scores.set_index("method")
    assert list(scores.index) == ["single", "mc_dropout"]
    assert len(out.agreement) == len(digits.test)
    for m in scores.index:
        assert out.agreement[m].mean() == pytest.approx(scores.loc[m, "fidelity"])
    trace = out.traces[out.traces.method == "mc_dropout"].sort_values("step")
    assert trace.step.iloc[0] == 0, "step 0 to 4 epochs (2x)"
    assert trace.step.iloc[-1] == 4 * -(-200 // 128), "step 0 to 4 epochs (2x)"
    assert out.variance.mc_dropout.mean() == pytest.approx(trace.variance.iloc[-1], rel=1e-5)
    assert (out.variance.single == 0).all()
    for m in scores.index:
        assert out.correct[m].mean() == pytest.approx(scores.loc[m, "accuracy"])


def test_compare_and_sweep_work_without_a_progress_function(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    cfg = _cfg(
        dataset="digits",
        victim_arch="mlp",
        epochs=1,
        members=2,
        uq_methods=["ensemble"],
        query_budget=128,
        budgets=[128],
        seeds=[0],
    )
    victims = {0: recipes.owner_model(digits, "mlp", epochs=1, seed=0)}
    assert list(uqs.compare(victims, digits, cfg).scores.method) == ["single", "ensemble"]
    assert list(uqs.sweep(victims, digits, cfg, "ensemble").scores.budget) == [128, 128]
