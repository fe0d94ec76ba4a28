"""The quickstart study (ipkit.studies.quickstart): its per-unit tables, summary, claims
and the parameter rules checked before a run."""

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from ipkit.methods.watermark import WatermarkSet
from ipkit.notebook.registry import get_study, resolve
from ipkit.studies import quickstart as qs


class Fixed(nn.Module):
    """A 'model' whose logits pick ``labels[i]`` for the i-th input it is given."""

    def __init__(self, labels):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))
        self.labels = torch.tensor(labels)

    def forward(self, x):
        return nn.functional.one_hot(self.labels[: len(x)], 3).float() + 0 * self.w


def _cfg(**kw):
    values = resolve(get_study("quickstart"), "default", {})
    return qs.Config.from_params(type("P", (), {**values, **kw}))


def test_config_from_the_notebook_parameters():
    cfg = _cfg()
    assert cfg.seeds == (0, 1, 2, 3, 4)
    assert cfg.query_budget == 2000
    assert cfg.wm_embedded == 0.95


def test_carrier_hits_and_image_agreement_one_row_per_unit():
    wm = WatermarkSet(torch.zeros(4, 1, 2, 2), torch.tensor([0, 1, 2, 0]), "noise")
    models = {"victim": Fixed([0, 1, 2, 0]), "thief": Fixed([0, 1, 0, 0]), "independent": Fixed([1, 1, 1, 1])}
    hits = qs.carrier_hits(models, wm, seed=3)
    assert list(hits.columns) == ["seed", "carrier", "victim", "thief", "independent"]
    assert hits.victim.tolist() == [1, 1, 1, 1]
    assert hits.thief.tolist() == [1, 1, 0, 1]
    assert hits.independent.tolist() == [0, 1, 0, 0]
    assert set(hits.seed) == {3}
    s = type("S", (), {"test": type("T", (), {"x": torch.zeros(4, 1, 2, 2)})})
    agree = qs.image_agreement(models, s, seed=3)
    assert list(agree.columns) == ["seed", "image", "thief", "independent"]
    assert agree.thief.tolist() == [1, 1, 0, 1]
    assert agree.independent.tolist() == [0, 1, 0, 0]


def test_summary_gives_mean_and_spread_per_model():
    scores = pd.DataFrame(
        {
            "model": ["victim", "thief"] * 2,
            "seed": [0, 0, 1, 1],
            "test_acc": [0.9, 0.8, 0.7, 0.6],
            "fidelity": [1.0, 0.9, 1.0, 0.7],
            "wm_acc": [1.0, 0.1, 1.0, 0.3],
        }
    )
    table = qs.summary(scores).set_index("model")
    assert table.loc["thief", "fidelity_mean"] == pytest.approx(0.8)
    assert table.loc["victim", "test_acc_std"] == pytest.approx(np.std([0.9, 0.7], ddof=1))
    assert list(table.index) == ["victim", "thief"]


def _carriers(victim, thief, independent, seeds=3, n=40):
    rng = np.random.default_rng(0)
    rows = [
        {
            "seed": k,
            "carrier": i,
            "victim": int(rng.random() < victim),
            "thief": int(rng.random() < thief),
            "independent": int(rng.random() < independent),
        }
        for k in range(seeds)
        for i in range(n)
    ]
    return pd.DataFrame(rows)


def test_claims_holds_does_not_hold_and_inconclusive():
    cfg = _cfg()
    carriers = _carriers(victim=1.0, thief=0.2, independent=0.1)
    agree = pd.DataFrame(
        {
            "seed": np.repeat([0, 1, 2], 100),
            "image": np.tile(range(100), 3),
            "thief": np.tile([1, 0], 150),
            "independent": 1,
        }
    )
    q1, q2, q3 = qs.claims(carriers, agree, cfg)
    assert q1.verdict == "holds"
    assert q1.ci == [1.0, 1.0]
    assert q1.n == 120
    assert q2.verdict == "does not hold"
    assert q2.threshold == 0.90
    assert "above 0.9)" in q2.statement
    assert q3.verdict == "inconclusive"
    assert q3.ci[0] < 0.10 < q3.ci[1]
    assert "less than 0.1 above" in q3.statement
    for q in (q1, q2, q3):
        assert q.quantifier == "on average"
        assert q.paper_words == ""
        assert "(tutorial)" in q.statement
        assert q.trainings == 3
        assert q.level == pytest.approx(0.95)


def test_claims_statements_follow_the_thresholds():
    cfg = _cfg(wm_embedded=0.5, transfer_margin=0.3)
    carriers = _carriers(victim=0.8, thief=0.1, independent=0.1)
    agree = pd.DataFrame({"seed": 0, "image": range(10), "thief": 1, "independent": 1})
    q1, _, q3 = qs.claims(carriers, agree, cfg)
    assert "above 0.5)" in q1.statement
    assert q1.verdict == "holds"
    assert q3.verdict == "holds"


def test_run_seeds_works_without_a_progress_function(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    cfg = _cfg(dataset="digits", victim_arch="mlp", thief_arch="mlp", epochs=1, query_budget=100, wm_count=4, seeds=[0])
    out = qs.run_seeds(digits, cfg)
    assert sorted(out.scores.model) == ["independent", "thief", "victim"]
    assert list(out.models) == [0]
