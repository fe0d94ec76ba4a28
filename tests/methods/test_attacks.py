"""Adversarial attacks: PGD stays in its ball, transfer success, the query-limited attack and
its counter (ipkit.methods.attacks)."""

import pytest
import torch

from ipkit.methods import attacks


def test_pgd_stays_within_eps_and_pixel_range(trained):
    model, _, x, y = trained
    adv = attacks.pgd(model, x, y, eps=0.2, steps=10)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float(adv.min()) >= 0
    assert float(adv.max()) <= 1
    assert float(attacks.fooled(model, adv, y).float().mean()) > 0.5


def test_own_gradients_fool_more_than_an_independent_model(trained):
    model, other, x, y = trained
    own = attacks.transfer_success(model, model, x, y, eps=0.1, steps=10)
    transferred = attacks.transfer_success(other, model, x, y, eps=0.1, steps=10)
    assert own > transferred


class _Rows(torch.nn.Module):
    """Wraps a model and counts every input row it is asked about."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows = model, 0

    def forward(self, x):
        self.rows += len(x)
        return self.model(x)


def test_query_counter_counts_every_target_query(trained):
    model, other, x, y = trained
    target = _Rows(model)
    counter = attacks.QueryCounter(target, 20, cap=300)
    res = attacks.query_attack(counter, x[:20], y[:20], eps=0.1, prior=other, samples=5)
    assert counter.total == target.rows == int(res.queries.sum())


@pytest.mark.parametrize("prior", [False, True])
def test_query_attack_stops_at_the_cap(trained, prior):
    model, other, x, y = trained
    counter = attacks.QueryCounter(model, 20, cap=40)
    res = attacks.query_attack(counter, x[:20], y[:20], eps=0.01, prior=other if prior else None, samples=5)
    assert (res.queries <= 40).all()
    assert (~res.success).any()
    assert (res.queries[~res.success] > 40 - (7 if prior else 6)).all()
    assert float((res.x_adv - x[:20]).abs().max()) <= 0.01 + 1e-6
    small = attacks.QueryCounter(model, 1, cap=2)
    with pytest.raises(RuntimeError, match="cap"):
        small(x[:3], torch.zeros(3, dtype=torch.long))
    assert small.total == 0


def test_sibling_prior_needs_fewer_queries_than_no_prior(trained):
    model, _, x, y = trained
    runs = {}
    for name, prior in (("none", None), ("self", model)):
        counter = attacks.QueryCounter(model, 20, cap=1000)
        runs[name] = attacks.query_attack(counter, x[:20], y[:20], eps=0.2, prior=prior, samples=5)
    assert runs["self"].success.mean() >= runs["none"].success.mean()
    assert runs["self"].queries.sum() < runs["none"].queries.sum()


def test_prgf_lambda_limits():
    lam = attacks.prgf_lambda(torch.tensor([0.0, 0.01, 0.3, 1.0]), d=784, q=10)
    assert lam[0] == 0
    assert lam[1] == 0
    assert 0 < lam[2] <= 1
    assert lam[3] == 1
