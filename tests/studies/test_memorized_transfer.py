"""Memorized-example transfer (Venigalla 2019; Srinivas & Fleuret 2018): the study module's
rules, reducers and claims (ipkit.studies.memorized_transfer). Jacobian matching, the gradient
victim and transfer rates are tested in tests/methods/test_steal.py and test_watermark.py."""

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from ipkit import cli
from ipkit.core import stats
from ipkit.evidence import results
from ipkit.methods import data, models, watermark
from ipkit.notebook import widgets
from ipkit.notebook.registry import get_study
from ipkit.studies import memorized_transfer as mt


@pytest.fixture(scope="module")
def digits():
    return data.split("digits", seed=0, device="cpu")


# --- the study module ---------------------------------------------------------------------


def _cfg(**changes) -> mt.Config:
    values = {n: p.default for n, p in get_study("memorized_transfer").params.items()}
    return mt.Config.from_params(SimpleNamespace(**{**values, **changes}))


def test_config_is_typed_and_lists_the_query_sets():
    cfg = _cfg(query_perturbation=["noise", "ood"], strengths=[0.1, 0.5])
    assert cfg.methods == ("labels", "kd", "jacobian")
    assert isinstance(cfg.alpha, float)
    assert cfg.perturbation_settings() == [("none", 0.0), ("noise", 0.1), ("noise", 0.5), ("ood", 0.0)]


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["-p", "projections=11"], "projections 11 exceeds the 10 classes"),
        (["-p", "seeds=0,1,0"], "seeds' lists 0 twice"),
        (["-p", "grid_archs=mlp,mlp"], "grid_archs' lists 'mlp' twice"),
        (["-p", "geometry_kinds=noise,noise"], "geometry_kinds' lists 'noise' twice"),
        (
            ["-p", "ood_source=digits", "-p", "query_budget=1000"],
            "query_budget 1000 exceeds the 898 images of ood_source 'digits'",
        ),
        (
            ["-p", "ood_source=digits", "-p", "wm_kind=ood", "-p", "wm_count=1000", "-p", "query_perturbation=noise"],
            "wm_count 1000 exceeds the 898 images",
        ),
        (
            [
                "-p",
                "ood_source=digits",
                "-p",
                "geometry_kinds=ood",
                "-p",
                "wm_count=1000",
                "-p",
                "query_perturbation=noise",
            ],
            "wm_count 1000 exceeds the 898 images",
        ),
    ],
)
def test_sizes_are_checked_before_the_run(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code = cli.main(["run", "memorized_transfer", *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


def test_correlation_is_absolute_rank_correlation_and_nan_when_constant():
    f = pd.DataFrame(
        {"transferred": [False, False, True, True], "up": [1, 2, 3, 9], "down": [9, 3, 2, 1], "flat": [1, 1, 1, 1]}
    )
    rho = f.transferred.astype(float).corr(f.up, method="spearman")
    assert rho == pytest.approx(2 / 5**0.5)
    assert mt.correlation("up")(f) == pytest.approx(rho)
    assert mt.correlation("down")(f) == pytest.approx(rho)
    assert mt.correlation("up", "pearson")(f) == pytest.approx(abs(np.corrcoef([0, 0, 1, 1], [1, 2, 3, 9])[0, 1]))
    assert math.isnan(mt.correlation("flat")(f))


def test_boost_pairs_keep_each_owners_memorized_carriers():
    plain = pd.DataFrame({"seed": [0, 0], "carrier": [0, 1], "jacobian": [1, 0]})
    boosted = pd.DataFrame({"seed": [0, 0], "carrier": [1, 2], "jacobian": [1, 1]})
    pairs = mt.boost_pairs(plain, boosted)
    assert list(pairs.carrier) == [0, 1, 2]
    assert pairs.plain.mean() == pytest.approx(0.5)
    assert pairs.boosted.mean() == pytest.approx(1.0)
    assert stats.mean_difference("boosted", "plain")(pairs) == pytest.approx(1.0)  # carrier 1, memorized by both


def test_grid_and_perturbation_summaries_are_means_per_pair_and_setting():
    grid = pd.DataFrame(
        {
            "seed": 0,
            "carrier": [0, 1, 0, 1],
            "stolen": [1, 1, 0, 1],
            "floor": [0, 0, 0, 1],
            "victim_arch": "mlp",
            "thief_arch": ["mlp", "mlp", "cnn", "cnn"],
            "fidelity": 0.9,
            "victim_memorized": 1.0,
        }
    )
    summary = mt.grid_summary(grid).set_index("thief_arch")
    assert summary.loc["mlp", "transfer"] == 1.0
    assert summary.loc["cnn", "transfer"] == 0.5
    assert summary.loc["cnn", "floor"] == 0.5
    perturbed = pd.DataFrame(
        {
            "seed": [0, 0, 1, 1],
            "carrier": [0, 1, 0, 1],
            "transferred": [1, 0, 1, 1],
            "floor": 0,
            "perturbation": "noise",
            "strength": 0.1,
            "fidelity": 0.8,
        }
    )
    by_seed = mt.perturbation_summary(perturbed).set_index("seed")
    assert by_seed.loc[0, "transfer"] == 0.5
    assert by_seed.loc[1, "transfer"] == 1.0


def _tables(seeds=3, n=100, geo_n=30):
    rng = np.random.default_rng(0)
    idx = np.arange(n)
    carriers = pd.concat(
        [
            pd.DataFrame(
                {"seed": s, "carrier": idx, "labels": 0, "kd": 0, "jacobian": 1, "independent": 0, "boost": False}
            )
            for s in range(seeds)
        ]
    )
    plain = carriers.assign(jacobian=np.tile(idx % 2, seeds))
    boosted = plain.assign(jacobian=np.tile((idx % 2) | (idx % 20 == 0), seeds), boost=True)
    by_arch = pd.concat([carriers.assign(arch="mlp"), carriers.assign(arch="cnn", jacobian=0)])
    grid = pd.concat(
        [
            pd.DataFrame(
                {
                    "seed": s,
                    "carrier": idx,
                    "stolen": st,
                    "floor": 0,
                    "victim_arch": "mlp",
                    "thief_arch": t,
                    "fidelity": 0.9,
                    "victim_memorized": 1.0,
                }
            )
            for s in range(seeds)
            for t, st in (("mlp", 1), ("cnn", 0))
        ]
    )
    perturbed = pd.concat(
        [
            pd.DataFrame(
                {
                    "seed": s,
                    "carrier": idx,
                    "transferred": 1,
                    "floor": 0,
                    "perturbation": k,
                    "strength": v,
                    "fidelity": 0.9,
                }
            )
            for s in range(seeds)
            for k, v in (("none", 0.0), ("noise", 0.1), ("ood", 0.0))
        ]
    )
    m = geo_n  # 500: enough carriers that 12 independent correlations stay below 0.3 at the familywise level
    geo = pd.concat(
        [
            pd.DataFrame(
                {
                    "kind": kind,
                    "seed": np.repeat(range(seeds), m),
                    "carrier": np.tile(range(m), seeds),
                    "transferred": rng.random(seeds * m) < 0.5,
                    "nearest_query": rng.random(seeds * m),
                    "nearest_10": rng.random(seeds * m),
                    "victim_margin": rng.random(seeds * m),
                }
            )
            for kind in ("noise", "flipped")
        ]
    )
    return by_arch, plain, boosted, grid, perturbed, geo


def test_claims_give_holds_does_not_hold_and_inconclusive():
    by_arch, plain, boosted, grid, perturbed, geo = _tables(geo_n=500)
    rows = {c.id: c for c in mt.claims(by_arch, plain, grid, perturbed, geo, boosted, _cfg())}
    assert list(rows) == ["M1-mlp", "M1-cnn", "M2", "M2b", "M3", "M4", "M5"]
    assert rows["M1-mlp"].verdict == "holds"
    assert rows["M1-mlp"].holds
    assert [p["name"] for p in rows["M1-mlp"].parts] == ["jacobian - floor", "labels - floor", "kd - floor"]
    assert rows["M1-cnn"].verdict == "does not hold"
    assert rows["M2"].verdict == "does not hold"
    assert rows["M2"].ci == [0.0, 0.0]
    assert rows["M2b"].verdict == "holds"
    assert rows["M2b"].statement.startswith("(beyond the paper)")
    assert rows["M3"].verdict == "holds"
    assert len(rows["M3"].parts) == 2
    m4 = rows["M4"]
    assert m4.verdict == "holds"
    assert len(m4.parts) == 12
    assert m4.parts[6]["name"] == "flipped nearest_query abs spearman r"
    assert "weak test" in m4.statement
    m5 = rows["M5"]
    assert m5.verdict == "inconclusive"
    assert m5.ci[0] < 0.05 < m5.ci[1]
    assert not m5.holds
    assert m5.n == 300
    assert "3" in m5.unit
    assert "(by >= 0.05)" in m5.statement
    assert "floor + 0.3" in rows["M1-mlp"].statement
    for c in rows.values():
        assert c.quantifier in results.QUANTIFIERS
        assert bool(c.paper_words) != c.statement.startswith("(beyond the paper)")


def test_claims_need_three_trainings_to_decide():
    by_arch, plain, boosted, grid, perturbed, geo = _tables(seeds=1)
    rows = {c.id: c for c in mt.claims(by_arch, plain, grid, perturbed, geo, boosted, _cfg())}
    assert rows["M2"].verdict == "inconclusive"
    assert rows["M1-mlp"].verdict == "inconclusive"


def test_where_it_holds_names_each_architecture_and_pair():
    by_arch, plain, boosted, grid, perturbed, geo = _tables()
    text = mt.where_it_holds(mt.claims(by_arch, plain, grid, perturbed, geo, boosted, _cfg()))
    assert "M1 holds for mlp" in text
    assert "M1 does not hold for cnn" in text
    assert "M2 (does not hold): does not hold for mlp->cnn" in text
    assert "M2b (holds): holds for mlp->mlp" in text


def test_claims_without_jacobian_or_boost_and_a_leaky_copy():
    by_arch, _, _, grid, perturbed, geo = _tables()
    leaky = by_arch[by_arch.arch == "mlp"].drop(columns="jacobian").assign(kd=1)
    rows = mt.claims(leaky, leaky, grid, perturbed, geo, None, _cfg(methods=["labels", "kd"], near=0.2))
    m1, m5 = rows[0], rows[-1]
    assert m1.id == "M1-mlp"
    assert [p["name"] for p in m1.parts] == [
        "jacobian - floor (no jacobian copy in methods)",
        "labels - floor",
        "kd - floor",
    ]
    assert [p["verdict"] for p in m1.parts] == ["inconclusive", "holds", "does not hold"]
    assert m1.verdict == "inconclusive" and "uncapped: does not hold" in m1.why  # the unmeasured part has 0 trainings
    assert "floor + 0.2)" in m1.statement
    assert m5.verdict == "inconclusive"
    assert m5.n == 0
    assert "boost off" in m5.parts[0]["name"]


def test_correlations_are_per_carrier_kind():
    geo = pd.DataFrame(
        {
            "kind": ["noise"] * 4 + ["flipped"] * 4,
            "seed": 0,
            "carrier": list(range(4)) * 2,
            "transferred": [False, True] * 4,
            "nearest_query": [1, 1, 1, 1, 1, 2, 1, 2],
            "nearest_10": 1.0,
            "victim_margin": [1, 2, 3, 4] * 2,
        }
    )
    corr = mt.correlations(geo).set_index(["kind", "statistic"])
    assert math.isnan(corr.loc[("noise", "nearest_query"), "spearman"])
    assert corr.loc[("flipped", "nearest_query"), "spearman"] == pytest.approx(1.0)
    assert corr.loc[("noise", "victim_margin"), "transfer"] == 0.5


def test_alternatives_resolve_and_name_known_claims():
    from ipkit.evidence import sensitivity
    from ipkit.orchestrate import sweep

    info = get_study("memorized_transfer")
    assert mt.ALTERNATIVES
    assert all(not a.fixed for a in mt.ALTERNATIVES)
    swept = {k: v for a in mt.ALTERNATIVES for k, v in a.grid.items()}
    assert swept["wm_kind"] == ["noise", "ood", "flipped"]
    assert swept["wm_per_batch"] == [16, 64]
    assert set(swept["victim_arch"]) == set(swept["thief_arch"]) == {"mlp", "cnn"}
    defaults = {n: p.default for n, p in info.params.items()}
    ids = {f"M1-{a}" for a in defaults["method_archs"]} | {"M2", "M2b", "M3", "M4", "M5"}
    for a in mt.ALTERNATIVES:
        assert all(defaults[k] in v for k, v in a.grid.items())  # the default is among them
        assert set(a.claims) <= ids
        sweep.validate(info, "default", sweep.settings(sweep.parse_grid(info, sensitivity.grid_pairs(a)), a.fixed))


class _Untrained(mt.Setup):
    """The study's tables over untrained models: which models each table builds, no training."""

    def victim(self, seed, arch=None, boost=False, kind=None):
        wm = watermark.memorized_set("noise", 12, self.s.in_shape, self.s.num_classes, seed=seed)
        return models.build(arch or self.cfg.victim_arch, self.s.num_classes, self.s.in_shape, seed=seed), wm

    def thief(self, victim, seed, method=None, arch=None, **_):
        return models.build(arch or self.cfg.thief_arch, self.s.num_classes, self.s.in_shape, seed=seed + 1)

    def floor(self, seed, arch=None):
        return models.build(arch or self.cfg.thief_arch, self.s.num_classes, self.s.in_shape, seed=seed + 2)


def test_grid_and_architecture_tables_cover_every_seed_and_architecture(digits, monkeypatch):
    monkeypatch.setattr(watermark, "hits", lambda model, wm: torch.ones(len(wm), dtype=torch.bool))
    st = _Untrained(
        digits, _cfg(dataset="digits", seeds=[0, 1, 2], grid_archs=["mlp", "cnn"], method_archs=["cnn", "mlp"])
    )
    grid = mt.grid_table(st)
    assert sorted(grid.seed.unique()) == [0, 1, 2]
    assert len(grid.groupby(["victim_arch", "thief_arch"])) == 4
    scores, by_arch = mt.arch_method_table(st)
    assert list(by_arch.arch.unique()) == ["cnn", "mlp"]
    assert sorted(by_arch.seed.unique()) == [0, 1, 2]
    assert set(scores.method) == {"labels", "kd", "jacobian", "independent"}
    rows = {
        c.id: c
        for c in mt.claims(
            by_arch,
            by_arch[by_arch.arch == "mlp"],
            grid,
            grid.rename(columns={"stolen": "transferred"}).assign(perturbation="none", strength=0.0),
            pd.DataFrame({"kind": "noise", "seed": [0], "transferred": [True], **{s: [0.0] for s in mt.STATISTICS}}),
            None,
            st.cfg,
        )
    }
    assert list(rows)[:2] == ["M1-cnn", "M1-mlp"]
    assert rows["M1-cnn"].trainings == 3
    assert rows["M2"].trainings == 3
    assert rows["M3"].verdict == "inconclusive"
    assert "no perturbation" in rows["M3"].parts[0]["name"]


def test_a_row_not_measured_reaches_the_sweep_summary_as_nan():
    """The smoke grid has no cross-architecture pair: M2's only part is not measured (null in
    results.json); an alternatives sweep still summarises it (ipkit.orchestrate.sweep.claim_row)."""
    import json

    from ipkit.orchestrate import sweep

    by_arch, plain, boosted, grid, perturbed, geo = _tables(seeds=1)
    rows = mt.claims(by_arch, plain, grid[grid.thief_arch == "mlp"], perturbed, geo, boosted, _cfg())
    m2 = json.loads(json.dumps(results.claim_dict(next(c for c in rows if c.id == "M2"))))
    row = sweep.claim_row(m2)
    assert row["verdict"] == "inconclusive"
    assert math.isnan(row["value"])


def test_explore_draws_the_first_seed_at_the_controls_values(digits, monkeypatch):
    drawn = []
    monkeypatch.setattr(mt, "plot_explore", lambda *args: drawn.append(args))
    st = mt.Setup(digits, _cfg(dataset="digits", seeds=[3, 4], alpha=2.0, query_budget=200))
    mt.explore(st)
    assert drawn == [(st, 3, 2.0, st.cfg.wm_kind, 200)]
    assert widgets.last_panel().values() == {"alpha": 2.0, "wm_kind": st.cfg.wm_kind, "query_budget": 200}


def test_floor_rate_is_the_independent_models_mean_transfer():
    scores = pd.DataFrame({"method": ["kd", "independent", "independent"], "transfer": [0.9, 0.1, 0.3]})
    assert mt.floor_rate(scores) == pytest.approx(0.2)


def test_boost_table_is_empty_and_not_measured_when_boost_is_off(digits, monkeypatch):
    scores = pd.DataFrame({"method": ["kd"], "transfer": [0.5], "boost": [False]})
    calls = []
    monkeypatch.setattr(mt, "method_table", lambda st, boost=False: calls.append(boost) or ("scores", "carriers"))
    off, none = mt.boost_table(mt.Setup(digits, _cfg(dataset="digits", boost=False)), scores)
    assert none is None
    assert off.empty
    assert list(off.columns) == list(scores.columns)
    assert calls == []
    assert mt.boost_table(mt.Setup(digits, _cfg(dataset="digits", boost=True)), scores) == ("scores", "carriers")
    assert calls == [True]


def test_recorded_metrics_store_the_summaries_not_the_raw_grid():
    grid = pd.DataFrame(
        {
            "victim_arch": ["mlp", "mlp"],
            "thief_arch": ["cnn", "cnn"],
            "victim_memorized": [1.0, 0.0],
            "stolen": [0.5, 0.7],
            "floor": [0.1, 0.1],
            "fidelity": [0.9, 0.8],
        }
    )
    one = pd.DataFrame({"x": [1.0]})
    metrics = mt.recorded_metrics(
        one,
        one,
        one,
        grid,
        pd.DataFrame(
            {
                "perturbation": ["noise"],
                "strength": [0.1],
                "seed": [0],
                "transferred": [0.4],
                "floor": [0.1],
                "fidelity": [0.9],
                "victim_memorized": [1.0],
            }
        ),
        one,
    )
    assert list(metrics) == ["scores", "alpha", "by_arch", "grid", "perturbation", "correlations"]
    [row] = metrics["grid"]
    assert (row["victim_arch"], row["thief_arch"]) == ("mlp", "cnn")
    assert row["transfer"] == pytest.approx(0.6)
    assert metrics["perturbation"][0]["transfer"] == pytest.approx(0.4)
