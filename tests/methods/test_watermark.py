"""Watermark carriers: the schemes' carrier sets, embedding and the floor of a never
watermarked model, transfer rates and carrier geometry (ipkit.methods.watermark)."""

import pytest
import torch

from ipkit.methods import models, recipes, steal, train, watermark
from ipkit.methods import watermark as wmk
from ipkit.methods.train import fit
from tests.helpers import _model, _pool


@pytest.mark.parametrize("scheme", wmk.SCHEMES)
def test_scheme_carriers_are_deterministic_per_seed(scheme):
    pool = _pool()
    a = wmk.scheme_set(scheme, 20, pool, 4, seed=3)
    b = wmk.scheme_set(scheme, 20, pool, 4, seed=3)
    c = wmk.scheme_set(scheme, 20, pool, 4, seed=4)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.x.shape == (20, 1, 12, 12)
    assert float(a.x.min()) >= 0
    assert float(a.x.max()) <= 1


def test_unrelated_carriers_for_rgb_data_are_digits():
    x = torch.rand(40, 3, 16, 16)
    wm = wmk.scheme_set("unrelated", 10, (x, torch.zeros(40, dtype=torch.long)), 10, target=7)
    assert wm.x.shape == (10, 3, 16, 16)
    assert bool((wm.y == 7).all())


def test_content_and_noise_relabel_source_images():
    x, y = _pool()
    content = wmk.scheme_set("content", 10, (x, y), 4, source=2, target=3)
    assert bool((content.y == 3).all())
    corner = content.x[:, :, -4:, -4:]
    assert torch.equal(corner, wmk.stamp(x[:10], seed=0)[:, :, -4:, -4:])
    with pytest.raises(ValueError, match="lower wm_count"):
        wmk.scheme_set("noise", 500, (x, y), 4, source=2, target=3)
    with pytest.raises(ValueError, match="unknown watermark scheme"):
        wmk.scheme_set("logo", 10, (x, y), 4)


@pytest.mark.parametrize("scheme", wmk.SCHEMES)
def test_embedded_model_scores_full_watermark_accuracy(scheme):
    x, y = _pool()
    wm = wmk.scheme_set(scheme, 12, (x, y), 4, seed=1)
    model = _model()
    wmk.embed(model, x, y, wm, per_batch=12, epochs=15, lr=0.05, batch_size=64)
    assert wmk.accuracy(model, wm) >= 0.95


def test_never_watermarked_model_scores_near_the_floor():
    x, y = _pool()
    wm = wmk.scheme_set("content", 20, (x, y), 4, source=0, target=1)
    clean = [_model(i) for i in range(2)]
    for i, m in enumerate(clean):
        fit(m, x, y, epochs=8, lr=0.05, batch_size=64, seed=i)
    fl = wmk.floor(clean, wm)
    other = _model(5)
    fit(other, x, y, epochs=8, lr=0.05, batch_size=64, seed=5)
    assert fl <= 0.2
    assert abs(wmk.accuracy(other, wm) - fl) <= 0.2


def test_owner_transfer_rate_on_its_own_set_is_one_and_thief_rates_are_fractions(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    wm = watermark.memorized_set("noise", 10, digits.in_shape, 10, seed=2)
    owner = recipes.owner_model(digits, "mlp", epochs=4, seed=0, wm=wm, wm_per_batch=8)
    memorized = watermark.hits(owner, wm)
    assert watermark.transfer_rate(owner, wm, memorized) == 1.0
    assert (watermark.margin(owner, wm)[memorized] > 0).all()
    thief = models.build("mlp", 10, digits.in_shape, seed=3)
    queries = steal.query_set(digits.attacker.x, 300, seed=0)
    steal.jacobian_distill(
        steal.GradientVictim(owner, output="logits"), queries, thief, alpha=1.0, epochs=3, batch_size=64
    )
    assert 0.0 <= watermark.transfer_rate(thief, wm, memorized) <= 1.0
    assert train.agreement(owner, thief, digits.test.x) > 0.5


def test_geometry_statistics_and_neighbourhood():
    wm = watermark.WatermarkSet(torch.zeros(2, 1, 2, 2), torch.tensor([1, 2]), "noise")
    queries = torch.stack([torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2)])
    assert torch.allclose(watermark.nearest_distance(wm, queries), torch.tensor([1.0, 1.0]))
    assert torch.allclose(watermark.nearest_distance(wm, queries, k=2), torch.tensor([1.5, 1.5]))
    boosted = watermark.neighbourhood(wm, count=3, std=0.1, seed=0)
    assert len(boosted) == 8
    assert torch.equal(boosted.y, torch.tensor([1, 2] * 4))
    assert torch.equal(boosted.x[:2], wm.x)
    assert boosted.x.min() >= 0
