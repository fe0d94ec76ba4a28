"""How alike two models are, measured on their behaviour over a set of inputs.

- label agreement (fidelity): :func:`ipkit.methods.train.agreement`;
- :func:`gradient_cosine`: mean cosine similarity of the input gradients of the loss
  (gradient alignment, as in TRS, Yang et al., NeurIPS 2021, and Hong et al., SaTML 2023).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.timings import timed
from . import models
from .train import batched, model_device, predict


def input_gradients(model: nn.Module, x: Tensor, y: Tensor, create_graph: bool = False) -> Tensor:
    """Gradients of the cross-entropy loss w.r.t. the inputs, one per example."""
    x = x.detach().clone().requires_grad_(True)
    loss = F.cross_entropy(model(x).float(), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x, create_graph=create_graph)
    return grad


def gradient_cosine(a: nn.Module, b: nn.Module, x: Tensor, y: Tensor, batch_size: int = 256) -> float:
    """Mean over inputs of cos(grad_x L_a(x, y), grad_x L_b(x, y)), models in eval mode."""
    a.eval()
    b.eval()
    sims = []
    for i in range(0, len(x), batch_size):
        ga = input_gradients(a, x[i : i + batch_size], y[i : i + batch_size]).flatten(1)
        gb = input_gradients(b, x[i : i + batch_size], y[i : i + batch_size]).flatten(1)
        sims.append(F.cosine_similarity(ga, gb, dim=1, eps=1e-12))
    return float(torch.cat(sims).mean())


# --- ModelDiff (Li et al., ISSTA 2021) and baselines behind one interface -------------------
#
# A method has two parts: ``probe(reference, x_seed)`` builds the test inputs once from a
# reference model (its float parent when it is quantized), and ``score(a, b, probe)``
# compares two models on them. For a fixed probe every score is symmetric in (a, b).


def float_parent(model: nn.Module) -> nn.Module:
    """The float model a quantized ``model`` was made from (``model.float_parent``), else itself.

    ModelDiff generates input pairs on the float parent of a quantized model, whose
    int8 kernels have no gradients (Li et al., 2021).
    """
    return getattr(model, "float_parent", None) or model


def seed_inputs(x: Tensor, n: int, seed: int = 0) -> Tensor:
    """``n`` seed inputs drawn at random (seeded) from training images ``x`` (ModelDiff's seeds)."""
    if n < 1:
        raise ValueError(f"n_inputs must be at least 1, got {n}")
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:n].to(x.device)
    return x[idx].clone()


def pgd_partners(
    model: nn.Module, x: Tensor, eps: float = 0.06, steps: int = 50, step_size: float = 0.01, seed: int = 0
) -> Tensor:
    """A partner x' for each seed in ``x``, inside the L-inf ``eps`` ball and [0, 1].

    Signed-gradient ascent from a random start (Li et al., 2021) on the mean cosine
    distance between f(x_i) and f(x_i') plus the mean cosine distance between the
    partners' outputs f(x_i'), f(x_j') (outputs driven apart within each pair and across
    inputs; the equal weighting of the two terms is reconstructed).
    """
    model = float_parent(model).eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        base = model(x).float()
    delta = ((torch.rand(x.shape, generator=g) * 2 - 1) * eps).to(x.device)
    xp = (x + delta).clamp(0, 1)
    for _ in range(steps):
        xp = xp.detach().requires_grad_(True)
        out = model(xp).float()
        within = 1 - F.cosine_similarity(out, base, dim=1, eps=1e-12).mean()
        unit = F.normalize(out, dim=1)
        across = 1 - (unit @ unit.T).mean()
        (grad,) = torch.autograd.grad(within + across, xp)
        with torch.no_grad():
            xp = x + (xp + step_size * grad.sign() - x).clamp(-eps, eps)
            xp = xp.clamp(0, 1)
    return xp.detach()


def authors_pgd_partners(
    model: nn.Module,
    x: Tensor,
    eps: float,
    steps: int = 50,
    step_size: float = 0.01,
    seed: int = 0,
    scale: float = 1000.0,
    rest_weight: float = 0.1,
) -> Tensor:
    """Partners as Li et al.'s ``evaluate.ipynb`` makes them (``gen_adv_inputs``, read in
    github.com/yuanchun-li/ModelDiff): a targeted L-inf PGD (advertorch's ``LinfPGDAttack``,
    ``targeted=True``) on ``model``'s float parent in eval mode, with their own loss.

    The target of each seed is ``scale * (mean output over the batch - its output)`` on the
    clean seeds; each step ascends ``mean_i [(z_i0 - t_i0)^2 + rest_weight * mean_j>0 (z_ij -
    t_ij)^2]`` (advertorch's targeted mode negates their negative loss) by ``step_size *
    sign(grad)``, then projects onto the ``eps`` ball and onto [min, max] of the seed batch
    (their ``clip_min=inputs.min()``, ``clip_max=inputs.max()``). Start: uniform in the
    ball (``rand_init=True``), clipped the same way. Returns ``x + delta`` clipped.
    """
    model = float_parent(model).eval()
    with torch.no_grad():
        clean = model(x).float()
    target = scale * (clean.mean(0, keepdim=True) - clean)
    lo, hi = float(x.min()), float(x.max())
    g = torch.Generator(device="cpu").manual_seed(seed)
    delta = ((torch.rand(x.shape, generator=g) * 2 - 1) * eps).to(x.device)
    delta = (x + delta).clamp(lo, hi) - x
    for _ in range(steps):
        delta = delta.detach().requires_grad_(True)
        gap = model(x + delta).float() - target
        loss = (gap[:, 0] ** 2 + rest_weight * (gap[:, 1:] ** 2).mean(1)).mean()
        (grad,) = torch.autograd.grad(loss, delta)
        with torch.no_grad():
            delta = (delta + step_size * grad.sign()).clamp(-eps, eps)
            delta = (x + delta).clamp(lo, hi) - x
    return (x + delta).clamp(lo, hi).detach()


def decision_distances(model: nn.Module, x: Tensor, x_partner: Tensor) -> Tensor:
    """Raw DDV: cosine distance between the model's outputs on x_i and on x_i' (one per pair),
    in float64: ``1 - cos`` of nearly parallel outputs loses most of its digits in float32."""
    return output_distances(predict(model, x), predict(model, x_partner))


def output_distances(out: Tensor, out_partner: Tensor) -> Tensor:
    """``1 - cos`` of each pair's two output rows, in float64 (:func:`decision_distances`)."""
    return 1 - F.cosine_similarity(out.double(), out_partner.double(), dim=1, eps=1e-12)


def ddv(model: nn.Module, x: Tensor, x_partner: Tensor) -> Tensor:
    """The decision distance vector of ``model`` on the pairs, L2-normalised (Li et al., 2021)."""
    return F.normalize(decision_distances(model, x, x_partner), dim=0)


def ddv_cosine(da: Tensor, db: Tensor) -> float:
    """Cosine similarity of two DDVs (raw or normalised): the ModelDiff score."""
    return float(F.cosine_similarity(da.flatten(), db.flatten(), dim=0, eps=1e-12))


@dataclass
class Probe:
    """Test inputs a method built on a reference model: seeds ``x`` and, if any, ``partner``.

    A probe scores one reference against many suspects, so what a model computes on it
    (:meth:`outputs`, :meth:`distances`, :meth:`features`) is computed once per model and
    kept for the probe's life: the reference's outputs are not recomputed for every suspect.
    """

    x: Tensor
    partner: Tensor | None = None
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    _memo: dict = field(default_factory=dict, repr=False, compare=False)

    def _once(self, model: nn.Module, what: str, compute: Callable[[], Tensor]) -> Tensor:
        key = (id(model), what)
        if key not in self._memo:  # the model is kept beside its entry, so its id stays its own
            self._memo[key] = (model, compute())
        return self._memo[key][1]

    def outputs(self, model: nn.Module, probs: bool = False) -> Tensor:
        """``model``'s logits (or probabilities) on the probe's ``x``."""
        return self._once(model, f"outputs-{probs}", lambda: predict(model, self.x, probs=probs))

    def distances(self, model: nn.Module) -> Tensor:
        """``model``'s raw decision distances on the probe's pairs (:func:`decision_distances`)."""
        return self._once(
            model, "distances", lambda: output_distances(self.outputs(model), predict(model, self.partner))
        )

    def features(self, model: nn.Module) -> Tensor:
        """``model``'s penultimate features on the probe's ``x`` (:func:`features`)."""
        return self._once(model, "features", lambda: features(model, self.x))


def prime(plan: Sequence[tuple[nn.Module, Sequence[Probe]]], features_of: Sequence[Probe] = ()) -> float:
    """Fill the probes' memos in one :func:`~ipkit.methods.train.predict` call per model.

    ``plan`` lists, per model, the probes it will be scored on. The inputs of all of them
    (each distinct tensor once: probes that share their seeds share them) are stacked and
    predicted in one call; each probe then holds the model's logits, probabilities and
    (with a partner) decision distances, so scoring reads them instead of predicting again.
    ``features_of``: probes whose :meth:`Probe.features` will be read, filled with one
    features pass per model over their distinct inputs. Equal to the unbatched path up to
    float rounding (a batch of other size may take other kernels). A quantized model (one
    with a ``float_parent``) is predicted input tensor by input tensor, as unbatched: dynamic
    int8 quantization scales activations by the range of the whole batch, so stacking
    would change its outputs. Returns the seconds spent.
    """
    start = time.perf_counter()
    feat_ids = {id(p) for p in features_of}
    for model, probes in plan:
        inputs: dict[int, Tensor] = {}
        for p in probes:
            for t in (p.x, p.partner):
                if t is not None:
                    inputs.setdefault(id(t), t)
        if not inputs:
            continue
        keys = list(inputs)
        if getattr(model, "float_parent", None) is not None:  # dynamic int8 scales depend on the batch
            out = {k: predict(model, inputs[k]) for k in keys}
        else:
            out = dict(
                zip(keys, predict(model, torch.cat([inputs[k] for k in keys])).split([len(inputs[k]) for k in keys]))
            )
        feats: dict[int, Tensor] = {}
        wanted = {id(p.x): p.x for p in probes if id(p) in feat_ids}
        if wanted:
            fkeys = list(wanted)
            feats = dict(
                zip(
                    fkeys, features(model, torch.cat([wanted[k] for k in fkeys])).split([len(wanted[k]) for k in fkeys])
                )
            )
        for p in probes:
            logits = out[id(p.x)]
            p._memo.setdefault((id(model), "outputs-False"), (model, logits))
            p._memo.setdefault((id(model), "outputs-True"), (model, logits.softmax(-1)))
            if p.partner is not None:
                p._memo.setdefault((id(model), "distances"), (model, output_distances(logits, out[id(p.partner)])))
            if id(p.x) in feats:
                p._memo.setdefault((id(model), "features"), (model, feats[id(p.x)]))
    return time.perf_counter() - start


@dataclass
class Method:
    """A similarity method: ``probe(reference, x_seed, **opts)`` then ``score(a, b, probe)``."""

    name: str
    label: str
    probe: Callable[..., Probe]
    score: Callable[[nn.Module, nn.Module, Probe], float]
    paper: str = ""


@timed("probe", "modeldiff")
def modeldiff_probe(
    reference: nn.Module,
    x_seed: Tensor,
    eps: float = 0.06,
    steps: int = 50,
    step_size: float = 0.01,
    seed: int = 0,
    **_: object,
) -> Probe:
    """ModelDiff input pairs: the seeds and their PGD partners made on ``reference``'s float parent."""
    start = time.perf_counter()
    partner = pgd_partners(reference, x_seed, eps=eps, steps=steps, step_size=step_size, seed=seed)
    return Probe(x_seed, partner, time.perf_counter() - start)


@timed("probe", "modeldiff-authors")
def authors_modeldiff_probe(
    reference: nn.Module,
    x_seed: Tensor,
    eps: float,
    steps: int = 50,
    step_size: float = 0.01,
    seed: int = 0,
    scale: float = 1000.0,
    rest_weight: float = 0.1,
) -> Probe:
    """ModelDiff input pairs as Li et al.'s ``evaluate.ipynb`` makes them: the seeds and their
    :func:`authors_pgd_partners` on ``reference``'s float parent."""
    start = time.perf_counter()
    partner = authors_pgd_partners(
        reference, x_seed, eps=eps, steps=steps, step_size=step_size, seed=seed, scale=scale, rest_weight=rest_weight
    )
    return Probe(x_seed, partner, time.perf_counter() - start)


@timed("score", "modeldiff")
def modeldiff_score(a: nn.Module, b: nn.Module, probe: Probe) -> float:
    """Cosine similarity of the two models' DDVs on the probe's pairs (Li et al., 2021)."""
    return ddv_cosine(F.normalize(probe.distances(a), dim=0), F.normalize(probe.distances(b), dim=0))


def boundary_inputs(
    model: nn.Module,
    x: Tensor,
    eps: float = 0.25,
    steps: int = 30,
    step_size: float = 0.02,
    margin: float = 0.1,
    seed: int = 0,
) -> Tensor:
    """Inputs near ``model``'s decision boundary, IPGuard-style (Cao et al., AsiaCCS 2021).

    From each seed, signed-gradient steps (inside an L-inf ``eps`` ball) minimise
    ``|z_i - z_j| + relu(max_other z - min(z_i, z_j) + margin)`` between its predicted
    class i and a random other class j, so both lead and the model is undecided between
    them. The ball and step sizes are reconstructed.
    """
    model = float_parent(model).eval()
    with torch.no_grad():
        logits = model(x).float()
    k = logits.shape[1]
    g = torch.Generator(device="cpu").manual_seed(seed)
    i = logits.argmax(1)
    j = ((i.cpu() + torch.randint(1, k, (len(x),), generator=g)) % k).to(x.device)
    rows = torch.arange(len(x), device=x.device)
    xb = x.clone()
    for _ in range(steps):
        xb = xb.detach().requires_grad_(True)
        z = model(xb).float()
        zi, zj = z[rows, i], z[rows, j]
        other = z.clone()
        other[rows, i] = -float("inf")
        other[rows, j] = -float("inf")
        loss = ((zi - zj).abs() + F.relu(other.amax(1) - torch.minimum(zi, zj) + margin)).sum()
        (grad,) = torch.autograd.grad(loss, xb)
        with torch.no_grad():
            xb = (x + (xb - step_size * grad.sign() - x).clamp(-eps, eps)).clamp(0, 1)
    return xb.detach()


@timed("probe", "ipguard")
def ipguard_probe(
    reference: nn.Module,
    x_seed: Tensor,
    eps: float = 0.25,
    steps: int = 30,
    step_size: float = 0.02,
    margin: float = 0.1,
    seed: int = 0,
    **_: object,
) -> Probe:
    """IPGuard test inputs: points near the reference's decision boundary
    (:func:`boundary_inputs` with these ``eps``, ``steps``, ``step_size`` and ``margin``)."""
    start = time.perf_counter()
    xb = boundary_inputs(reference, x_seed, eps=eps, steps=steps, step_size=step_size, margin=margin, seed=seed)
    return Probe(xb, None, time.perf_counter() - start)


@timed("score", "ipguard")
def ipguard_score(a: nn.Module, b: nn.Module, probe: Probe) -> float:
    """Share of the boundary inputs on which ``a`` and ``b`` predict the same label (IPGuard);
    NaN when their label spaces differ in size."""
    oa, ob = probe.outputs(a), probe.outputs(b)
    if oa.shape[1] != ob.shape[1]:
        return float("nan")
    return float((oa.argmax(1) == ob.argmax(1)).float().mean())


@timed("probe", "seeds")
def seeds_probe(reference: nn.Module, x_seed: Tensor, **_: object) -> Probe:
    """The seed inputs themselves (for methods that need no generated inputs)."""
    return Probe(x_seed, None, 0.0)


@timed("score", "output cosine")
def output_cosine_score(a: nn.Module, b: nn.Module, probe: Probe) -> float:
    """Mean cosine similarity of the two models' softmax probabilities on the seeds;
    NaN when their output sizes differ."""
    pa, pb = probe.outputs(a, probs=True), probe.outputs(b, probs=True)
    if pa.shape != pb.shape:
        return float("nan")
    return float(F.cosine_similarity(pa, pb, dim=1, eps=1e-12).mean())


def named_weights(model: nn.Module) -> dict[str, Tensor]:
    """Float weights and biases of every conv/linear layer by module name, dequantizing
    dynamically quantized linear layers."""
    out: dict[str, Tensor] = {}
    for name, m in model.named_modules():
        w = getattr(m, "weight", None)
        if callable(w) and hasattr(m, "bias") and callable(m.bias):
            out[f"{name}.weight"] = w().dequantize().float()
            if m.bias() is not None:
                out[f"{name}.bias"] = m.bias().detach().float()
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            out[f"{name}.weight"] = m.weight.detach().float()
            if m.bias is not None:
                out[f"{name}.bias"] = m.bias.detach().float()
    return out


@timed("score", "weight cosine")
def weight_cosine_score(a: nn.Module, b: nn.Module, probe: Probe | None = None) -> float:
    """Cosine similarity of the flattened conv/linear weights both models share by name and
    shape; NaN ("not applicable") when their architectures differ."""
    spec_a, spec_b = getattr(a, "spec", {}) or {}, getattr(b, "spec", {}) or {}
    if spec_a.get("arch") != spec_b.get("arch"):
        return float("nan")
    wa, wb = named_weights(a), named_weights(b)
    shared = [k for k in wa if k in wb and wa[k].shape == wb[k].shape]
    if not shared:
        return float("nan")
    va = torch.cat([wa[k].flatten().cpu() for k in shared])
    vb = torch.cat([wb[k].flatten().cpu() for k in shared])
    return float(F.cosine_similarity(va, vb, dim=0, eps=1e-12))


def features(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Penultimate features (the input of the linear head) of a :class:`ipkit.methods.models.Net`,
    in eval mode, computed on the model's device and returned on ``x``'s."""
    model.eval()
    return batched(cast(models.Net, model).features, x, batch_size, model_device(model))


@timed("score", "feature similarity")
def feature_similarity_score(a: nn.Module, b: nn.Module, probe: Probe) -> float:
    """Last-feature similarity: cosine similarity of the two models' input-by-input cosine
    similarity matrices of penultimate features on the seeds (works across widths)."""
    fa, fb = F.normalize(probe.features(a), dim=1), F.normalize(probe.features(b), dim=1)
    return ddv_cosine(fa @ fa.T, fb @ fb.T)


METHODS: dict[str, Method] = {
    "modeldiff": Method("modeldiff", "ModelDiff", modeldiff_probe, modeldiff_score, "Li et al., ISSTA 2021"),
    "ipguard": Method("ipguard", "IPGuard", ipguard_probe, ipguard_score, "Cao et al., AsiaCCS 2021"),
    "output_cosine": Method("output_cosine", "output cosine", seeds_probe, output_cosine_score),
    "weight_cosine": Method("weight_cosine", "weight cosine", seeds_probe, weight_cosine_score),
    "feature_sim": Method("feature_sim", "last-feature sim.", seeds_probe, feature_similarity_score),
}


def get_method(name: str) -> Method:
    """The method ``name`` from :data:`METHODS`, or a ValueError listing them."""
    if name not in METHODS:
        raise ValueError(f"unknown similarity method '{name}': choose one of {', '.join(METHODS)}")
    return METHODS[name]


def compare(a: nn.Module, b: nn.Module, x_seed: Tensor, method: str = "modeldiff", **probe_opts: object) -> float:
    """Similarity of suspect ``b`` to reference ``a`` with ``method``: probe built on ``a``
    (its float parent if quantized) from ``x_seed``, then scored. NaN means not applicable."""
    m = get_method(method)
    return m.score(a, b, m.probe(a, x_seed, **probe_opts))
