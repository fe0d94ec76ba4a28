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
