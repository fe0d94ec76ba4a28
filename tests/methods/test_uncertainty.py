"""The five UQ surrogates of ipkit.methods.uncertainty: each test checks the method's defining behaviour,
not only shapes."""

import pytest
import torch

from ipkit.methods import models, train
from ipkit.methods import uncertainty as uq


@pytest.fixture(scope="module")
def answers(digits):
    victim = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    train.fit(victim, digits.owner.x, digits.owner.y, epochs=10)
    x = digits.attacker.x[:400]
    return x, train.predict(victim, x, probs=True)


def _make(method, digits, **kw):
    kw = {"members": 4, "epochs": 4, "device": "cpu", **kw}
    return uq.make(method, "mlp", digits.num_classes, digits.in_shape, **kw)


def test_mc_dropout_samples_differ_with_dropout_on_and_match_off(digits, answers):
    sur = _make("mc_dropout", digits, p=0.3).fit(*answers)
    x = digits.test.x[:50]
    on = sur.member_proba(x, dropout=True)
    off = sur.member_proba(x, dropout=False)
    assert (on[0] - on[1]).abs().max() > 1e-3
    assert torch.allclose(off[0], off[1])
    assert torch.allclose(off[0], off[-1])


def test_swag_mean_is_running_average_of_collected_weights(digits):
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    swag = uq.SwagNet(net, rank=3)
    seen = []
    for i in range(5):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p) * (i + 1))
        seen.append(uq._flat(net).clone())
        swag.collect()
    stack = torch.stack(seen)
    assert torch.allclose(swag.mean, stack.mean(0), atol=1e-5)
    assert torch.allclose(swag.sq_mean, (stack**2).mean(0), rtol=1e-4, atol=1e-4)
    assert torch.allclose(swag.dev[-1], seen[-1] - stack.mean(0), atol=1e-5)
    draws = torch.stack([swag.sample() for _ in range(200)])
    assert (draws.mean(0) - swag.mean).abs().mean() < 0.3 * stack.std(0).mean()


def test_swag_collects_through_the_step_hook_about_twice_per_rank(digits, answers):
    x, y = answers
    sur = _make("swag", digits, epochs=6, batch_size=64, rank=3).fit(x, y)
    steps = sur.swa_epochs * -(-len(x) // 64)
    every = max(1, steps // (2 * sur.rank))
    assert int(sur.module.n) == 1 + (steps - 1) // every + 1
    assert sur.module.dev.abs().sum(1).gt(0).all(), "the low-rank deviations are filled"


def test_vi_kl_is_positive_and_vanishes_at_the_prior(digits):
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    bayes = uq.BayesNet(net, prior_sigma=0.5, init_sigma=0.01)
    assert bayes.kl() > 0
    rho = torch.log(torch.expm1(torch.tensor(0.5)))
    with torch.no_grad():
        for name, p in bayes.named_parameters():
            p.copy_(torch.zeros_like(p) if name.startswith("mu_") else torch.full_like(p, rho))
    assert abs(float(bayes.kl().detach())) < 1e-2
    a, b = bayes(digits.test.x[:5]), bayes(digits.test.x[:5])
    assert not torch.allclose(a, b), "each forward pass draws new weights"


def test_laplace_predictive_variance_grows_far_from_data(digits, answers):
    sur = _make("laplace", digits, epochs=15).fit(*answers)
    near = digits.test.x[:100]
    mean_near, cov_near = sur.logit_moments(near)
    _, cov_far = sur.logit_moments(near * 30)
    var_near = torch.diagonal(cov_near, dim1=1, dim2=2).mean()
    var_far = torch.diagonal(cov_far, dim1=1, dim2=2).mean()
    assert var_far > 10 * var_near
    samples = sur.member_proba(near)
    assert uq.member_variance(samples) > 0
    probit = _make("laplace", digits, link="probit")
    probit.module.load_state_dict(sur.module.state_dict())
    assert uq.fidelity(probit.predict_proba(near), mean_near.argmax(1)) > 0.9


def test_ensemble_of_identical_members_has_zero_variance(digits):
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    stacked = uq.StackedEnsemble([net, net, net]).eval()
    with torch.no_grad():
        members = stacked(digits.test.x[:64]).softmax(-1)
    assert uq.member_variance(members) == 0.0
    assert uq.disagreement(members) == 0.0
    assert torch.allclose(members[0], net.eval()(digits.test.x[:64]).softmax(-1), atol=1e-6)


def test_ensemble_trained_together_matches_one_by_one(digits, answers):
    together = _make("ensemble", digits, members=3, together=True).fit(*answers)
    apart = _make("ensemble", digits, members=3, together=False).fit(*answers)
    x = digits.test.x[:100]
    assert torch.allclose(together.member_proba(x), apart.member_proba(x), atol=1e-3)
    assert uq.member_variance(together.member_proba(x)) > 0


def test_metrics_on_known_values():
    labels = torch.tensor([0, 1, 1, 0])
    members = torch.tensor(
        [[[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]], [[0.8, 0.2], [0.3, 0.7], [0.3, 0.7], [0.6, 0.4]]]
    )
    assert uq.disagreement(members) == pytest.approx(0.25)
    assert uq.fidelity(members.mean(0), labels) == 1.0
    assert uq.ece(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])) == pytest.approx(0.0)
    assert uq.ece(torch.tensor([[0.9, 0.1]]), torch.tensor([1])) == pytest.approx(0.9)


def test_unknown_method_is_refused(digits):
    with pytest.raises(ValueError, match="choose one of"):
        _make("dropconnect", digits)


def test_trace_steps_start_at_zero_log_spaced_to_the_last_step():
    steps = uq.trace_steps(80, points=8)
    assert steps[0] == 0
    assert steps[1] == 1
    assert steps[-1] == 80
    assert steps == sorted(set(steps))
    gaps = [b - a for a, b in zip(steps[1:], steps[2:])]
    assert gaps[-1] > gaps[0], "log-spaced: later steps are further apart"
    assert uq.trace_steps(0) == [0]
    assert uq.trace_steps(3, points=12) == [0, 1, 2, 3]


@pytest.mark.parametrize("method", ["ensemble", "mc_dropout", "vi", "laplace"])
def test_every_surrogate_is_traced_from_its_untrained_members(digits, answers, method):
    x, y = answers
    sur = _make(method, digits, epochs=3, batch_size=100, trace_points=2).fit(x, y, monitor=digits.test.x[:100])
    steps = [t["step"] for t in sur.trace]
    assert steps == [0, 1, 12] == uq.trace_steps(3 * 4, 2)
    assert sur.trace[-1]["epoch"] == 3
    untrained = _make(method, digits)
    if method == "laplace":
        untrained.fit_posterior(x)
    first = untrained.member_proba(digits.test.x[:100])
    assert sur.trace[0]["variance"] == pytest.approx(uq.member_variance(first), rel=1e-4)


def test_swag_pretrains_like_the_single_copy_and_is_traced_from_step_0(digits, answers):
    x, y = answers
    swag = _make("swag", digits, epochs=4, batch_size=100, rank=2, trace_points=6).fit(
        x, y, monitor=digits.test.x[:100]
    )
    single = _make("single", digits, epochs=4, batch_size=100).fit(x, y)
    steps = [t["step"] for t in swag.trace]
    assert steps == uq.trace_steps(4 * 4 + swag.swa_epochs * 4, 6), "pre-training and collection"
    assert swag.trace[0]["variance"] < 1e-12
    assert swag.trace[0]["disagreement"] == 0
    assert max(t["variance"] for t in swag.trace) > 0
    # the collection starts from the single copy's network: the SWA mean stays near it
    acc_single = uq.accuracy(single.predict_proba(digits.test.x), digits.test.y)
    acc_swag = uq.accuracy(swag.predict_proba(digits.test.x), digits.test.y)
    assert acc_swag > acc_single - 0.1


def test_swag_window_keeps_the_last_snapshots():
    window = uq.SwagWindow(size=3, rank=2)
    window.add(torch.ones(4))
    assert torch.allclose(window.sampler()(), torch.ones(4)), "one snapshot: no spread"
    for v in (2.0, 3.0, 4.0):
        window.add(torch.full((4,), v))
    assert len(window.snapshots) == 3
    assert float(window.snapshots[0][0]) == 2.0
    draws = torch.stack([window.sampler()() for _ in range(300)])
    assert abs(float(draws.mean()) - 3.0) < 0.3
    assert float(draws.std()) > 0.3


@pytest.mark.parametrize("method", ["single", "mc_dropout"])
def test_settings_are_the_same_before_and_after_training(digits, answers, method):
    x, y = answers
    untrained = _make(method, digits, epochs=1).settings()
    trained = _make(method, digits, epochs=1).fit(x[:128], y[:128], monitor=digits.test.x[:20]).settings()
    assert trained == untrained
    assert not [k for k in trained if k.startswith("_")]
