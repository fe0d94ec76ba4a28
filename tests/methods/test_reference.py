"""Reference cross-checks: ipkit's hand-written methods against maintained libraries (the
``reference`` extra) or a plain NumPy/SciPy transcription of the paper's definition, on
tiny models and sklearn's digits. Each test states its tolerance and why.

- last-layer Laplace vs laplace-torch: GGN, posterior covariance, probit and MC
  predictive, and the prior precision chosen by marginal likelihood;
- mean-field VI vs bayesian-torch: closed-form KL and the sampled forward pass;
- SWAG and MC dropout vs torch-uncertainty: moments and samples from a known weight
  sequence; dropout passes under one seed;
- L-inf PGD and ModelDiff's partner search vs torchattacks, same start and steps;
- ModelDiff's DDV and similarity vs NumPy/SciPy (Li et al., ISSTA 2021);
- dynamic int8 (torch.ao) vs torchao's int8 dynamic quantization.
"""

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial import distance
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ipkit.methods import attacks, models, similarity, train, transforms
from ipkit.methods import uncertainty as uq


def _needs(module: str) -> None:
    """Skip, saying why, unless the reference library ``module`` is installed."""
    pytest.importorskip(
        module,
        reason=f"{module} is in the 'reference' extra: pip install -c constraints.txt "
        "-e '.[reference]' (make setup installs it)",
    )


@pytest.fixture(scope="module")
def mlp(digits):
    """A small mlp trained briefly on the digits (accurate enough for gradients to matter)."""
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    train.fit(net, digits.owner.x, digits.owner.y, epochs=3, seed=0)
    return net.eval()


# ---------------------------------------------------------------- last-layer Laplace


@pytest.fixture(scope="module")
def laplace_pair(digits):
    """ipkit's LastLayerLaplace and laplace-torch's FullLLLaplace on one network trained on
    the digits 0-2 (three classes keep the last layer at 3 x 129 weights), fitted on the
    same inputs with the same prior precision."""
    _needs("laplace")
    from laplace import Laplace

    keep = digits.owner.y < 3
    x, y = digits.owner.x[keep][:300], digits.owner.y[keep][:300]
    ours = uq.LastLayerLaplace(
        "mlp", 3, digits.in_shape, members=8, seed=0, device="cpu", epochs=3, prior_precision=2.0
    ).fit(x, y)
    ref = Laplace(
        ours.module, "classification", subset_of_weights="last_layer", hessian_structure="full", prior_precision=2.0
    )
    ref.fit(DataLoader(TensorDataset(x, y), batch_size=100))
    return ours, ref, x


def _to_laplace_order(c: int, d: int) -> torch.Tensor:
    """Index map from ipkit's last-layer layout (per class: weights then bias, C x (D+1))
    to laplace-torch's (all weights C x D row-major, then the C biases)."""
    return torch.tensor([k * (d + 1) + j for k in range(c) for j in range(d)] + [k * (d + 1) + d for k in range(c)])


def _precision(ours: uq.LastLayerLaplace) -> torch.Tensor:
    """The posterior precision (GGN + prior precision * I) that ipkit stored, as the
    inverse of its stored covariance factor."""
    return torch.cholesky_inverse(ours.module.laplace_scale_tril.double())


def test_laplace_ggn_and_covariance_match_laplace_torch(laplace_pair):
    # laplace-torch works in float32 (and ipkit stores its factor in float32): agree to
    # float32 rounding relative to the largest entry.
    ours, ref, x = laplace_pair
    c, d = ours._weights().shape
    order = _to_laplace_order(c, d - 1)
    precision = _precision(ours)[order][:, order]
    assert float(ours.module.laplace_precision) == ref.prior_precision.item() == 2.0
    assert torch.allclose(ref.posterior_precision.double(), precision, atol=1e-5 * float(precision.abs().max()))
    assert torch.allclose(
        ref.H.double(),
        precision - 2.0 * torch.eye(len(precision), dtype=torch.float64),
        atol=1e-5 * float(precision.abs().max()),
    )
    scale = ours.module.laplace_scale_tril.double()
    cov = (scale @ scale.T)[order][:, order]
    assert torch.allclose(ref.posterior_covariance.double(), cov, atol=1e-5 * float(cov.abs().max()))


def test_laplace_probit_predictive_matches_laplace_torch(laplace_pair):
    # Same Gaussian over logits, same probit formula: float32 rounding only.
    ours, ref, x = laplace_pair
    ours.link = "probit"
    try:
        mine = ours.member_proba(x[:50])[0]
    finally:
        ours.link = "sample"
    theirs = ref(x[:50], pred_type="glm", link_approx="probit")
    assert (mine - theirs).abs().max() < 1e-5


def test_laplace_sampled_predictive_matches_laplace_torch_within_mc_error(laplace_pair):
    # Both average softmax over n draws of the same Gaussian (ipkit draws last layers,
    # laplace-torch draws logits). A mean of n probabilities has standard error at most
    # 0.5 / sqrt(n); the difference of two such means, sqrt(2) times that: allow 5 of them.
    ours, ref, x = laplace_pair
    n = 4000
    ours.members = n
    try:
        mine = ours.member_proba(x[:30]).mean(0)
    finally:
        ours.members = 8
    with torch.random.fork_rng():
        torch.manual_seed(0)
        theirs = ref(x[:30], pred_type="glm", link_approx="mc", n_samples=n)
    assert (mine - theirs).abs().max() < 5 * 0.5 * math.sqrt(2 / n)


def test_laplace_prior_precision_is_laplace_torch_marglik_argmax(laplace_pair):
    # ipkit keeps only the tau-dependent part of the log marginal likelihood; laplace-torch
    # evaluates the whole of it. On a log grid the curves differ by a constant, up to float32
    # rounding relative to their range, and so peak at the same inner point.
    ours, ref, _ = laplace_pair
    precision, w = _precision(ours), ours._weights()
    ggn = precision - 2.0 * torch.eye(len(precision), dtype=torch.float64)
    grid = torch.logspace(-3, 4, 15, dtype=torch.float64)
    theirs = torch.stack(
        [ref.log_marginal_likelihood(prior_precision=torch.tensor([float(t)])).detach() for t in grid]
    ).double()
    eig = torch.linalg.eigvalsh(ggn).clamp_min(0)
    mine = torch.stack(
        [-t / 2 * (w**2).sum() + len(eig) / 2 * torch.log(t) - torch.log(eig + t).sum() / 2 for t in grid]
    )
    spread = float(mine.max() - mine.min())
    assert ((theirs - theirs[0]) - (mine - mine[0])).abs().max() < 1e-5 * spread
    assert 0 < int(theirs.argmax()) < len(grid) - 1
    assert uq.LastLayerLaplace.best_precision(ggn, w, grid) == float(grid[theirs.argmax()])


# ---------------------------------------------------------------- mean-field VI


@pytest.fixture()
def bayes_net(digits):
    """A BayesNet whose posterior sigmas vary from weight to weight."""
    net = models.build("mlp", digits.num_classes, digits.in_shape, seed=0)
    bayes = uq.BayesNet(net, prior_sigma=0.5, init_sigma=0.05)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for rho in bayes._get("rho_", bayes.param_names).values():
            rho.add_(0.3 * torch.randn(rho.shape, generator=g))
    return net, bayes


def test_vi_kl_matches_bayesian_torch_closed_form(bayes_net):
    # bayesian-torch's kl_div is the closed-form Gaussian KL averaged over a tensor's
    # elements; ipkit sums it, so the reference is mean times size, tensor by tensor.
    _needs("bayesian_torch")
    from bayesian_torch.layers import LinearReparameterization

    _, bayes = bayes_net
    kl_div = LinearReparameterization(1, 1).kl_div
    mus, sigmas = bayes._get("mu_", bayes.param_names), bayes.sigmas()
    zero, prior = torch.tensor(0.0), torch.tensor(bayes.prior_sigma)
    reference = sum(kl_div(mus[n], sigmas[n], zero, prior) * mus[n].numel() for n in mus)
    assert torch.allclose(bayes.kl(), reference, rtol=1e-5)


def test_vi_sampled_forward_matches_bayesian_torch(bayes_net, digits):
    # Same mu, rho (sigma = softplus(rho)) and noise stream: one weight draw per forward
    # pass in both, drawn layer by layer, weight then bias; float32 rounding only.
    _needs("bayesian_torch")
    from bayesian_torch.layers import LinearReparameterization
    from bayesian_torch.models.dnn_to_bnn import dnn_to_bnn

    net, bayes = bayes_net
    ref = copy.deepcopy(net)
    dnn_to_bnn(
        ref,
        {
            "prior_mu": 0.0,
            "prior_sigma": bayes.prior_sigma,
            "posterior_mu_init": 0.0,
            "posterior_rho_init": -3.0,
            "type": "Reparameterization",
            "moped_enable": False,
        },
    )
    mus, rhos = bayes._get("mu_", bayes.param_names), bayes._get("rho_", bayes.param_names)
    layers = {n: m for n, m in ref.named_modules() if isinstance(m, LinearReparameterization)}
    assert len(layers) == 3
    with torch.no_grad():
        for n, m in layers.items():
            for part in ("weight", "bias"):
                getattr(m, f"mu_{part}").copy_(mus[f"{n}.{part}"])
                getattr(m, f"rho_{part}").copy_(rhos[f"{n}.{part}"])
    x = digits.test.x[:32]
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(3)
        mine = bayes(x)
        torch.manual_seed(3)
        theirs = ref(x)
    theirs = theirs[0] if isinstance(theirs, tuple) else theirs
    assert torch.allclose(mine, theirs, atol=1e-6)


# ---------------------------------------------------------------- SWAG and MC dropout


def _weight_sequence(net: nn.Module, n: int, seed: int):
    """Set ``net``'s weights to ``n`` known random values, one after another."""
    g = torch.Generator().manual_seed(seed)
    for _ in range(n):
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g))
        yield


def _both_swags(net: nn.Module, rank: int, steps: int):
    """ipkit's SwagNet and torch-uncertainty's SWAG fed the same weight sequence."""
    _needs("torch_uncertainty")
    from torch_uncertainty.methods import SWAG

    ours = uq.SwagNet(net, rank)
    ref = SWAG(net, cycle_start=0, cycle_length=1, max_num_models=rank, var_clamp=1e-30, num_estimators=1)
    for epoch, _ in enumerate(_weight_sequence(net, steps, seed=0), start=1):
        ours.collect()
        ref.update_wrapper(epoch)
    return ours, ref


def test_swag_moments_match_torch_uncertainty():
    # Running mean, mean of squares and the last `rank` deviations from the updated mean,
    # parameter by parameter; float32 rounding only.
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    ours, ref = _both_swags(net, rank=3, steps=6)
    stats = ref.swag_stats
    names = [n for n, _ in net.named_parameters()]
    mean = torch.cat([stats[f"{ref.prfx}{n}_mean"].flatten() for n in names])
    sq_mean = torch.cat([stats[f"{ref.prfx}{n}_sq_mean"].flatten() for n in names])
    dev = torch.cat([stats[f"{ref.prfx}{n}_covariance_sqrt"] for n in names], 1)
    assert torch.allclose(ours.mean, mean, atol=1e-6)
    assert torch.allclose(ours.sq_mean, sq_mean, atol=1e-5)
    assert torch.allclose(ours.dev, dev, atol=1e-6)


def test_swag_sample_matches_torch_uncertainty():
    # ipkit follows Maddox et al.'s formula mean + (diag^1/2 z1 + D z2 / sqrt(K-1)) / sqrt(2)
    # at scale 1; torch-uncertainty leaves out the 1/sqrt(2), so its scale 0.5 is ipkit's 1.
    # torch-uncertainty draws z2 afresh for every parameter tensor (a block-diagonal low-rank
    # part), so one tensor is where the two samplers coincide: same draws, float32 rounding.
    net = nn.Linear(5, 3, bias=False)
    ours, ref = _both_swags(net, rank=4, steps=7)
    with torch.random.fork_rng():
        torch.manual_seed(5)
        mine = ours.sample(scale=1.0)
        torch.manual_seed(5)
        theirs = ref.sample(scale=0.5).weight.detach().flatten()
    assert torch.allclose(mine, theirs, atol=1e-6)


def test_mc_dropout_passes_match_torch_uncertainty(digits):
    # Dropout on, everything else in eval mode, `members` passes under the same seed: equal.
    _needs("torch_uncertainty")
    from torch_uncertainty.methods import mc_dropout

    sur = uq.MCDropout("mlp", digits.num_classes, digits.in_shape, members=6, seed=0, device="cpu", p=0.3)
    x = digits.test.x[:20]
    mine = sur.member_proba(x)
    ref = mc_dropout(copy.deepcopy(sur.module), num_estimators=6, on_batch=False).eval()
    with torch.random.fork_rng(), torch.no_grad():
        torch.manual_seed(sur.seed + 7)
        theirs = ref(x).softmax(-1).reshape(6, len(x), -1)
    assert torch.allclose(mine, theirs, atol=1e-6)
    assert (mine[0] - mine[1]).abs().max() > 1e-3, "the passes differ: dropout was on"


# ---------------------------------------------------------------- PGD


def test_pgd_matches_torchattacks_without_and_with_random_start(mlp, digits):
    # Same CE loss (torchattacks averages it, ipkit sums it: the signs agree), steps and
    # projection. Without a random start both begin at x; with one, the same seed gives the
    # same uniform start up to rounding. The projections round differently (min/max vs
    # x + clamp(delta)), so a few pixels differ by one float32 ulp.
    _needs("torchattacks")
    import torchattacks

    x, y = digits.test.x[:64], digits.test.y[:64]
    eps, steps, alpha = 0.1, 10, 0.02
    mine = attacks.pgd(mlp, x, y, eps, steps, step_size=alpha, random_start=False)
    theirs = torchattacks.PGD(mlp, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert (mine - theirs).abs().max() < 1e-6
    assert not torch.equal(mine, x)
    mine = attacks.pgd(mlp, x, y, eps, steps, step_size=alpha, random_start=True, seed=3)
    with torch.random.fork_rng():
        torch.manual_seed(3)
        theirs = torchattacks.PGD(mlp, eps=eps, alpha=alpha, steps=steps, random_start=True)(x, y)
    assert (mine - theirs).abs().max() < 1e-6


class _PartnerObjective(nn.Module):
    """ModelDiff's partner objective (see similarity.pgd_partners) as a classifier that
    torchattacks can attack: every row's logits are (0, L) for the batch objective L, so the
    gradient of the mean cross-entropy against class 0 is a positive multiple of dL/dx."""

    def __init__(self, model: nn.Module, x: torch.Tensor):
        super().__init__()
        self.model = model.eval()
        with torch.no_grad():
            self.base = model(x).float()

    def forward(self, xp: torch.Tensor) -> torch.Tensor:
        out = self.model(xp).float()
        within = 1 - F.cosine_similarity(out, self.base, dim=1, eps=1e-12).mean()
        unit = F.normalize(out, dim=1)
        objective = within + 1 - (unit @ unit.T).mean()
        return torch.stack([torch.zeros_like(objective), objective]).expand(len(xp), 2)


def test_modeldiff_partners_match_torchattacks_pgd_on_the_same_objective(mlp, digits):
    # Checks the search (start, signed steps, projection), not the reconstructed objective:
    # torchattacks' PGD loop ascends the same objective from the same seeded start.
    _needs("torchattacks")
    import torchattacks

    x = digits.test.x[:32]
    mine = similarity.pgd_partners(mlp, x, eps=0.06, steps=20, step_size=0.01, seed=4)
    with torch.random.fork_rng():
        torch.manual_seed(4)
        attack = torchattacks.PGD(_PartnerObjective(mlp, x), eps=0.06, alpha=0.01, steps=20, random_start=True)
        theirs = attack(x, torch.zeros(len(x), dtype=torch.long))
    assert (mine - theirs).abs().max() < 1e-6


# ---------------------------------------------------------------- ModelDiff DDV


def _ddv_reference(logits: np.ndarray, partner_logits: np.ndarray) -> np.ndarray:
    """Li et al. (ISSTA 2021): DDV_i = cosine distance between the outputs on seed i and on
    its partner, then the vector divided by its L2 norm."""
    d = np.array([distance.cosine(a, b) for a, b in zip(logits, partner_logits)])
    return d / np.linalg.norm(d)


def _logits(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return model.eval()(x).double().numpy()


def test_modeldiff_ddv_and_similarity_match_numpy_definition(mlp, digits):
    # Both compute the distances in float64 from the same float32 logits.
    pruned = transforms.prune(mlp, 0.5)
    other = models.build("mlp", digits.num_classes, digits.in_shape, seed=1)
    train.fit(other, digits.owner.x, digits.owner.y, epochs=1, seed=1)
    probe = similarity.modeldiff_probe(mlp, digits.owner.x[:40], eps=0.06, steps=10, step_size=0.01)
    ref = {}
    for name, model in {"source": mlp, "pruned": pruned, "other": other}.items():
        ref[name] = _ddv_reference(_logits(model, probe.x), _logits(model, probe.partner))
        assert np.abs(similarity.ddv(model, probe.x, probe.partner).numpy() - ref[name]).max() < 1e-6
    for name in ("pruned", "other"):
        expected = 1 - distance.cosine(ref["source"], ref[name])
        assert abs(similarity.modeldiff_score(mlp, {"pruned": pruned, "other": other}[name], probe) - expected) < 1e-6


# ---------------------------------------------------------------- dynamic int8


def test_dynamic_int8_agrees_with_torchao(mlp, digits):
    # torch.ao's dynamic int8 (ipkit) quantizes weights per tensor and activations per
    # tensor (affine, 7-bit range on x86); torchao's Int8DynamicActivationInt8Weight
    # per output row and per token (symmetric). Not the same numbers, so the check is that
    # both are int8 roundings of one float model: each within 5% of the float logits'
    # range, and the same label on at least 98% of the inputs.
    _needs("torchao")
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    x = digits.test.x[:200]
    mine = transforms.quantize_int8(mlp)
    theirs = copy.deepcopy(mlp).cpu().eval()
    quantize_(theirs, Int8DynamicActivationInt8WeightConfig())
    with torch.no_grad():
        f, a, b = mlp(x), mine(x), theirs(x)
    span = float(f.max() - f.min())
    assert (a - f).abs().max() < 0.05 * span
    assert (b - f).abs().max() < 0.05 * span
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.98
    assert not torch.equal(a, f), "the int8 model is not the float one"
