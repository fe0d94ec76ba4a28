"""Distillation attack and the ingrain defence (Yang, Dang & Chang, 2019): watermark schemes,
their floor, the KD loss, pruning, quantization and the ingrain loss."""
import pytest
import torch
import torch.nn.functional as F

from ipkit import ingrain, models, transforms
from ipkit import watermark as wmk
from ipkit.train import fit, kd_loss


def _pool(n: int = 300, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = 0.1 * torch.rand(n, 1, 12, 12, generator=g)
    for c in range(classes):  # class c lights up one quadrant
        r, q = divmod(c, 2)
        x[y == c, :, r * 6:(r + 1) * 6, q * 6:(q + 1) * 6] += 0.8
    return x.clamp(0, 1), y


@pytest.mark.parametrize("scheme", wmk.SCHEMES)
def test_scheme_carriers_are_deterministic_per_seed(scheme):
    pool = _pool()
    a = wmk.scheme_set(scheme, 20, pool, 4, seed=3)
    b = wmk.scheme_set(scheme, 20, pool, 4, seed=3)
    c = wmk.scheme_set(scheme, 20, pool, 4, seed=4)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, c.x)
    assert a.x.shape == (20, 1, 12, 12) and float(a.x.min()) >= 0 and float(a.x.max()) <= 1


def test_unrelated_carriers_for_rgb_data_are_digits():
    x = torch.rand(40, 3, 16, 16)
    wm = wmk.scheme_set("unrelated", 10, (x, torch.zeros(40, dtype=torch.long)), 10, target=7)
    assert wm.x.shape == (10, 3, 16, 16) and bool((wm.y == 7).all())


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


def _model(seed: int = 0):
    return models.build("mlp", 4, (1, 12, 12), seed=seed)


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
    assert fl <= 0.2 and abs(wmk.accuracy(other, wm) - fl) <= 0.2


def test_kd_loss_is_zero_for_identical_logits():
    logits = torch.randn(8, 5)
    for t in (1.0, 4.0, 10.0):
        assert float(kd_loss(logits, (logits / t).softmax(1), t)) == pytest.approx(0.0, abs=1e-5)
    assert float(kd_loss(logits, (torch.randn(8, 5) / 4).softmax(1), 4.0)) > 0


def test_ingrain_loss_is_cross_entropy_when_model_matches_ingrainer():
    model = _model()
    x, y = _pool(16)
    loss = ingrain.ingrain_loss(model, lam=3.0, temperature=5.0, n_carriers=4)
    ce = F.cross_entropy(model(x), y)
    assert float(loss(model, x, y).detach()) == pytest.approx(float(ce.detach()) / 4.0, rel=1e-4)


@pytest.mark.parametrize("ratio", [0.2, 0.5, 0.8])
def test_pruning_zeroes_the_ratio_of_prunable_weights(ratio):
    model = models.build("cnn", 4, (1, 12, 12), seed=0)
    assert transforms.sparsity(transforms.prune(model, ratio)) == pytest.approx(ratio, abs=0.002)
    x, y = _pool(64)
    tuned = transforms.prune_finetune(model, ratio, x, y, epochs=1)
    assert transforms.sparsity(tuned) >= ratio - 0.002


def levels_per_channel(w: torch.Tensor) -> torch.Tensor:
    """Number of distinct values in each output channel (first dimension) of a weight."""
    flat = w.detach().reshape(w.shape[0], -1)
    return torch.tensor([len(torch.unique(row)) for row in flat])


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantization_leaves_at_most_two_to_the_bits_levels_per_channel(bits):
    model = models.build("cnn", 4, (1, 12, 12), seed=0)
    q = transforms.fake_quantize(model, bits)
    for w in (m.weight for m in q.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))):
        assert int(levels_per_channel(w).max()) <= 2 ** bits


def test_distillation_attack_trains_a_fresh_student_of_the_given_arch():
    teacher = _model()
    x, y = _pool(64)
    fit(teacher, x, y, epochs=2, batch_size=32)
    student = transforms.distillation_attack(teacher, x, "mlp", temperature=4.0, epochs=1, batch_size=32)
    assert student is not teacher and student.spec["arch"] == "mlp"
    assert not torch.equal(student.head.weight, teacher.head.weight)
