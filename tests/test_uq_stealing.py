"""The uq_stealing study (ipkit.studies.uq_stealing): its per-unit tables, the reducers
behind the claims, the claims and the parameter rules checked before a run."""
import numpy as np
import pandas as pd
import pytest

from ipkit import cli, recipes, study
from ipkit.studies import uq_stealing as uqs


def _cfg(**kw):
    values = study.resolve(study.get_study("uq_stealing"), "default", {})
    return uqs.Config.from_params(type("P", (), {**values, **kw}))


def test_config_from_the_notebook_parameters():
    cfg = _cfg()
    assert cfg.uq_methods == ("ensemble", "mc_dropout", "vi", "swag", "laplace")
    assert cfg.budgets == (250, 500, 1000, 2000) and cfg.marginal == 0.02 and cfg.falls_to == 0.5


def test_trace_curves_and_last_over_peak():
    traces = pd.DataFrame({"method": "vi", "seed": np.repeat([0, 1], 3), "epoch": [1, 2, 3] * 2,
                           "variance": [0.2, 0.4, 0.1, 0.4, 0.8, 0.1]})
    curves = uqs.trace_curves(traces, "vi")
    assert list(curves.seed) == [0, 1] and curves[2].tolist() == [0.4, 0.8]
    assert uqs.last_over_peak(curves) == pytest.approx(0.1 / 0.6)
    assert uqs.last_over_peak(curves[curves.seed == 0]) == pytest.approx(0.25)


def test_gap_best_method_sweep_epochs_and_metrics_table():
    frame = pd.DataFrame({"single": [1, 1, 0, 0], "vi": [1, 0, 0, 0]})
    assert uqs.absolute_gap("vi")(frame) == pytest.approx(0.25)
    scores = pd.DataFrame({"method": ["single", "vi", "swag"] * 2, "seed": [0] * 3 + [1] * 3,
                           "fidelity": [0.9, 0.92, 0.95, 0.8, 0.84, 0.7], "accuracy": 0.9,
                           "variance": 0.0, "disagreement": 0.0, "ece": 0.1})
    assert uqs.best_method(scores) == "vi"
    table = uqs.metrics_table(scores).set_index("method")
    assert table.loc["swag", "fidelity"] == pytest.approx(0.825)
    assert table.loc["single", "fidelity_std"] == pytest.approx(np.std([0.9, 0.8], ddof=1))
    cfg = _cfg(epochs=10, query_budget=1000)
    assert [uqs.sweep_epochs(cfg, b) for b in (250, 1000, 2000)] == [40, 10, 10]


def _outcome(seeds=3, images=200, rng=np.random.default_rng(0)):
    unit = {"seed": np.repeat(range(seeds), images), "image": np.tile(range(images), seeds), "budget": 1000}
    same = rng.integers(0, 2, seeds * images)
    agreement = pd.DataFrame({"single": same, "ensemble": same, "vi": same, **unit})
    variance = pd.DataFrame({"single": 0.0, "ensemble": 0.001,
                             "vi": rng.normal(0.01, 0.01, seeds * images), **unit})
    traces = pd.DataFrame([{"method": m, "seed": k, "epoch": e, "variance": e * 0.01,
                            "disagreement": 1.0 / e} for m in ("ensemble", "vi")
                           for k in range(seeds) for e in range(1, 6)])
    return uqs.Outcome(pd.DataFrame(), traces, agreement, variance)


def test_claims_holds_does_not_hold_and_inconclusive():
    cfg = _cfg(uq_methods=["ensemble", "vi"], budgets=[1000])
    out = _outcome()
    u1, u2, u2b, u3, u4 = uqs.claims(out, out, "vi", cfg)
    assert u1.verdict == "holds" and [p["name"] for p in u1.parts] == ["gain_ensemble", "gain_vi"]
    assert u2.verdict == "does not hold" and u2.ci == [1.0, 1.0] and u2.n == 3 and u2.unit == "seeds"
    assert u2b.verdict == "holds" and u2b.parts[0]["value"] == pytest.approx(0.2)
    assert u3.verdict == "inconclusive" and [p["verdict"] for p in u3.parts] == ["holds", "inconclusive"]
    assert u4.verdict == "holds" and u4.parts[0]["name"] == "gap_1000" and u4.n == 600
    assert "below 2%" in u1.statement and "at most 0.5 of the peak" in u2.statement
    assert "(< 0.01)" in u3.statement


def test_steal_and_score_units_reproduce_the_scores_and_traces(digits):
    cfg = _cfg(dataset="digits", victim_arch="mlp", epochs=2, members=2, uq_methods=["mc_dropout"])
    victim = recipes.owner_model(digits, "mlp", epochs=2, seed=0)
    out = uqs.steal_and_score(victim, digits, cfg, cfg.uq_methods, budget=200, seed=0)
    scores = out.scores.set_index("method")
    assert list(scores.index) == ["single", "mc_dropout"] and len(out.agreement) == len(digits.test)
    for m in scores.index:
        assert out.agreement[m].mean() == pytest.approx(scores.loc[m, "fidelity"])
    last = out.traces[out.traces.method == "mc_dropout"].sort_values("epoch").variance.iloc[-1]
    assert out.variance.mc_dropout.mean() == pytest.approx(last, rel=1e-5)
    assert (out.variance.single == 0).all() and "seed" not in out.settings["mc_dropout"]


@pytest.mark.parametrize("argv, fragment", [
    (["-p", "query_budget=2001"], "query_budget 2001 exceeds the attacker pool of mnist5k (2000 images)"),
    (["-p", "budgets=250,2500"], "budgets 2500 exceeds the attacker pool"),
    (["-p", "dataset=digits", "-p", "budgets=100,800"], "budgets 800 exceeds the attacker pool of digits (719 images)"),
    (["-p", "uq_methods=vi,vi"], "uq_methods ['vi', 'vi'] repeats an entry"),
    (["-p", "seeds=3,3"], "seeds [3, 3] repeats an entry"),
])
def test_bad_sizes_exit_2_with_one_line_before_running(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "uq_stealing", *argv])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
