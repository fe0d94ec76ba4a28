"""On-device siblings (Hong et al., SaTML 2023): compression, attacks, similarity, unpairing."""
import pytest
import torch

from ipkit import attacks, compression, data, models, similarity, train, unpairing


@pytest.fixture(scope="module")
def digits():
    return data.split("digits", seed=0, device="cpu")


@pytest.fixture(scope="module")
def trained(digits):
    out = []
    for seed in (0, 1):
        m = models.build("mlp", digits.num_classes, digits.in_shape, seed=seed)
        train.fit(m, digits.owner.x, digits.owner.y, epochs=15, seed=seed)
        out.append(m.eval())
    x, y = attacks.attack_set(out[0], digits.test.x, digits.test.y, 60)
    return out[0], out[1], x, y


def test_pgd_stays_within_eps_and_pixel_range(trained):
    model, _, x, y = trained
    adv = attacks.pgd(model, x, y, eps=0.2, steps=10)
    assert float((adv - x).abs().max()) <= 0.2 + 1e-6
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert float(attacks.fooled(model, adv, y).float().mean()) > 0.5


def test_own_gradients_fool_more_than_an_independent_model(trained):
    model, other, x, y = trained
    own = attacks.transfer_success(model, model, x, y, eps=0.1, steps=10)
    transferred = attacks.transfer_success(other, model, x, y, eps=0.1, steps=10)
    assert own > transferred


def test_quantization_at_32_bits_is_the_identity(trained):
    model, _, x, _ = trained
    q = compression.calibrate(compression.quantize_model(model, 32), x)
    assert torch.equal(q(x), model(x))


def test_quantized_sibling_has_bits_levels_and_gradients(trained):
    model, _, x, y = trained
    q = compression.calibrate(compression.quantize_model(model, 4), x)
    layer = next(m for m in q.modules() if isinstance(m, compression.QuantLinear))
    w = layer._q_weight(layer.weight)
    assert all(len(torch.unique(row)) <= 15 for row in w)
    assert float(similarity.input_gradients(q, x, y).abs().sum()) > 0
    assert compression.bits_of(q) == 4 and compression.bits_of(model) == 32


def test_gradient_similarity_with_itself_is_one(trained):
    model, other, x, y = trained
    assert similarity.gradient_cosine(model, model, x, y) == pytest.approx(1.0, abs=1e-5)
    assert similarity.gradient_cosine(model, other, x, y) < 0.99
    assert similarity.output_agreement(model, model, x) == 1.0


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
    res = attacks.query_attack(counter, x[:20], y[:20], eps=0.01, prior=other if prior else None,
                               samples=5)
    assert (res.queries <= 40).all() and (~res.success).any()
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
    assert lam[0] == 0 and lam[1] == 0 and 0 < lam[2] <= 1 and lam[3] == 1


def test_unpairing_loss_adds_lambda_times_gradient_cosine(trained):
    model, other, x, y = trained
    ce = unpairing.unpairing_loss(model, other, x, y, 0.0)
    with_term = unpairing.unpairing_loss(model, other, x, y, 2.0)
    gm = similarity.input_gradients(model, x, y).flatten(1)
    go = similarity.input_gradients(other, x, y).flatten(1)
    cos = torch.nn.functional.cosine_similarity(gm, go, dim=1).mean()
    assert float((with_term - ce).detach()) == pytest.approx(2 * float(cos), rel=1e-4)
