"""Model-similarity scores: ModelDiff's DDV and probes, PGD partners, weight cosine and
gradient similarity (ipkit.methods.similarity)."""

import copy
import math

import pytest
import torch
from torch import nn

from ipkit.methods import models, similarity, train, transforms
from tests.helpers import _mlp, _seeds


def test_gradient_similarity_with_itself_is_one(trained):
    model, other, x, y = trained
    assert similarity.gradient_cosine(model, model, x, y) == pytest.approx(1.0, abs=1e-5)
    assert similarity.gradient_cosine(model, other, x, y) < 0.99
    assert train.agreement(model, model, x) == 1.0


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
    assert ab == pytest.approx(ba, abs=1e-7)
    assert ab < 0.999


def test_invariant_to_hidden_unit_permutation():
    a, x = _mlp(0), _seeds()
    b = _permuted(a)
    assert similarity.compare(a, b, x, "modeldiff", steps=5) == pytest.approx(1.0, abs=1e-5)
    assert similarity.weight_cosine_score(a, b) < 0.9


@pytest.mark.parametrize("method", ["modeldiff", "ipguard", "output_cosine", "feature_sim"])
def test_a_probe_computes_the_reference_once_and_scores_as_without_it(method, monkeypatch):
    """Scoring many suspects against one probe: the reference's outputs are computed once,
    and every score equals the one from a fresh probe (nothing kept from another model)."""
    a, suspects, x = _mlp(0), [_mlp(1), _mlp(2)], _seeds()
    m = similarity.get_method(method)
    probe = m.probe(a, x, steps=3)
    expected = [m.score(a, b, similarity.Probe(probe.x, probe.partner)) for b in suspects]
    calls = []
    for name in ("predict", "features"):
        real = getattr(similarity, name)
        monkeypatch.setattr(
            similarity, name, lambda model, *args, _real=real, **kw: calls.append(model) or _real(model, *args, **kw)
        )
    assert [m.score(a, b, probe) for b in suspects] == expected
    assert sum(c is a for c in calls) == (2 if method == "modeldiff" else 1)


def test_ddv_has_unit_norm():
    m, x = _mlp(0), _seeds()
    probe = similarity.modeldiff_probe(m, x, steps=3)
    assert float(similarity.ddv(m, probe.x, probe.partner).norm()) == pytest.approx(1.0, abs=1e-5)


def test_pgd_partners_stay_inside_eps_and_move_outputs():
    m, x = _mlp(0), _seeds()
    xp = similarity.pgd_partners(m, x, eps=0.06, steps=10, step_size=0.01)
    assert float((xp - x).abs().max()) <= 0.06 + 1e-6
    assert float(xp.min()) >= 0
    assert float(xp.max()) <= 1
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


def test_authors_pgd_stays_in_the_ball_and_the_batch_range():
    m, x = _mlp(0), _seeds() * 0.8 + 0.1
    xp = similarity.authors_pgd_partners(m, x, eps=0.05, steps=10, step_size=0.01, seed=0)
    assert float((xp - x).abs().max()) <= 0.05 + 1e-6
    assert float(xp.min()) >= float(x.min()) - 1e-7
    assert float(xp.max()) <= float(x.max()) + 1e-7
    clean, moved = m(x), m(xp)
    target = 1000.0 * (clean.mean(0, keepdim=True) - clean)
    assert float((moved - target).pow(2).sum()) > float((clean - target).pow(2).sum())
    assert torch.equal(xp, similarity.authors_pgd_partners(m, x, eps=0.05, steps=10, step_size=0.01, seed=0))


class _AuthorsObjective(nn.Module):
    """Logits [0, objective] whose cross-entropy at label 0 grows with Li et al.'s PGD
    objective: torchattacks' PGD then ascends that objective."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        super().__init__()
        self.model = model
        with torch.no_grad():
            clean = model(x)
        self.target = 1000.0 * (clean.mean(0, keepdim=True) - clean)

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        gap = self.model(xp) - self.target
        objective = (gap[:, 0] ** 2 + 0.1 * (gap[:, 1:] ** 2).mean(1)).mean()
        return torch.stack([torch.zeros_like(objective), objective]).expand(len(xp), 2)


def test_authors_pgd_matches_torchattacks_pgd_on_their_objective(digits):
    """The search of authors_pgd_partners (uniform start, signed steps, projection onto the
    ball and the batch's range) is torchattacks' PGD ascending the same objective."""
    torchattacks = pytest.importorskip("torchattacks")
    m = models.build("mlp", digits.num_classes, digits.in_shape, seed=0).eval()
    x = digits.test.x[:32]
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # so the batch's range is torchattacks' [0, 1]
    mine = similarity.authors_pgd_partners(m, x, eps=0.06, steps=20, step_size=0.01, seed=4)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        attack = torchattacks.PGD(_AuthorsObjective(m, x), eps=0.06, alpha=0.01, steps=20, random_start=True)
        theirs = attack(x, torch.zeros(len(x), dtype=torch.long))
    assert (mine - theirs).abs().max() < 1e-6
