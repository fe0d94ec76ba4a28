"""ModelDiff (Li et al., ISSTA 2021): the reuse zoo and the study's reducers and claims
(ipkit.studies.modeldiff). DDV similarity and its baselines are in tests/methods/test_similarity.py."""

import math

import pandas as pd
import pytest
import torch

from ipkit import cli
from ipkit.methods import similarity, transforms
from ipkit.notebook import widgets
from ipkit.studies import modeldiff as md
from tests.helpers import _mlp, _seeds


def _scores(rows):
    """A score table from (reference, suspect, relation, kind, task, score) rows."""
    return pd.DataFrame(
        [
            dict(method="modeldiff", seed=0, reference=r, suspect=n, relation=rel, kind=k, task=t, score=v)
            for r, n, rel, k, t, v in rows
        ]
    )


def test_correctness_needs_source_above_every_unrelated():
    sc = _scores(
        [
            ("s", "d1", "prune-20", "prune-20", "A", 0.9),
            ("s", "d2", "distill", "distill", "A", 0.5),
            ("s", "u", "unrelated", "unrelated", "A", 0.6),
            ("s", "ub", "unrelated", "unrelated", "B", 0.95),
        ]
    )
    c = md.correctness(sc).set_index("suspect")
    assert bool(c.correct["d1"])
    assert not bool(c.correct["d2"])
    assert c.max_unrelated["d1"] == 0.6  # task B's unrelated model does not compete on task A


def test_margins_leave_other_sources_near_copies_out_of_the_unrelated_mean():
    sc = _scores(
        [
            ("s", "d", "prune-20", "prune-20", "A", 0.9),
            ("s", "t", "src1", "source", "A", 0.4),
            ("s", "t/prune-20", "unrelated", "prune-20", "A", 0.95),
            ("s", "u", "unrelated", "unrelated", "A", 0.2),
        ]
    )
    sc.loc[1, "relation"] = "unrelated"
    m = md.type_margins(sc)
    assert len(m) == 1
    assert m.unrelated[0] == pytest.approx(0.3)
    assert m.margin[0] == pytest.approx(0.6)
    summary = md.margin_summary(pd.concat([m, m.assign(derived=0.5, margin=0.2)]))
    assert summary.margin[0] == pytest.approx(0.4)


def test_pairs_gain_pairs_each_target_at_fewest_and_most_pairs():
    curve = pd.DataFrame(
        {
            "n_pairs": [5, 5, 50, 50],
            "seed": 0,
            "reference": "s",
            "suspect": ["a", "b", "a", "b"],
            "reuse": "distill",
            "correct": [False, True, True, True],
        }
    )
    g = md.pairs_gain(curve).set_index("suspect")
    assert list(g.correct_fewest) == [0.0, 1.0]
    assert list(g.correct_most) == [1.0, 1.0]
    summary = md.pairs_curve_summary(curve).set_index("n_pairs").correctness
    assert summary[5] == 0.5
    assert summary[50] == 1.0


def test_correctness_table_counts_not_applicable_as_missed_in_all():
    correct = pd.DataFrame(
        {
            "method": ["modeldiff", "modeldiff", "weight_cosine", "weight_cosine"],
            "reuse": ["distill", "steal-other"] * 2,
            "applicable": [True, True, True, False],
            "correct": [True, False, True, False],
        }
    )
    t = md.correctness_table(correct)
    assert t.loc["all", "modeldiff"] == 0.5
    assert t.loc["all", "weight_cosine"] == 0.5
    assert math.isnan(t.loc["steal-other", "weight_cosine"])
    assert t.loc["all", "paper"] == md.PAPER_CORRECTNESS
    assert t.loc["steal-other", md.AUTHORS_COLUMN] == 0
    assert t.loc["all", md.AUTHORS_COLUMN] == pytest.approx(84 / 108)


def _cfg(**over):
    values = dict(
        dataset="mnist5k",
        archs=["mlp"],
        sources_per_arch=2,
        reuse_types=list(md.REUSE_TYPES),
        epochs=1,
        finetune_epochs=1,
        steal_budget=100,
        n_inputs=10,
        pgd_eps=0.06,
        authors_pgd_eps=0.0136,
        pgd_steps=5,
        methods=["modeldiff", "weight_cosine"],
        seeds=[0, 1],
        protocols=["strict", "authors"],
        authors_archs=["mlp"],
        authors_pretrain="owner",
        m1_min_correctness=0.817,
        m2_min_margin=0.0,
        m3_min_correctness=0.8,
        m3_max_weight_applicable=0.5,
        m4_min_gain=0.0,
    )
    values.update(over)
    return md.Config.from_params(values)


def _units(n, rate, **cols):
    k = round(n * rate)
    return pd.DataFrame(
        {
            "seed": [i % 3 for i in range(n)],
            "suspect": [f"t{i}" for i in range(n)],
            "correct": [True] * k + [False] * (n - k),
            **cols,
        }
    )


def test_claims_give_holds_does_not_hold_and_inconclusive():
    correct = pd.concat(
        [
            _units(200, 0.97, method="modeldiff", reuse="distill", applicable=True),
            _units(40, 0.0, method="modeldiff", reuse="steal-other", applicable=True),
            _units(40, 0.0, method="weight_cosine", reuse="steal-other", applicable=False),
        ],
        ignore_index=True,
    )
    correct.loc[correct.reuse == "steal-other", "suspect"] += "x"
    rng = __import__("numpy").random.default_rng(0)
    margins = pd.DataFrame(
        {"seed": [i % 3 for i in range(60)], "reuse": ["distill"] * 60, "margin": rng.normal(0.0, 0.3, 60)}
    )
    curve = pd.DataFrame(
        {
            "n_pairs": [5] * 40 + [100] * 40,
            "seed": [i % 3 for i in range(40)] * 2,
            "reference": "s",
            "suspect": [f"t{i}" for i in range(40)] * 2,
            "reuse": "distill",
            "correct": [False] * 30 + [True] * 10 + [True] * 40,
        }
    )
    rows = {c.id: c for c in md.claims(correct, margins, curve, _cfg())}
    assert rows["M4"].verdict == "holds"
    assert rows["M4"].holds
    assert rows["M3"].verdict == "does not hold"
    assert [p["verdict"] for p in rows["M3"].parts] == ["holds", "does not hold"]
    assert rows["M2"].verdict == "inconclusive"
    assert "0.817" in rows["M1"].statement
    assert rows["M1"].n == 240
    assert rows["M1"].trainings == 3
    assert rows["M1"].statement.startswith("(beyond the paper)")
    assert rows["M3"].statement.startswith("(beyond the paper)")
    assert rows["M3"].paper_words == ""
    assert rows["M2"].quantifier == "every"
    assert rows["M4"].quantifier == "direction"
    assert all(rows[i].paper_words for i in ("M2", "M4"))


def test_one_training_caps_every_verdict():
    """The zoo's trainings are the claims' outer unit: one training decides nothing."""
    correct = _units(200, 0.99, method="modeldiff", reuse="distill", applicable=True).assign(seed=0)
    margins = pd.DataFrame({"seed": 0, "reuse": ["distill"] * 50, "margin": 0.5})
    curve = pd.DataFrame(columns=["n_pairs", "seed", "reference", "suspect", "reuse", "correct"])
    rows = {c.id: c for c in md.claims(correct, margins, curve, _cfg(seeds=[0]))}
    assert rows["M1"].verdict == "inconclusive"
    assert "1 training" in rows["M1"].why


def _authors_rows(rows):
    return pd.DataFrame(
        [dict(seed=0, reference=r, suspect=t, reuse=k, parent=p, other_root=o, score=v) for r, t, k, p, o, v in rows]
    )


def test_authors_counting_compares_the_parent_with_other_roots_only():
    sc = _authors_rows(
        [
            ("cnn-root/transfer-10A", "cnn-root/transfer-10A/prune-20", "prune-20", True, False, 0.6),
            ("mlp-root", "cnn-root/transfer-10A/prune-20", "prune-20", False, True, 0.5),
            ("mlp-scratchA", "cnn-root/transfer-10A/prune-20", "prune-20", False, True, 0.55),
            ("cnn-scratchA", "cnn-scratchA/steal-same", "steal-same", True, False, 0.4),
            ("mlp-root", "cnn-scratchA/steal-same", "steal-same", False, True, 0.7),
        ]
    )
    c = md.authors_correctness(sc).set_index("suspect")
    assert bool(c.correct["cnn-root/transfer-10A/prune-20"])
    assert c.max_other_root["cnn-root/transfer-10A/prune-20"] == 0.55
    assert not bool(c.correct["cnn-scratchA/steal-same"])
    assert not bool(c.headline["cnn-scratchA/steal-same"])
    strict = pd.DataFrame({"method": "modeldiff", "reuse": ["prune-20", "steal-same"], "correct": [False, False]})
    t = md.protocol_table(strict, c.reset_index()).set_index("reuse")
    assert t.authors_protocol["all"] == 0.5
    assert t.authors_protocol["headline"] == 1.0
    assert t.authors_targets["all"] == 2
    assert t.strict["all"] == 0
    assert t[md.AUTHORS_COLUMN]["headline"] == pytest.approx(72 / 84)


def test_authors_claims_read_the_headline_filter():
    correct = _units(40, 1.0, method="modeldiff", reuse="distill", applicable=True)
    margins = pd.DataFrame({"seed": 0, "reuse": ["distill"] * 4, "margin": [0.1, 0.2, 0.3, 0.2]})
    curve = pd.DataFrame(columns=["n_pairs", "seed", "reference", "suspect", "reuse", "correct"])
    authors = pd.DataFrame(
        {
            "seed": [i % 3 for i in range(60)],
            "suspect": [f"t{i}" for i in range(60)],
            "reuse": ["prune-20"] * 40 + ["steal-same"] * 10 + ["steal-other"] * 10,
            "correct": [True] * 40 + [False] * 20,
            "headline": [True] * 40 + [False] * 10 + [True] * 10,
        }
    )
    rows = {c.id: c for c in md.claims(correct, margins, curve, _cfg(), authors)}
    assert rows["M1-authors"].n == 50
    assert rows["M3-authors"].verdict == "does not hold"
    assert rows["M1-authors"].trainings == 3
    assert "91.7%" in rows["M1-authors"].paper_words
    assert "12 cross-architecture thieves" in rows["M1-authors"].statement
    assert "M1-authors" not in {c.id for c in md.claims(correct, margins, curve, _cfg(protocols=["strict"]), authors)}


def test_claims_without_the_methods_they_need_are_inconclusive():
    correct = pd.DataFrame(columns=["method", "seed", "suspect", "reuse", "applicable", "correct"])
    margins = pd.DataFrame(columns=["seed", "reuse", "margin"])
    curve = pd.DataFrame(columns=["n_pairs", "seed", "reference", "suspect", "reuse", "correct"])
    assert {c.verdict for c in md.claims(correct, margins, curve, _cfg())} == {"inconclusive"}


def test_cache_key_includes_the_task(monkeypatch):
    """Two unrelated models of one architecture on tasks A and B with halves of one size
    must not share a cache entry (issue 13)."""
    from ipkit.methods import data

    s = data.split("digits", seed=0, device="cpu")
    t = md.make_tasks(s)
    keys = []
    monkeypatch.setattr(
        md.cache, "cached_model", lambda recipe, params, build, train: keys.append(md.cache.key(recipe, params))
    )
    half = md.TensorData(t.a_attacker.x[:50], t.a_attacker.y[:50])
    for task in ("A", "B"):
        md.trained("unrelated", s, "mlp", half, task, t.num_classes, 1, seed=1000)
    assert keys[0] != keys[1]


def test_authors_zoo_is_built_as_their_benchmark(digits):
    """benchmark.py: thieves are children of the transfer models; scratch models have
    children too, but only descendants of a pretrained root are targets (float16 and
    same-architecture stealing skipped, as their evaluate.ipynb)."""
    cfg = _cfg(
        archs=["mlp"],
        authors_archs=["cnn", "mlp"],
        reuse_types=["transfer-50", "quant-fp16", "prune-20", "steal-same", "steal-other"],
    )
    zoo = md.build_authors_zoo(digits, cfg)
    roots = {z.name: z.arch for z in zoo if z.reuse == "source"}
    assert roots == {"cnn-pretrain": "cnn", "mlp-pretrain": "mlp"}
    thieves = {z.name: z.arch for z in zoo if z.reuse == "steal-other"}
    assert thieves["cnn-pretrain/transfer-50A/steal-other"] == "mlp"
    assert thieves["mlp-scratchB/steal-other"] == "cnn"
    targets = md.authors_targets(zoo)
    # per root: 2 transfers, each with prune-20 and steal-other scored (fp16 and steal-same skipped)
    assert len(targets) == 2 * 2 * 3
    assert all(z.root.endswith("-pretrain") for z in targets)
    assert {z.reuse for z in targets} == {"transfer-50", "prune-20", "steal-other"}
    assert any(z.name == "cnn-scratchA/prune-20" for z in zoo)


def _zoo_model(name, model, task="A", lineage=None, root=None, reuse=None):
    lineage = lineage or name
    return md.ZooModel(
        name, "mlp", task, lineage, reuse or ("source" if lineage == name else "prune-20"), model, 1.0, root or lineage
    )


def test_authors_scores_probe_each_target_on_its_own_data(monkeypatch):
    """evaluate.ipynb: seeds from the target's own training data, a fresh draw per target,
    pairs made on the target (its float parent when quantized), the parent and every
    non-quantized model of another root scored on that one probe."""
    r1, c1, r2, c2, u = (_mlp(i) for i in range(5))
    q1 = transforms.quantize_int8(c1)
    object.__setattr__(q1, "float_parent", c1)
    zoo = [
        _zoo_model("r1", r1),
        _zoo_model("r1/c", c1, "A", "r1", "r1"),
        _zoo_model("r1/c/q", q1, "A", "r1/c", "r1", "quant-int8"),
        _zoo_model("r2", r2),
        _zoo_model("r2/c", c2, "B", "r2", "r2"),
        _zoo_model("u", u, "B", reuse="unrelated"),
    ]
    zoo[5].reuse = "unrelated"
    data = {
        "A": md.TensorData(_seeds(40), torch.zeros(40, dtype=torch.long)),
        "B": md.TensorData(1 - _seeds(40), torch.zeros(40, dtype=torch.long)),
    }
    monkeypatch.setattr(md, "authors_task_data", lambda t: data)
    made = []
    real = similarity.authors_modeldiff_probe
    monkeypatch.setattr(
        similarity, "authors_modeldiff_probe", lambda m, x, **kw: made.append((m, x)) or real(m, x, **kw)
    )
    cfg = _cfg(n_inputs=8, pgd_steps=3)
    sc = md.authors_scores(zoo, None, cfg, seed=0)
    assert [m for m, _ in made] == [c1, q1, c2]  # the quantized target's probe is made from its pointer
    for _, x in made[:2]:
        assert any(torch.equal(x[0], row) for row in data["A"].x)
    assert not torch.equal(made[0][1], made[1][1])  # a fresh draw per target
    assert any(torch.equal(made[2][1][0], row) for row in data["B"].x)
    refs = set(sc[sc.suspect == "r1/c/q"].reference)
    assert refs == {"r1/c", "r2", "r2/c", "u"}
    assert bool(sc[(sc.suspect == "r1/c/q") & sc.parent].reference.eq("r1/c").all())
    # the batched scores equal scores on fresh, unprimed probes
    for (tm, x), name in zip(made, ["r1/c", "r1/c/q", "r2/c"]):
        probe = real(
            tm, x, seed=[n for _, n in enumerate(["r1/c", "r1/c/q", "r2/c"])].index(name), **cfg.authors_probe()
        )
        by = {z.name: z for z in zoo}
        for _, row in sc[sc.suspect == name].iterrows():
            fresh = similarity.modeldiff_score(
                by[name].model, by[row.reference].model, similarity.Probe(probe.x, probe.partner)
            )
            assert row.score == pytest.approx(fresh, abs=1e-5), (name, row.reference)  # float rounding


def test_batched_scoring_equals_unbatched():
    """similarity.prime (one pass per model over all probes) gives the scores of the
    unbatched path, up to float rounding."""
    zoo = [
        _zoo_model("s0", _mlp(0)),
        _zoo_model("s0/d", _mlp(1), lineage="s0"),
        _zoo_model("s1", _mlp(2)),
        _zoo_model("u", _mlp(3), reuse="unrelated"),
    ]
    zoo[3].reuse = "unrelated"
    q = transforms.quantize_int8(zoo[1].model)
    object.__setattr__(q, "float_parent", zoo[1].model)
    zoo.append(_zoo_model("s0/q", q, lineage="s0", reuse="quant-int8"))
    methods = ["modeldiff", "ipguard", "output_cosine", "feature_sim"]
    opts = {"modeldiff": dict(steps=3), "ipguard": dict(steps=3)}
    sc, raw = md.score_pairs(zoo, methods, _seeds(), seed=0, probe_options=opts)
    by = {z.name: z for z in zoo}
    for _, row in sc.iterrows():
        m = similarity.get_method(row.method)
        probe = m.probe(by[row.reference].model, _seeds(), seed=0, **opts.get(row.method, {}))
        assert row.score == pytest.approx(m.score(by[row.reference].model, by[row.suspect].model, probe), abs=1e-6)


def test_roots_can_pretrain_on_other_images(digits):
    train, test, k = md.pretrain_data(digits, "digits")
    assert train.x.shape[1:] == digits.owner.x.shape[1:]
    assert k == 10
    assert len(train) > len(test) > 0
    assert md.pretrain_data(digits, "owner")[0] is digits.owner
    s28 = md.Splits("fake", digits.owner, digits.attacker, digits.test, digits.classes, "f")
    object.__setattr__(s28, "owner", md.TensorData(torch.zeros(2, 3, 28, 28), torch.zeros(2, dtype=torch.long)))
    x = md.pretrain_data(s28, "digits")[0].x
    assert x.shape[1:] == (3, 28, 28)
    assert float(x.min()) >= 0
    assert float(x.max()) <= 1


def test_zoo_trainings_get_distinct_owner_seeds():
    assert md.source_seed(0, 1) == 10
    assert md.source_seed(1, 0) == 1
    assert md.source_seed(0, 0) == 0
    owners = {md.source_seed(k, i) for k in (0, 1, 2) for i in range(3)}
    assert len(owners) == 9


def test_probe_options_carry_the_declared_hyperparameters():
    opts = _cfg(pgd_eps=0.02).probe_options()
    assert opts["modeldiff"]["eps"] == 0.02
    assert opts["modeldiff"]["step_size"] == md.HYPERPARAMETERS["modeldiff_step_size"]
    assert opts["ipguard"] == dict(
        eps=md.HYPERPARAMETERS["ipguard_eps"],
        steps=md.HYPERPARAMETERS["ipguard_steps"],
        step_size=md.HYPERPARAMETERS["ipguard_step_size"],
        margin=md.HYPERPARAMETERS["ipguard_margin"],
    )
    x = _seeds(4)
    a = similarity.ipguard_probe(_mlp(0), x, eps=0.0, steps=3)
    assert torch.equal(a.x, x)  # a zero ball leaves the seeds in place


def test_other_arch_and_unknown_names():
    assert md.other_arch("cnn", ["cnn", "mlp"]) == "mlp"
    assert md.other_arch("mlp", ["mlp"]) == "cnn"
    with pytest.raises(ValueError, match="choose one of"):
        similarity.get_method("nope")
    assert set(md.REUSE_TYPES) >= {"transfer-10", "quant-fp16", "steal-other"}


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["-p", "steal_budget=50000"], "lower steal_budget"),
        (["-p", "n_inputs=2000"], "lower n_inputs"),
        (["-p", "archs=mlp,mlp"], "'archs' lists 'mlp' twice"),
        (["-p", "protocols=authors"], "protocols must include strict"),
        (["-p", "authors_archs=cnn,cnn"], "authors_archs' lists 'cnn' twice"),
        (["-p", "seeds=0,10"], "the same owner seed"),
        (["-p", "authors_pretrain=imagenet"], "authors_pretrain"),
        (["-p", "reuse_types=prune-20,steal-other"], "add a transfer-* reuse type"),
        (
            ["-p", "dataset=digits", "-p", "authors_archs=mlp,lenet5", "-p", "n_inputs=50"],
            "'authors_archs': lenet5 takes 28 or 32 pixel images",
        ),
        (["-p", "dataset=digits", "-p", "n_inputs=2000"], "lower n_inputs"),
    ],
)
def test_sizes_are_checked_before_the_run(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "modeldiff", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_explore_compares_the_first_two_models_of_the_first_training(digits, monkeypatch):
    zoo = [_zoo_model("src", _mlp(0)), _zoo_model("copy", _mlp(1), lineage="src")]
    drawn = []
    monkeypatch.setattr(md, "pair_ddvs", lambda a, b, x, seed, **opts: ((a.name, len(x), seed), b.name))
    monkeypatch.setattr(md, "compare_all", lambda a, b, x, cfg, seed: {"modeldiff": 1.0})
    monkeypatch.setattr(md, "plot_ddvs", lambda a, b, da, db, scores: drawn.append((da, db, scores)))
    md.explore({5: zoo, 6: []}, md.make_tasks(digits), _cfg(dataset="digits", seeds=[5, 6], n_inputs=10))
    assert drawn == [(("src", 10, 5), "copy", {"modeldiff": 1.0})]
    assert widgets.last_panel().values() == {"reference": "src", "suspect": "copy"}


def test_auc_reads_the_third_item_of_each_curve():
    assert md.auc({"modeldiff": ([0, 1], [0, 1], 0.75), "weight_cosine": ([], [], 0.5)}) == {
        "modeldiff": 0.75,
        "weight_cosine": 0.5,
    }
