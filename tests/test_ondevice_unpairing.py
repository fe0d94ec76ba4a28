"""On-device siblings (Hong et al., SaTML 2023): compression, attacks, similarity, unpairing,
and the study's reducers and claims (ipkit.studies.ondevice_unpairing)."""
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ipkit import attacks, cli, compression, data, models, similarity, train, unpairing
from ipkit.studies import ondevice_unpairing as od


@pytest.fixture(scope="module")
def digits():
    return data.split("digits", seed=0, device="cpu")


@pytest.fixture(scope="module")
def trained(digits):
    out = []
    for seed in (0, 1):
        m = models.build("mlp", digits.num_classes, digits.in_shape, seed=seed)
        train.fit(m, digits.owner.x, digits.owner.y, epochs=15, seed=seed)
        out.append(m.eval())
    x, y = attacks.attack_set(out[0], digits.test.x, digits.test.y, 60)
    return out[0], out[1], x, y


def test_pgd_stays_within_eps_and_pixel_range(trained):
    model, _, x, y = trained
    adv = attacks.pgd(model, x, y, eps=0.2, steps=10)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float(attacks.fooled(model, adv, y).float().mean()) > 0.5


def test_own_gradients_fool_more_than_an_independent_model(trained):
    model, other, x, y = trained
    own = attacks.transfer_success(model, model, x, y, eps=0.1, steps=10)
    transferred = attacks.transfer_success(other, model, x, y, eps=0.1, steps=10)
    assert own > transferred


def test_quantization_at_32_bits_is_the_identity(trained):
    model, _, x, _ = trained
    q = compression.calibrate(compression.quantize_model(model, 32), x)
    assert torch.equal(q(x), model(x))


def test_quantized_sibling_has_bits_levels_and_gradients(trained):
    model, _, x, y = trained
    q = compression.calibrate(compression.quantize_model(model, 4), x)
    layer = next(m for m in q.modules() if isinstance(m, compression.QuantLinear))
    w = layer._q_weight(layer.weight)
    assert all(len(torch.unique(row)) <= 15 for row in w)
    assert float(similarity.input_gradients(q, x, y).abs().sum()) > 0
    assert compression.bits_of(q) == 4 and compression.bits_of(model) == 32


def test_gradient_similarity_with_itself_is_one(trained):
    model, other, x, y = trained
    assert similarity.gradient_cosine(model, model, x, y) == pytest.approx(1.0, abs=1e-5)
    assert similarity.gradient_cosine(model, other, x, y) < 0.99
    assert train.agreement(model, model, x) == 1.0


class _Rows(torch.nn.Module):
    """Wraps a model and counts every input row it is asked about."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)


def test_query_counter_counts_every_target_query(trained):
    model, other, x, y = trained
    target = _Rows(model)
    counter = attacks.QueryCounter(target, 20, cap=300)
    res = attacks.query_attack(counter, x[:20], y[:20], eps=0.1, prior=other, samples=5)
    assert counter.total == target.rows == int(res.queries.sum())


@pytest.mark.parametrize("prior", [False, True])
def test_query_attack_stops_at_the_cap(trained, prior):
    model, other, x, y = trained
    counter = attacks.QueryCounter(model, 20, cap=40)
    res = attacks.query_attack(counter, x[:20], y[:20], eps=0.01, prior=other if prior else None,
                               samples=5)
    assert (res.queries <= 40).all() and (~res.success).any()
    assert (res.queries[~res.success] > 40 - (7 if prior else 6)).all()
    assert float((res.x_adv - x[:20]).abs().max()) <= 0.01 + 1e-6
    small = attacks.QueryCounter(model, 1, cap=2)
    with pytest.raises(RuntimeError, match="cap"):
        small(x[:3], torch.zeros(3, dtype=torch.long))
    assert small.total == 0


def test_sibling_prior_needs_fewer_queries_than_no_prior(trained):
    model, _, x, y = trained
    runs = {}
    for name, prior in (("none", None), ("self", model)):
        counter = attacks.QueryCounter(model, 20, cap=1000)
        runs[name] = attacks.query_attack(counter, x[:20], y[:20], eps=0.2, prior=prior, samples=5)
    assert runs["self"].success.mean() >= runs["none"].success.mean()
    assert runs["self"].queries.sum() < runs["none"].queries.sum()


def test_prgf_lambda_limits():
    lam = attacks.prgf_lambda(torch.tensor([0.0, 0.01, 0.3, 1.0]), d=784, q=10)
    assert lam[0] == 0 and lam[1] == 0 and 0 < lam[2] <= 1 and lam[3] == 1


def test_unpairing_loss_adds_lambda_times_gradient_cosine(trained):
    model, other, x, y = trained
    ce = unpairing.unpairing_loss(model, other, x, y, 0.0)
    with_term = unpairing.unpairing_loss(model, other, x, y, 2.0)
    gm = similarity.input_gradients(model, x, y).flatten(1)
    go = similarity.input_gradients(other, x, y).flatten(1)
    cos = torch.nn.functional.cosine_similarity(gm, go, dim=1).mean()
    assert float((with_term - ce).detach()) == pytest.approx(2 * float(cos), rel=1e-4)


def test_transfer_ratio_floors_the_independent_rate_at_one_input():
    tr = pd.DataFrame({"arch": "mlp", "seed": 0, "surrogate": ["independent", "q8", "p50"],
                       "transfer": [0.0, 0.5, 0.1]})
    r = od.transfer_ratios(tr, {("mlp", 0): 10}).set_index("surrogate").ratio
    assert r["q8"] == pytest.approx(5.0) and r["p50"] == pytest.approx(1.0)
    assert list(od.sibling_rows(od.transfer_ratios(tr, {("mlp", 0): 10})).surrogate) == ["q8", "p50"]


def _queries(prior, queries, success, cap=100):
    return pd.DataFrame({"arch": "mlp", "seed": 0, "prior": prior, "input": np.arange(len(queries)),
                         "queries": queries, "success": success, "cap": cap})


def test_query_summary_counts_failures_at_the_cap_and_marks_censored_medians():
    q = pd.concat([_queries("none", [40, 60, 100], [False, False, True]),
                   _queries("q8", [2, 4, 6], [True, True, True]),
                   _queries("independent", [10, 30, 50], [True, True, False])], ignore_index=True)
    summary = od.query_summary(q).set_index("prior")
    assert summary.median_queries["none"] == 100 and bool(summary.censored["none"])
    assert summary.median_queries["independent"] == 30 and not bool(summary.censored["independent"])
    fam = SimpleNamespace(arch="mlp", seed=0, siblings={"q8": None})
    ratios = od.query_ratios(od.query_summary(q), [fam]).set_index("vs")
    assert ratios.ratio["independent"] == pytest.approx(7.5) and ratios.ratio["none"] == pytest.approx(25)
    assert bool(ratios.lower_bound["none"]) and not bool(ratios.lower_bound["independent"])


def test_family_reducers_average_per_family():
    f = pd.DataFrame({"arch": ["a"] * 4 + ["b"] * 4, "seed": 0,
                      "before": [1, 1, 1, 1, 1, 1, 0, 0], "after": [0, 0, 1, 1, 1, 1, 0, 0]})
    assert od.family_mean_cut(f) == pytest.approx((0.5 + 0.0) / 2)
    q = pd.DataFrame({"arch": ["a"] * 3 + ["b"] * 3 + ["c"] * 3, "seed": 0,
                      "before": [1, 2, 3, 10, 10, 10, 5, 5, 5], "after": [10, 20, 30, 10, 10, 10, 50, 50, 50]})
    assert od.family_median_query_ratio(q) == pytest.approx(10.0)
    assert od.spearman(pd.DataFrame({"grad_cos": [0.1, 0.2, 0.3, 0.4], "transfer": [0.2, 0.1, 0.5, 0.9]})) \
        == pytest.approx(0.8)


def test_paired_tables_line_up_before_and_after_per_input():
    cfg = _cfg()
    tr_inputs = pd.DataFrame({"arch": "mlp", "seed": 0, "surrogate": ["q8", "q8", "p50", "p50"],
                              "input": [0, 1, 0, 1], "fooled": [1.0, 1.0, 0.0, 1.0]})
    u = od.Unpairing(
        summary=pd.DataFrame(),
        transfer=pd.DataFrame({"arch": "mlp", "seed": 0, "surrogate": "q8", "input": [0, 1, 0, 1],
                               "fooled": [0.0, 1.0, 1.0, 1.0], "lam": [3.0, 3.0, 0.0, 0.0]}),
        queries=pd.concat([_queries("unpaired lambda=3", [50, 100], [True, False]).assign(lam=3.0),
                           _queries("unpaired lambda=0", [5, 5], [True, True]).assign(lam=0.0)]),
        accuracy=pd.DataFrame({"arch": "mlp", "seed": 0, "lam": [np.nan, np.nan, 3.0, 3.0], "example": [0, 1, 0, 1],
                               "correct": [1.0, 1.0, 1.0, 0.0]}))
    t = od.paired_transfer(tr_inputs, u, cfg)
    assert list(t.before) == [1.0, 1.0] and list(t.after) == [0.0, 1.0] and list(t.finetune_only) == [1.0, 1.0]
    q = od.paired_queries(_queries("q8", [5, 7], [True, True]), u, cfg)
    assert list(q.before) == [5, 7] and list(q.after) == [50, 100]
    a = od.paired_accuracy(u, cfg)
    assert list(a.before) == [1.0, 1.0] and list(a.after) == [1.0, 0.0]


def _cfg(**over):
    values = dict(dataset="mnist5k", archs=["mlp"], epochs=1, quant_bits=[8], prune_ratios=[0.5],
                  finetune_epochs=1, eps=0.1, pgd_steps=5, n_attack=40, n_query=4, query_cap=100,
                  rgf_samples=4, unpair_sibling="q8", unpair_lambda=3.0, unpair_lambdas=[0.0, 3.0],
                  unpair_epochs=1, seeds=[0], c1_min_ratio=2.0, c1b_min_ratio=2.0, c2_min_rho=0.0,
                  c3_min_cut=0.5, c3_max_acc_drop=0.02, c4_min_ratio=10.0)
    values.update(over)
    return od.Config.from_params(values)


def test_claims_give_holds_does_not_hold_and_inconclusive():
    rng = np.random.default_rng(0)
    n = 24
    gc = np.linspace(0.1, 0.9, n)
    tr = pd.DataFrame({"arch": "mlp", "seed": 0, "surrogate": [f"q{i}" for i in range(n)],
                       "ratio": np.full(n, 5.0) + rng.normal(0, 0.5, n), "grad_cos": gc,
                       "transfer": rng.uniform(0, 1, n)})
    qratio = pd.DataFrame({"vs": "independent", "seed": 0, "ratio": np.full(n, 1.0) + rng.uniform(0, 0.1, n),
                           "lower_bound": False})
    m = 200
    transfer_pairs = pd.DataFrame({"arch": "mlp", "seed": 0, "before": 1.0,
                                   "after": (rng.uniform(size=m) < 0.1).astype(float)})
    accuracy_pairs = pd.DataFrame({"seed": 0, "before": np.ones(1000), "after": 1.0 - (np.arange(1000) < 5)})
    query_pairs = pd.DataFrame({"arch": "mlp", "seed": 0, "before": np.full(20, 10), "after": np.full(20, 20)})
    rows = {c.id: c for c in od.claims(tr, qratio, transfer_pairs, accuracy_pairs, query_pairs, _cfg())}
    assert rows["C1"].verdict == "holds"
    assert rows["C1b"].verdict == "does not hold" and rows["C4"].verdict == "does not hold"
    assert rows["C2"].verdict == "inconclusive"
    assert rows["C3"].verdict == "holds" and [p["verdict"] for p in rows["C3"].parts] == ["holds", "holds"]
    assert "50%" in rows["C3"].statement and "2 points" in rows["C3"].statement


@pytest.mark.parametrize("argv, fragment", [
    (["-p", "n_attack=10000"], "lower n_attack"),
    (["-p", "n_query=300"], "exceeds n_attack"),
    (["-p", "query_cap=50", "-p", "rgf_samples=60"], "raise query_cap"),
    (["-p", "prune_ratios=0.5,0.501"], "list each bit width"),
    (["-p", "archs=mlp,mlp"], "archs lists"),
    (["-p", "quant_bits=8", "-p", "unpair_sibling=q4"], "unpair_sibling 'q4' is not built"),
])
def test_sizes_and_names_are_checked_before_the_run(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "ondevice_unpairing", *argv])
    err = capsys.readouterr().err
    assert code == 2 and fragment in err and err.count("\n") == 1
    assert not (tmp_path / "runs").exists()
