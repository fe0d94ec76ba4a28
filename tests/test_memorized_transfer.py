"""Memorized-example transfer: Jacobian matching, the gradient victim, transfer rates and
the query-set tools (Venigalla 2019; Srinivas & Fleuret 2018)."""
import pytest
import torch

from ipkit import data, models, recipes, steal, train, watermark


@pytest.fixture(scope="module")
def digits():
    return data.split("digits", seed=0, device="cpu")


def _tiny(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Tanh(),
                               torch.nn.Linear(5, 3)).double()


def test_jacobian_loss_is_zero_for_identical_models_and_passes_gradcheck():
    model, other = _tiny(0), _tiny(1)
    x = torch.rand(4, 1, 3, 4, dtype=torch.float64)
    d = steal.projections(torch.zeros(4, 3, dtype=torch.float64), 2, "random", seed=0)
    _, target = steal.projected_jacobians(model, x, d)
    assert float(steal.jacobian_loss(model, x, d, target).detach()) < 1e-12
    _, foreign = steal.projected_jacobians(other, x, d)
    assert float(steal.jacobian_loss(model, x, d, foreign).detach()) > 1e-3
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_(True) for p in model.parameters())

    class Bound(torch.nn.Module):  # the model as a function of the checked parameters
        def __init__(self, ps):
            super().__init__()
            self.ps = ps

        def forward(self, z):
            return torch.func.functional_call(model, dict(zip(names, self.ps)), (z,))

    def loss(*ps):
        return steal.jacobian_loss(Bound(ps), x, d, foreign)

    assert torch.autograd.gradcheck(loss, params, eps=1e-6, atol=1e-5)


def test_projected_jacobians_match_autograd_jacobian():
    model = _tiny(0)
    x = torch.rand(2, 1, 3, 4, dtype=torch.float64)
    d = steal.projections(model(x).detach(), 2, "topk")
    _, g = steal.projected_jacobians(model, x, d)
    for i in range(2):
        jac = torch.autograd.functional.jacobian(lambda z: model(z[None])[0], x[i])  # (3, 1, 3, 4)
        top = model(x[i:i + 1])[0].topk(2).indices
        assert torch.allclose(g[i], jac[top], atol=1e-10)


def test_gradient_victim_counts_queries_and_never_leaks_the_watermark(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    wm = watermark.memorized_set("noise", 8, digits.in_shape, 10, seed=1)
    owner = recipes.owner_model(digits, "mlp", epochs=3, seed=0, wm=wm, wm_per_batch=8)
    victim = steal.GradientVictim(owner, output="logits", budget=30)
    x = digits.attacker.x[:20]
    logits, dirs, grads = victim.query_gradients(x, k=2)
    assert victim.queries == 20 and grads.shape == (20, 2, *x.shape[1:]) and dirs.shape == (20, 2, 10)
    with pytest.raises(steal.BudgetExceeded):
        victim.query_gradients(x)
    public = [v for k, v in vars(victim).items() if not k.startswith("_")]
    assert not any(isinstance(v, (torch.nn.Module, torch.Tensor)) for v in public)
    for name in dir(victim):
        if not name.startswith("_"):
            value = getattr(victim, name)
            assert not isinstance(value, (torch.nn.Module, torch.Tensor, watermark.WatermarkSet))


def test_owner_transfer_rate_on_its_own_set_is_one_and_thief_rates_are_fractions(digits, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    wm = watermark.memorized_set("noise", 10, digits.in_shape, 10, seed=2)
    owner = recipes.owner_model(digits, "mlp", epochs=4, seed=0, wm=wm, wm_per_batch=8)
    memorized = watermark.hits(owner, wm)
    assert watermark.transfer_rate(owner, wm, memorized) == 1.0
    assert (watermark.margin(owner, wm)[memorized] > 0).all()
    thief = models.build("mlp", 10, digits.in_shape, seed=3)
    queries = steal.query_set(digits.attacker.x, 300, seed=0)
    steal.jacobian_distill(steal.GradientVictim(owner, output="logits"), queries, thief, alpha=1.0,
                           epochs=3, batch_size=64)
    assert 0.0 <= watermark.transfer_rate(thief, wm, memorized) <= 1.0
    assert train.agreement(owner, thief, digits.test.x) > 0.5


def test_geometry_statistics_and_neighbourhood():
    wm = watermark.WatermarkSet(torch.zeros(2, 1, 2, 2), torch.tensor([1, 2]), "noise")
    queries = torch.stack([torch.full((1, 2, 2), 0.5), torch.ones(1, 2, 2)])
    assert torch.allclose(watermark.nearest_distance(wm, queries), torch.tensor([1.0, 1.0]))
    assert torch.allclose(watermark.nearest_distance(wm, queries, k=2), torch.tensor([1.5, 1.5]))
    boosted = watermark.neighbourhood(wm, count=3, std=0.1, seed=0)
    assert len(boosted) == 8 and torch.equal(boosted.y, torch.tensor([1, 2] * 4))
    assert torch.equal(boosted.x[:2], wm.x) and boosted.x.min() >= 0


def test_query_perturbations_and_ood_pool_are_seeded(digits):
    x = digits.attacker.x[:16]
    assert steal.perturb(x, "none", 0.5) is x
    for kind in ("noise", "shift"):
        a, b = steal.perturb(x, kind, 0.5, seed=3), steal.perturb(x, kind, 0.5, seed=3)
        assert torch.equal(a, b) and not torch.equal(a, x) and a.shape == x.shape
    with pytest.raises(ValueError, match="choose none, noise, shift"):
        steal.perturb(x, "blur", 0.5)
    q = steal.ood_pool("digits", 20, (1, 16, 16), seed=0)
    c = steal.ood_pool("digits", 20, (1, 16, 16), seed=0, part="carriers")
    assert q.shape == (20, 1, 16, 16) and not (torch.cdist(q.flatten(1), c.flatten(1)) < 1e-6).any()
