"""Black-box stealing: the victim counts queries and enforces its budget, answers only
what it is set to answer, and a copy trained on its answers agrees with it."""

import pytest
import torch

from ipkit.methods import models, recipes, steal, train, watermark


@pytest.fixture(scope="module")
def victim_model(digits):
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    train.fit(net, digits.owner.x, digits.owner.y, epochs=15)
    return net


def test_budget_is_counted_and_enforced(victim_model, digits):
    v = steal.Victim(victim_model, budget=100)
    v.query(digits.attacker.x[:60])
    assert v.queries == 60
    with pytest.raises(steal.BudgetExceeded):
        v.query(digits.attacker.x[:41])


@pytest.mark.parametrize("output", steal.OUTPUTS)
def test_victim_answers_only_its_output_kind(victim_model, digits, output):
    ans = steal.Victim(victim_model, output=output).query(digits.test.x[:5])
    if output == "labels":
        assert ans.dtype == torch.int64
        assert ans.shape == (5,)
    elif output == "probs":
        assert torch.allclose(ans.sum(1), torch.ones(5), atol=1e-5)
    public = {k: v for k, v in vars(steal.Victim(victim_model)).items() if not k.startswith("_")}
    assert not any(isinstance(v, torch.nn.Module) for v in public.values())


@pytest.mark.parametrize("method", steal.METHODS)
def test_stolen_copy_agrees_with_victim(victim_model, digits, method):
    thief = models.build("mlp", digits.num_classes, digits.in_shape, seed=3)
    queries = steal.query_set(digits.attacker.x, 500, seed=0)
    steal.distill(steal.Victim(victim_model), queries, thief, method=method, epochs=15)
    assert train.agreement(victim_model, thief, digits.test.x) > 0.85


def test_query_budget_larger_than_pool_is_refused(digits):
    with pytest.raises(ValueError, match="lower query_budget"):
        steal.query_set(digits.attacker.x, len(digits.attacker) + 1)


def test_memorized_sets_are_seeded_and_memorized(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    a = watermark.memorized_set("noise", 8, digits.in_shape, 10, seed=1)
    b = watermark.memorized_set("noise", 8, digits.in_shape, 10, seed=1)
    assert torch.equal(a.x, b.x)
    assert torch.equal(a.y, b.y)
    owner = recipes.owner_model(digits, "mlp", epochs=25, seed=0, wm=a, wm_per_batch=8)
    assert watermark.accuracy(owner, a) == 1.0


def _tiny(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)
    ).double()


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
        top = model(x[i : i + 1])[0].topk(2).indices
        assert torch.allclose(g[i], jac[top], atol=1e-10)


def test_gradient_victim_counts_queries_and_never_leaks_the_watermark(digits, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    wm = watermark.memorized_set("noise", 8, digits.in_shape, 10, seed=1)
    owner = recipes.owner_model(digits, "mlp", epochs=3, seed=0, wm=wm, wm_per_batch=8)
    victim = steal.GradientVictim(owner, output="logits", budget=30)
    x = digits.attacker.x[:20]
    logits, dirs, grads = victim.query_gradients(x, k=2)
    assert victim.queries == 20
    assert grads.shape == (20, 2, *x.shape[1:])
    assert dirs.shape == (20, 2, 10)
    with pytest.raises(steal.BudgetExceeded):
        victim.query_gradients(x)
    public = [v for k, v in vars(victim).items() if not k.startswith("_")]
    assert not any(isinstance(v, (torch.nn.Module, torch.Tensor)) for v in public)
    for name in dir(victim):
        if not name.startswith("_"):
            value = getattr(victim, name)
            assert not isinstance(value, (torch.nn.Module, torch.Tensor, watermark.WatermarkSet))


def test_query_perturbations_and_ood_pool_are_seeded(digits):
    x = digits.attacker.x[:16]
    assert steal.perturb(x, "none", 0.5) is x
    for kind in ("noise", "shift"):
        a, b = steal.perturb(x, kind, 0.5, seed=3), steal.perturb(x, kind, 0.5, seed=3)
        assert torch.equal(a, b)
        assert not torch.equal(a, x)
        assert a.shape == x.shape
    with pytest.raises(ValueError, match="choose none, noise, shift"):
        steal.perturb(x, "blur", 0.5)
    q = steal.ood_pool("digits", 20, (1, 16, 16), seed=0)
    c = steal.ood_pool("digits", 20, (1, 16, 16), seed=0, part="carriers")
    assert q.shape == (20, 1, 16, 16)
    assert not (torch.cdist(q.flatten(1), c.flatten(1)) < 1e-6).any()
