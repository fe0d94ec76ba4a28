"""Distillation attack and the ingrain defence (Yang, Dang & Chang, 2019): the study module's
rules, reducers and claims (ipkit.studies.distillation_ingrain). The watermark schemes, the KD
loss, the transformations and the ingrain loss are tested under tests/methods/."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ipkit import cli
from ipkit.evidence import sensitivity
from ipkit.methods.train import fit, kd_loss
from ipkit.notebook import widgets
from ipkit.notebook.registry import get_study
from ipkit.orchestrate import sweep
from ipkit.studies import distillation_ingrain as di
from tests.helpers import _model, _pool

# --- the study module ---------------------------------------------------------------------


def _cfg(**changes) -> di.Config:
    values = {n: p.default for n, p in get_study("distillation_ingrain").params.items()}
    return di.Config.from_params(SimpleNamespace(**{**values, **changes}))


def test_config_sweeps_include_the_headline_settings():
    cfg = _cfg(lambdas=[4.0, 0.25], ingrain_lambda=1.0, temperatures=[16.0], distill_temperature=4.0)
    assert cfg.sweep_lambdas() == [0.25, 1.0, 4.0]
    assert cfg.sweep_temperatures() == [4.0, 16.0]
    assert cfg.schemes == ("content", "noise", "unrelated", "abstract")
    assert cfg.clearly_above == 0.2


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["-p", "ingrainer_ordinary=100000"], "ingrainer_ordinary=100000 exceeds the owner's 2000 images"),
        (["-p", "wm_count=1000"], "wm_count=1000 exceeds the"),
        (["-p", "lambdas=1,1"], "lambdas' lists 1.0 twice"),
    ],
)
def test_sizes_are_checked_before_the_run(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "distillation_ingrain", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_per_seed_reduces_carriers_and_examples_to_accuracies():
    wm = pd.DataFrame(
        {"seed": 0, "scheme": "content", "carrier": [0, 1], "before": [1, 1], "after": [0, 1], "floor": [0.0, 1 / 3]}
    )
    acc = pd.DataFrame(
        {
            "seed": 0,
            "scheme": ["none"] * 2 + ["content"] * 2,
            "example": [0, 1, 0, 1],
            "teacher": [1, 1, 1, 0],
            "student": [1, 0, 0, 0],
        }
    )
    table = di.per_seed(wm, acc).set_index("scheme")
    assert table.loc["none", "teacher_acc"] == 1.0
    assert np.isnan(table.loc["none", "wm_after"])
    assert table.loc["content", "wm_after"] == 0.5
    assert table.loc["content", "floor"] == pytest.approx(1 / 6)
    summary = di.summarize(table.reset_index())
    assert summary.loc["content", "acc_drop"] == 0.5
    assert summary.loc["content", "above_floor"] == pytest.approx(1 / 3)


def test_kept_is_the_share_of_transformations_that_keep_the_label():
    hits = pd.DataFrame(
        {
            "seed": 0,
            "scheme": "noise",
            "transform": ["original", "prune", "int8"] * 2,
            "carrier": [0, 0, 0, 1, 1, 1],
            "hit": [1, 1, 0, 1, 0, 0],
        }
    )
    assert di.kept(hits).kept.tolist() == [0.5, 0.0]


def test_paired_and_scheme_gap():
    long = pd.DataFrame({"seed": 0, "example": [0, 0, 1, 1], "lam": [1.0, 4.0, 1.0, 4.0], "clean": [1, 0, 1, 1]})
    wide = di.paired(long, "example", "lam", "clean")
    assert wide[1.0].tolist() == [1, 1]
    assert wide[4.0].tolist() == [0, 1]
    f = pd.DataFrame({"scheme": ["ingrain", "ingrain", "a", "b"], "x": [1.0, 0.5, 0.0, 0.5]})
    assert di.scheme_gap("x", "ingrain", ["a", "b"])(f) == pytest.approx(0.5)


def _units(seeds=(0, 1, 2), n_wm=50, n_test=1000, abstract_before=1):
    wm, acc, lam_wm, lam_acc, hits = [], [], [], [], []
    idx = np.arange(n_test)
    for seed in seeds:
        for scheme in ("content", "abstract", "ingrain"):
            before = abstract_before if scheme == "abstract" else 1
            wm.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "scheme": scheme,
                        "carrier": np.arange(n_wm),
                        "before": before,
                        "after": int(scheme == "ingrain"),
                        "floor": 0.0,
                    }
                )
            )
            for transform in ("original", "prune", "int8"):
                hits.append(
                    pd.DataFrame(
                        {"seed": seed, "scheme": scheme, "transform": transform, "carrier": np.arange(n_wm), "hit": 1}
                    )
                )
        for scheme, teacher, student in (
            ("none", 1, 1),
            ("content", 1, 1),
            ("abstract", 1, (idx % 10 != 0)),
            ("ingrain", (idx % 50 != 0), 1),
        ):
            acc.append(
                pd.DataFrame(
                    {
                        "seed": seed,
                        "scheme": scheme,
                        "example": idx,
                        "teacher": np.broadcast_to(teacher, n_test).astype(int),
                        "student": np.broadcast_to(student, n_test).astype(int),
                    }
                )
            )
        for lam, after, clean in ((0.25, 0, 1), (4.0, 1, 0)):
            lam_wm.append(
                pd.DataFrame({"seed": seed, "lam": lam, "carrier": np.arange(n_wm), "before": 1, "after": after})
            )
            lam_acc.append(pd.DataFrame({"seed": seed, "lam": lam, "example": idx, "clean": clean, "student": 1}))
    return [pd.concat(f, ignore_index=True) for f in (wm, acc, lam_wm, lam_acc, hits)]


def test_claims_give_holds_does_not_hold_and_inconclusive():
    wm, acc, lam_wm, lam_acc, hits = _units()
    cfg = _cfg(schemes=["content", "abstract"], lambdas=[0.25, 4.0], ingrain_lambda=4.0)
    rows = {c.id: c for c in di.claims(wm, acc, lam_wm, lam_acc, hits, cfg)}
    d1 = rows["D1"]
    assert d1.verdict == "does not hold"
    assert len(d1.parts) == 4
    assert d1.trainings == 3
    assert [p["verdict"] for p in d1.parts] == ["holds", "holds", "holds", "does not hold"]
    assert d1.parts[3]["value"] == pytest.approx(0.1)
    assert d1.unit == "test examples over 3 seeds"
    assert "plain's student - abstract's student" in d1.parts[3]["name"]
    assert d1.level == pytest.approx(1 - 0.05 / 4)
    assert rows["D2"].verdict == "holds"
    assert len(rows["D2"].parts) == 3
    assert rows["D2"].parts[0]["ceiling"] == pytest.approx(1.0)
    assert rows["D3"].verdict == "inconclusive"
    assert rows["D3"].ci[0] < 0.02 < rows["D3"].ci[1]
    assert rows["D4"].verdict == "holds"
    assert rows["D4"].threshold == pytest.approx(-0.1)
    assert rows["D5"].verdict == "holds"
    assert "lambda 4 - 0.25" in rows["D5"].parts[0]["name"]
    assert "0.03" in d1.statement
    assert "0.02" in rows["D3"].statement
    assert "apart" not in d1.statement
    assert [rows[k].quantifier for k in sorted(rows)] == ["every", "every", "on average", "on average", "direction"]
    for k, row in rows.items():  # the paper's words are quoted from the study brief
        assert row.paper_words == di.PAPER_WORDS[k]
        assert row.paper_words in BRIEF_TEXT


BRIEF_TEXT = """- Knowledge distillation (train a fresh student on the watermarked teacher's
  soft outputs over ordinary data) removes the watermarks of existing schemes, with little loss of accuracy.
  Ingrain is more robust to distillation; its robustness to other common transformations (fine-tuning, pruning,
  quantization) is comparable to existing schemes; the weight of the regulariser trades watermark robustness
  against accuracy.""".replace("\n  ", " ")


def test_d1_measures_the_drop_against_the_plain_models_student_not_the_teacher():
    wm, acc, lam_wm, lam_acc, hits = _units()
    acc.loc[acc.scheme == "abstract", "student"] = 1
    acc["student"] = acc.student * (acc.example % 10 != 0)  # the attack itself costs every student 0.1
    cfg = _cfg(schemes=["content", "abstract"], lambdas=[0.25, 4.0], ingrain_lambda=4.0)
    d1 = di.claims(wm, acc, lam_wm, lam_acc, hits, cfg)[0]
    assert d1.verdict == "holds"
    assert all(p["value"] == pytest.approx(0.0) for p in d1.parts[1::2])


def test_a_baseline_below_the_embedding_level_is_neither_removed_nor_compared():
    wm, acc, lam_wm, lam_acc, hits = _units(abstract_before=0)
    cfg = _cfg(schemes=["content", "abstract"], lambdas=[0.25, 4.0], ingrain_lambda=4.0)
    rows = {c.id: c for c in di.claims(wm, acc, lam_wm, lam_acc, hits, cfg)}
    assert rows["D1"].verdict == "holds" and len(rows["D1"].parts) == 2  # abstract's student drop is not counted
    assert [p["name"] for p in rows["D2"].parts] == ["ingrain: wm after - floor", "ingrain - content (above floor)"]
    assert "reported apart: abstract" in rows["D1"].statement
    assert "reported apart: abstract" in rows["D2"].statement
    cfg_none = _cfg(schemes=["abstract"], lambdas=[0.25, 4.0], ingrain_lambda=4.0)
    rows = {c.id: c for c in di.claims(wm, acc, lam_wm, lam_acc, hits, cfg_none)}
    assert rows["D1"].verdict == "inconclusive"
    assert "no baseline reaches 0.95" in rows["D1"].parts[0]["name"]
    assert rows["D4"].verdict == "inconclusive"
    assert len(rows["D2"].parts) == 1
    wm.loc[wm.scheme == "ingrain", "before"] = 0
    d2 = di.claims(wm, acc, lam_wm, lam_acc, hits, cfg)[1]
    assert "ingrain itself is not embedded at 0.95" in d2.statement


def test_fewer_than_three_seeds_cap_a_decided_claim_at_inconclusive():
    wm, acc, lam_wm, lam_acc, hits = _units(seeds=(0, 1))
    cfg = _cfg(schemes=["content", "abstract"], lambdas=[0.25, 4.0], ingrain_lambda=4.0)
    d2 = {c.id: c for c in di.claims(wm, acc, lam_wm, lam_acc, hits, cfg)}["D2"]
    assert d2.verdict == "inconclusive"
    assert d2.trainings == 2
    assert "uncapped: holds" in d2.why


def test_a_single_lambda_leaves_the_trade_off_inconclusive():
    wm, acc, lam_wm, lam_acc, hits = _units()
    cfg = _cfg(schemes=["content", "abstract"], lambdas=[4.0], ingrain_lambda=4.0)
    d5 = di.claims(wm, acc, lam_wm[lam_wm.lam == 4.0], lam_acc[lam_acc.lam == 4.0], hits, cfg)[4]
    assert d5.verdict == "inconclusive"
    assert d5.parts[0]["name"].startswith("one lambda only")
    assert d5.n == 0


def test_declared_sweeps_name_real_parameters_and_include_the_defaults():
    info = get_study("distillation_ingrain")
    params = info.params
    for sw in (*di.SENSITIVITY, *di.ALTERNATIVES):
        assert set(sw.grid) <= set(params)
        assert set(sw.fixed) <= set(params)
        sweep.validate(info, "default", sweep.settings(sweep.parse_grid(info, sensitivity.grid_pairs(sw)), sw.fixed))
    for sw in di.ALTERNATIVES:
        assert not sw.fixed
        assert all(params[k].default in v for k, v in sw.grid.items())
    joint = [sw for sw in di.SENSITIVITY if set(sw.grid) == {"ingrainer_ordinary", "ingrain_lambda"}]
    assert joint
    assert joint[0].claims == ("D2", "D3")


def _split(n: int = 300, classes: int = 4):
    x, y = _pool(n, classes)
    return SimpleNamespace(owner=SimpleNamespace(x=x[:150], y=y[:150]), num_classes=classes)


def test_spread_labels_cover_every_class_evenly_and_single_keeps_the_target():
    s = _split()
    spread = di.carriers(s, "unrelated", 20, seed=3, labels="spread")
    single = di.carriers(s, "unrelated", 20, seed=3, labels="single")
    assert torch.equal(spread.x, single.x)
    assert bool((single.y == di.HIDDEN.target_class).all())
    assert np.bincount(spread.y.numpy(), minlength=4).tolist() == [5, 5, 5, 5]
    assert torch.equal(spread.y, di.carriers(s, "unrelated", 20, seed=3).y)
    assert not torch.equal(spread.y, di.carriers(s, "unrelated", 20, seed=4).y)
    content = di.carriers(s, "content", 10, seed=3, labels="spread")
    assert bool((content.y == di.HIDDEN.target_class).all())  # spread applies to unrelated carriers only
    with pytest.raises(ValueError, match="single or spread"):
        di.carriers(s, "unrelated", 10, labels="many")


def test_early_stopped_attack_stops_after_patience_and_keeps_its_best_epoch():
    x, y = _pool()
    teacher = _model(0)
    fit(teacher, x, y, epochs=4, lr=0.05, batch_size=64)
    stalled = _model(1)
    best, ran = di.distill_early_stopped(
        teacher, x[:200], x[200:], stalled, temperature=4.0, epochs=10, patience=2, lr=1e-7, batch_size=64
    )
    assert (best, ran) == (1, 3)  # no epoch after the first improves the held-out loss by min_delta
    learner = _model(1)
    best, ran = di.distill_early_stopped(
        teacher, x[:200], x[200:], learner, temperature=4.0, epochs=4, patience=4, lr=0.05, batch_size=64
    )
    assert ran == 4
    assert 1 <= best <= 4
    assert not learner.training
    with torch.no_grad():
        held = (teacher(x[200:]) / 4.0).softmax(1)
        assert float(kd_loss(learner(x[200:]), held, 4.0)) < float(kd_loss(stalled(x[200:]), held, 4.0))


def test_attacker_parts_hold_out_a_disjoint_fifth():
    s = SimpleNamespace(attacker=SimpleNamespace(x=torch.arange(100.0).reshape(100, 1)))
    train, held = di.attacker_parts(s)
    assert len(train) == 80
    assert len(held) == 20
    assert not set(train.flatten().tolist()) & set(held.flatten().tolist())


def test_floor_models_use_the_student_architecture(monkeypatch):
    built = []
    monkeypatch.setattr(di.recipes, "independent_model", lambda s, arch, **kw: built.append(arch) or arch)
    st = di.Setup(s=None, cfg=_cfg(arch="cnn", student_arch="lenet5"))
    assert st.independents() == ["lenet5"] * di.HIDDEN.floor_models


def test_schemes_below_the_embedding_level_are_reported_apart():
    wm, acc, *_ = _units(abstract_before=0)
    table = di.per_seed(wm, acc)
    assert di.embedded_schemes(table, ["content", "abstract"], 0.95) == ["content"]
    summary = di.summarize(table, 0.95)
    assert summary.loc["content", "embedded"]
    assert not summary.loc["abstract", "embedded"]
    assert summary.loc["abstract", "vs_plain_student"] == pytest.approx(0.1)
    assert di.best_baseline(summary.assign(above_floor=[0, 0, 0.9, 0.1])) == "content"  # abstract is not embedded


def test_explore_draws_ingrain_of_the_first_seed_at_the_controls_values(digits, monkeypatch):
    drawn = []
    monkeypatch.setattr(di, "plot_explore", lambda *args: drawn.append(args))
    st = di.Setup(digits, _cfg(dataset="digits", seeds=[2], ingrain_lambda=1.0, distill_temperature=4.0))
    di.explore(st)
    assert drawn == [(st, "ingrain", 1.0, 4.0, 2)]
    assert widgets.last_panel().values() == {"lam": 1.0, "temperature": 4.0, "scheme": "ingrain"}


def test_recorded_metrics_average_robustness_over_transformations_only():
    table = pd.DataFrame({"scheme": ["content", "abstract", "ingrain"], "seed": 0, "wm_before": [1.0, 0.2, 1.0]})
    summary = pd.DataFrame(
        {"above_floor": [0.3, 0.6, 0.1], "embedded": [True, False, True]},
        index=pd.Index(["content", "abstract", "ingrain"], name="scheme"),
    )
    robust = pd.DataFrame(
        {"scheme": ["content"] * 3, "transform": ["original", "prune", "quant"], "wm_acc": [1.0, 0.5, 0.3]}
    )
    empty = pd.DataFrame()
    metrics = di.recorded_metrics(
        table, summary, empty, robust, empty, _cfg(schemes=["content", "abstract"], embed_level=0.9)
    )
    assert metrics["robustness_mean_wm"] == {"content": pytest.approx(0.4)}
    assert metrics["best_baseline"] == "content"
    assert metrics["embedded"] == ["content"]
    assert [r["scheme"] for r in metrics["schemes"]] == ["content", "abstract", "ingrain"]
