"""On-device siblings (Hong et al., SaTML 2023): the study's reducers and claims
(ipkit.studies.ondevice_unpairing). Compression, attacks, similarity and unpairing are tested
under tests/methods/."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ipkit import cli
from ipkit.notebook import widgets
from ipkit.studies import ondevice_unpairing as od


def test_chance_abs_cosine_matches_random_directions():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 784, generator=g), torch.randn(2000, 784, generator=g)
    measured = float(torch.nn.functional.cosine_similarity(a, b, dim=1).abs().mean())
    assert measured == pytest.approx(od.chance_abs_cosine(784), rel=0.05)


def test_transfer_ratio_floors_the_independent_rate_at_one_input():
    tr = pd.DataFrame(
        {"arch": "mlp", "seed": 0, "surrogate": ["independent", "q8", "p50"], "transfer": [0.0, 0.5, 0.1]}
    )
    r = od.transfer_ratios(tr, {("mlp", 0): 10}).set_index("surrogate").ratio
    assert r["q8"] == pytest.approx(5.0)
    assert r["p50"] == pytest.approx(1.0)
    assert list(od.sibling_rows(od.transfer_ratios(tr, {("mlp", 0): 10})).surrogate) == ["q8", "p50"]


def test_comparable_siblings_use_the_mean_gap_over_seeds():
    tr = pd.DataFrame(
        {
            "arch": "mlp",
            "seed": [0, 0, 0, 1, 1, 1],
            "surrogate": ["white-box", "q8", "q2"] * 2,
            "test_acc": [0.90, 0.89, 0.50, 0.92, 0.91, 0.90],
        }
    )
    out = od.mark_comparable(tr, 0.05)
    assert list(out.acc_gap.round(2)) == [0.0, 0.01, 0.4, 0.0, 0.01, 0.02]
    assert list(out.comparable) == [True, True, False, True, True, False]  # q2: one seed collapsed


def _queries(prior, queries, success, cap=100, seed=0, arch="mlp"):
    return pd.DataFrame(
        {
            "arch": arch,
            "seed": seed,
            "prior": prior,
            "input": np.arange(len(queries)),
            "queries": queries,
            "success": success,
            "cap": cap,
        }
    )


def test_query_summary_uses_the_restricted_mean_and_marks_censored_medians():
    q = pd.concat(
        [
            _queries("none", [40, 60, 100], [False, False, True]),
            _queries("q8", [2, 4, 6], [True, True, True]),
            _queries("independent", [10, 30, 50], [True, True, False]),
        ],
        ignore_index=True,
    )
    summary = od.query_summary(q).set_index("prior")
    assert summary.median_queries["none"] == 100
    assert bool(summary.censored["none"])
    assert summary.rmst["none"] == pytest.approx(100)
    assert summary.rmst["independent"] == pytest.approx(140 / 3)
    assert not bool(summary.censored["independent"])
    fam = SimpleNamespace(arch="mlp", seed=0, siblings={"q8": None})
    ratios = od.query_ratios(od.query_summary(q), [fam]).set_index("vs")
    assert ratios.ratio["independent"] == pytest.approx(140 / 12)
    assert ratios.ratio["none"] == pytest.approx(25)
    assert ratios.ref_censored["none"] == pytest.approx(2 / 3)


def test_survival_counts_failures_as_unbroken_up_to_the_cap():
    q = _queries("none", [10, 30, 100, 100], [True, True, False, True])
    surv = od.survival(q, grid=np.array([0, 10, 50, 100])).set_index("queries").unbroken
    assert list(surv) == [1.0, 0.75, 0.5, 0.25]


def test_reducers_pool_over_seeds_and_correlate_within_architecture():
    f = pd.DataFrame({"before": [1, 1, 1, 1], "after": [0, 0, 1, 1], "none": [10, 10, 10, 10]})
    assert od.transfer_cut(f) == pytest.approx(0.5)
    assert od.ratio_of_means("after", "before")(f) == pytest.approx(0.5)
    assert od.ratio_of_means("none", "after", 1.0)(f.assign(after=0)) == pytest.approx(10)
    assert od.ratio_of_means("before", "after")(f.assign(after=0)) == pytest.approx(4)  # floored at 1/4
    within = pd.DataFrame(
        {
            "arch": ["a"] * 4 + ["b"] * 4,
            "seed": 0,
            "grad_cos": [0.1, 0.2, 0.3, 0.4, 0.8, 0.85, 0.9, 0.95],
            "transfer": [0.1, 0.2, 0.3, 0.4, 0.01, 0.02, 0.03, 0.04],
        }
    )
    assert od.within_spearman(within) == pytest.approx(1.0)
    assert od.spearman(within) < 0.5  # pooled, the architecture reverses the trend


def test_useless_prior_ceiling_is_the_no_prior_attack_at_most_the_cap():
    f = pd.DataFrame({"before": [20.0, 30.0], "none": [50.0, 60.0]})
    assert od.useless_prior_ceiling(f, _cfg(rgf_samples=4)) == pytest.approx(55 * 6 / 5 / 25)
    assert od.useless_prior_ceiling(f.assign(none=100.0), _cfg(rgf_samples=4)) == pytest.approx(100 / 25)


def test_paired_tables_line_up_before_and_after_per_input():
    cfg = _cfg()
    tr_inputs = pd.DataFrame(
        {
            "arch": "mlp",
            "seed": 0,
            "surrogate": ["q8", "q8", "p50", "p50"],
            "input": [0, 1, 0, 1],
            "fooled": [1.0, 1.0, 0.0, 1.0],
        }
    )
    u = od.Unpairing(
        summary=pd.DataFrame(),
        transfer=pd.DataFrame(
            {
                "arch": "mlp",
                "seed": 0,
                "surrogate": "q8",
                "input": [0, 1, 0, 1],
                "fooled": [0.0, 1.0, 1.0, 1.0],
                "lam": [3.0, 3.0, 0.0, 0.0],
            }
        ),
        queries=pd.concat(
            [
                _queries("unpaired lambda=3", [50, 100], [True, False]).assign(lam=3.0),
                _queries("unpaired lambda=0", [5, 5], [True, True]).assign(lam=0.0),
            ]
        ),
        accuracy=pd.DataFrame(
            {
                "arch": "mlp",
                "seed": 0,
                "lam": [np.nan, np.nan, 3.0, 3.0],
                "example": [0, 1, 0, 1],
                "correct": [1.0, 1.0, 1.0, 0.0],
            }
        ),
    )
    t = od.paired_transfer(tr_inputs, u, cfg)
    assert list(t.before) == [1.0, 1.0]
    assert list(t.after) == [0.0, 1.0]
    assert list(t.finetune_only) == [1.0, 1.0]
    q = od.paired_queries(
        pd.concat([_queries("q8", [5, 7], [True, True]), _queries("none", [60, 9], [False, True])]), u, cfg
    )
    assert list(q.before) == [5, 7]
    assert list(q.after) == [50, 100]
    assert list(q.none) == [100, 9]
    a = od.paired_accuracy(u, cfg)
    assert list(a.before) == [1.0, 1.0]
    assert list(a.after) == [1.0, 0.0]


def _cfg(**over):
    values = dict(
        dataset="mnist5k",
        archs=["mlp"],
        epochs=1,
        quant_bits=[8],
        prune_ratios=[0.5],
        finetune_epochs=1,
        eps=0.1,
        pgd_steps=5,
        n_attack=40,
        n_query=4,
        query_cap=100,
        rgf_samples=4,
        unpair_sibling="q8",
        unpair_lambda=3.0,
        unpair_lambdas=[0.0, 3.0],
        unpair_epochs=1,
        unpair_penalty="abs",
        seeds=[0, 1, 2],
        max_acc_gap=0.05,
        c1_min_ratio=2.0,
        c1b_min_ratio=2.0,
        c2_min_rho=0.0,
        c3_min_cut=0.5,
        c3_max_acc_drop=0.02,
        c4_min_ratio=10.0,
    )
    values.update(over)
    return od.Config.from_params(values)


def _study_frames(rng, seeds=(0, 1, 2), n=60, m=12):
    """Synthetic outcomes of two architectures over ``seeds``: on 'cnn' q8 transfers far more
    than the independent model; on 'mlp' barely; q2 transfers most but has lost its accuracy."""
    acc = {"white-box": 0.95, "none": np.nan, "independent": 0.95, "q8": 0.94, "q2": 0.40}
    rate = {
        "cnn": {"white-box": 0.9, "none": 0.02, "independent": 0.1, "q8": 0.8, "q2": 1.0},
        "mlp": {"white-box": 0.9, "none": 0.02, "independent": 0.4, "q8": 0.45, "q2": 1.0},
    }
    cos = {"white-box": 1.0, "none": np.nan, "independent": 0.3, "q8": 0.9, "q2": 0.2}
    mean_q = {"white-box": 20, "none": 90, "independent": 80, "q8": 25, "q2": 60}
    rows, inputs, queries, tp, ap, qp, cmp_ = [], [], [], [], [], [], []
    for arch in ("cnn", "mlp"):
        for seed in seeds:
            for name, r in rate[arch].items():
                fooled = (rng.uniform(size=n) < r).astype(float)
                inputs.append(
                    pd.DataFrame(
                        {"arch": arch, "seed": seed, "surrogate": name, "input": np.arange(n), "fooled": fooled}
                    )
                )
                rows.append(
                    {
                        "arch": arch,
                        "seed": seed,
                        "surrogate": name,
                        "test_acc": acc[name],
                        "grad_cos": cos[name] + rng.normal(0, 0.01),
                        "transfer": fooled.mean(),
                    }
                )
                queries.append(
                    _queries(
                        name,
                        rng.integers(mean_q[name] - 5, mean_q[name] + 5, m),
                        np.ones(m, bool),
                        seed=seed,
                        arch=arch,
                    )
                )
            before = (rng.uniform(size=n) < rate[arch]["q8"]).astype(float)
            tp.append(
                pd.DataFrame(
                    {
                        "arch": arch,
                        "seed": seed,
                        "input": np.arange(n),
                        "before": before,
                        "after": before * (rng.uniform(size=n) < 0.1),
                    }
                )
            )
            ap.append(
                pd.DataFrame(
                    {
                        "arch": arch,
                        "seed": seed,
                        "example": np.arange(500),
                        "before": 1.0,
                        "after": 1.0 - (np.arange(500) < 2),
                    }
                )
            )
            qp.append(
                pd.DataFrame(
                    {
                        "arch": arch,
                        "seed": seed,
                        "input": np.arange(m),
                        "before": 25.0,
                        "after": rng.uniform(40, 60, m),
                        "none": 90.0,
                    }
                )
            )
            cmp_.append({"arch": arch, "seed": seed, "comparable": arch == "cnn"})
    tr = od.mark_comparable(pd.DataFrame(rows), 0.05)
    pairs = {"transfer_pairs": pd.concat(tp), "accuracy_pairs": pd.concat(ap), "query_pairs": pd.concat(qp)}
    return tr, pd.concat(inputs), pd.concat(queries), pd.DataFrame(cmp_), pairs


def test_claims_read_the_best_comparable_pair_within_architecture_and_ceilings():
    tr, tr_inputs, queries, cmp_, pairs = _study_frames(np.random.default_rng(0))
    rows = {c.id: c for c in od.claims(tr, tr_inputs, queries, cmp_, pairs, _cfg())}
    assert rows["C1"].verdict == "holds" and "best pair cnn q8" in rows["C1"].measured  # q2 is left apart
    assert "median over 2 comparable pairs" in rows["C1"].measured
    assert "2 of 4 pairs" in rows["C1"].statement
    assert rows["C1b"].verdict == "holds"
    assert rows["C3"].verdict == "holds"
    assert [p["verdict"] for p in rows["C3"].parts] == ["holds", "holds"]
    assert "50%" in rows["C3"].statement
    assert "2 points" in rows["C3"].statement
    # C4: only the cnn (comparable after unpairing); 10x lies beyond its ceiling 90 * 6/5 / 25 = 4.3
    assert len(rows["C4"].parts) == 1
    assert "cnn" in rows["C4"].parts[0]["name"]
    assert rows["C4"].verdict == "untestable here"
    assert {c.quantifier for c in rows.values()} == {"up to", "direction", "every"}
    assert all(c.paper_words for c in rows.values())


def test_claims_with_one_training_stay_inconclusive():
    tr, tr_inputs, queries, cmp_, pairs = _study_frames(np.random.default_rng(1), seeds=(0,))
    rows = {c.id: c for c in od.claims(tr, tr_inputs, queries, cmp_, pairs, _cfg(seeds=[0]))}
    assert rows["C1"].verdict == "inconclusive"
    assert rows["C3"].verdict == "inconclusive"


def test_c4_is_not_measured_when_unpairing_breaks_every_sibling():
    tr, tr_inputs, queries, cmp_, pairs = _study_frames(np.random.default_rng(2))
    rows = {c.id: c for c in od.claims(tr, tr_inputs, queries, cmp_.assign(comparable=False), pairs, _cfg())}
    assert rows["C4"].verdict == "inconclusive"
    assert "no unpaired sibling within 5 points" in rows["C4"].measured


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["-p", "n_attack=10000"], "lower n_attack"),
        (["-p", "n_query=300"], "exceeds n_attack"),
        (["-p", "query_cap=50", "-p", "rgf_samples=60"], "raise query_cap"),
        (["-p", "prune_ratios=0.5,0.501"], "list each bit width"),
        (["-p", "archs=mlp,mlp"], "'archs' lists 'mlp' twice"),
        (["-p", "quant_bits=8", "-p", "unpair_sibling=q4"], "unpair_sibling 'q4' is not built"),
        (["-p", "unpair_penalty=cos"], "unpair_penalty"),
    ],
)
def test_sizes_and_names_are_checked_before_the_run(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "ondevice_unpairing", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_explore_attacks_the_first_familys_first_input_at_the_controls_values(monkeypatch):
    x, y = torch.zeros(3, 1, 8, 8), torch.tensor([1, 2, 3])
    fam = od.Family("mlp", 0, "full", "independent", {}, x, y)
    split = SimpleNamespace(classes=list("0123456789"))
    drawn = []
    monkeypatch.setattr(od, "explore_surrogates", lambda fam, s, cfg, bits, ratio, lam: (bits, ratio, lam))
    monkeypatch.setattr(
        od,
        "plot_example",
        lambda sur, full, x, y, eps, steps, classes: drawn.append((sur, full, y.tolist(), eps, steps)),
    )
    od.explore([fam], split, _cfg(quant_bits=[8, 4], unpair_lambdas=[0.0, 3.0], eps=0.1, pgd_steps=5))
    assert drawn == [((8, 0.0, 3.0), "full", [1], 0.1, 5)]
    assert widgets.last_panel().values() == {"bits": 8, "ratio": 0.0, "eps": 0.1, "lam": 3.0, "index": 0}


def test_recorded_metrics_round_the_tables_but_not_the_full_models_accuracy():
    frame = pd.DataFrame({"x": [0.123456]})
    metrics = od.recorded_metrics(frame, frame, frame, frame, frame, {"rho_within": 0.5})
    assert metrics["full"] == [{"x": 0.123456}]
    for name in ("transfer", "queries", "unpairing", "lambda_sweep"):
        assert metrics[name] == [{"x": 0.1235}], name
    assert metrics["spearman"] == {"rho_within": 0.5}
