"""Model transformations: pruning, quantization, layer counts and the distillation attack
(ipkit.methods.transforms)."""

import pytest
import torch

from ipkit.methods import models, transforms
from ipkit.methods.train import fit
from tests.helpers import _model, _pool


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
        assert int(levels_per_channel(w).max()) <= 2**bits


def test_distillation_attack_trains_a_fresh_student_of_the_given_arch():
    teacher = _model()
    x, y = _pool(64)
    fit(teacher, x, y, epochs=2, batch_size=32)
    student = transforms.distillation_attack(teacher, x, "mlp", temperature=4.0, epochs=1, batch_size=32)
    assert student is not teacher
    assert student.spec["arch"] == "mlp"
    assert not torch.equal(student.head.weight, teacher.head.weight)


def test_last_fraction_params_counts_layers():
    m = models.build("cnn", 5, (1, 8, 8), seed=0)
    layers = transforms.layers_with_params(m)
    assert transforms.last_fraction_params(m, 0.1) == list(m.head.parameters())
    assert len(transforms.last_fraction_params(m, 1.0)) == len(list(m.parameters()))
    assert len(layers) == 6
