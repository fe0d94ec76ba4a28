"""ModelDiff (Li et al., ISSTA 2021): DDV similarity, its baselines and the reuse zoo."""
import copy
import math

import pytest
import torch
from torch import nn

from ipkit import models, similarity, transforms, zoo


def _mlp(seed: int) -> nn.Module:
    return models.build("mlp", 5, (1, 8, 8), seed=seed).eval()


def _seeds(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))


def _permuted(model: nn.Module) -> nn.Module:
    """A copy whose first hidden layer's units are permuted (same function, other weights)."""
    out = copy.deepcopy(model)
    first, second = out.body[1], out.body[4]
    perm = torch.randperm(first.out_features, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        first.weight.copy_(first.weight[perm])
        first.bias.copy_(first.bias[perm])
        second.weight.copy_(second.weight[:, perm])
    return out


def test_self_similarity_is_one():
    m, x = _mlp(0), _seeds()
    assert similarity.compare(m, m, x, "modeldiff", steps=5) == pytest.approx(1.0, abs=1e-6)


def test_score_is_symmetric():
    a, b, x = _mlp(0), _mlp(1), _seeds()
    probe = similarity.modeldiff_probe(a, x, steps=5)
    ab, ba = similarity.modeldiff_score(a, b, probe), similarity.modeldiff_score(b, a, probe)
    assert ab == pytest.approx(ba, abs=1e-7) and ab < 0.999


def test_invariant_to_hidden_unit_permutation():
    a, x = _mlp(0), _seeds()
    b = _permuted(a)
    assert similarity.compare(a, b, x, "modeldiff", steps=5) == pytest.approx(1.0, abs=1e-5)
    assert similarity.weight_cosine_score(a, b) < 0.9


def test_ddv_has_unit_norm():
    m, x = _mlp(0), _seeds()
    probe = similarity.modeldiff_probe(m, x, steps=3)
    assert float(similarity.ddv(m, probe.x, probe.partner).norm()) == pytest.approx(1.0, abs=1e-5)


def test_pgd_partners_stay_inside_eps_and_move_outputs():
    m, x = _mlp(0), _seeds()
    xp = similarity.pgd_partners(m, x, eps=0.06, steps=10, step_size=0.01)
    assert float((xp - x).abs().max()) <= 0.06 + 1e-6
    assert float(xp.min()) >= 0 and float(xp.max()) <= 1
    assert float(similarity.decision_distances(m, x, xp).mean()) > 0


def test_weight_cosine_not_applicable_across_architectures():
    a = _mlp(0)
    b = models.build("cnn", 5, (1, 8, 8), seed=0)
    assert math.isnan(similarity.weight_cosine_score(a, b))


def test_quantized_models_probe_on_their_float_parent():
    a, x = _mlp(0), _seeds()
    q = transforms.quantize_int8(a)
    object.__setattr__(q, "float_parent", a)
    assert similarity.float_parent(q) is a
    assert similarity.compare(q, a, x, "modeldiff", steps=3) > 0.99
    h = transforms.quantize_float16(a)
    assert similarity.float_parent(h) is a
    assert all(torch.equal(p, p.half().float()) for p in h.parameters())


def test_last_fraction_params_counts_layers():
    m = models.build("cnn", 5, (1, 8, 8), seed=0)
    layers = transforms.layers_with_params(m)
    assert transforms.last_fraction_params(m, 0.1) == list(m.head.parameters())
    assert len(transforms.last_fraction_params(m, 1.0)) == len(list(m.parameters()))
    assert len(layers) == 6


def test_correctness_needs_source_above_every_unrelated():
    import pandas as pd

    rows = [dict(method="modeldiff", seed=0, reference="s", suspect=n, relation=r, task="A", score=v)
            for n, r, v in [("d1", "prune-20", 0.9), ("d2", "distill", 0.5), ("u", "unrelated", 0.6)]]
    c = zoo.correctness(pd.DataFrame(rows)).set_index("suspect")
    assert bool(c.correct["d1"]) and not bool(c.correct["d2"])


def test_unknown_method_and_reuse_type_are_named():
    with pytest.raises(ValueError, match="choose one of"):
        similarity.get_method("nope")
    assert set(zoo.REUSE_TYPES) >= {"transfer-10", "quant-fp16", "steal-other"}
