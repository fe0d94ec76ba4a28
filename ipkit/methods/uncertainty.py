"""Five uncertainty-quantification (UQ) models behind one interface, and their metrics.

Each is trained on a victim's answers as a stolen copy (``fit(queries, victim_outputs)``,
``predict_proba(x)``, ``member_proba(x)``); the study that compares them with a single
copy is :mod:`ipkit.studies.uq_stealing` (Pape et al., ESANN 2023). The five are the
standard ones:

- :class:`DeepEnsemble`: independently initialised members (Lakshminarayanan et al.,
  NeurIPS 2017), trained together as one vectorised model (``torch.func.vmap`` over
  stacked weights) or one after another;
- :class:`MCDropout`: one network with dropout kept on at prediction time (Gal and
  Ghahramani, ICML 2016);
- :class:`MeanFieldVI`: Bayes-by-backprop, a factorised Gaussian posterior over every
  weight trained with the reparameterisation trick and a KL term to a Gaussian prior
  (Blundell et al., ICML 2015);
- :class:`SWAG`: SWA mean with a diagonal plus low-rank Gaussian over the SGD iterates,
  sampled (Maddox et al., NeurIPS 2019);
- :class:`LastLayerLaplace`: a Gaussian around the trained last layer with the
  Gauss-Newton Hessian of the softmax likelihood, sampled or probit-approximated
  (MacKay 1992; Daxberger et al., NeurIPS 2021).

``predict_proba`` is the mean of the member (or posterior-sample) probabilities.
Every surrogate records the variance of its members' predictions and their pairwise
disagreement on a monitor set from optimiser step 0 (the untrained members) on a
log-spaced schedule of steps (:func:`trace_steps`). :func:`stolen_surrogate` is the cached
recipe: queries drawn from the attacker's pool, the victim's answers, the fitted surrogate.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from . import cache, models, steal
from .data import Splits
from .recipes import digest, train_settings
from .train import History, autocast, batched, default_device, fit, model_device

METHODS = ("ensemble", "mc_dropout", "vi", "swag", "laplace")
SEED_STREAMS = {"member_stride": 100, "swa_phase": 1, "samples": 7}
TRACE_POINTS = 12  # log-spaced optimiser steps (after step 0) at which diversity is recorded


def trace_steps(total: int, points: int = TRACE_POINTS) -> list[int]:
    """The optimiser steps at which a surrogate's diversity is recorded: 0 (initialisation,
    before any step) and ``points`` log-spaced steps from 1 to ``total`` (rounded, each once)."""
    if total < 1:
        return [0]
    spaced = torch.logspace(0, math.log10(total), max(points, 1), dtype=torch.float64).round().long()
    return sorted({0, total, *map(int, spaced.clamp(1, total))})


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Optimiser steps of one epoch over ``n`` examples (as :func:`ipkit.methods.train.fit` counts)."""
    return max(1, math.ceil(n / batch_size))


# ---------------------------------------------------------------- losses and metrics


def soft_cross_entropy(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy against class indices (int) or victim probabilities (float)."""
    if targets.is_floating_point():
        return -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1).mean()
    return F.cross_entropy(logits.float(), targets)


def fidelity(proba: Tensor, victim_labels: Tensor) -> float:
    """Share of inputs on which the copy's top label equals the victim's."""
    return float((proba.argmax(-1) == victim_labels).float().mean())


def accuracy(proba: Tensor, labels: Tensor) -> float:
    """Share of inputs on which the copy's top label is the true label."""
    return float((proba.argmax(-1) == labels).float().mean())


def input_variance(members: Tensor) -> Tensor:
    """Per input (N,): variance of the predicted probabilities across members (S, N, C),
    mean over classes; zero where all members predict alike."""
    if len(members) < 2:
        return torch.zeros(members.shape[1], device=members.device)
    return members.float().var(0, unbiased=False).mean(-1)


def member_variance(members: Tensor) -> float:
    """Variance of the predicted probabilities across members (S, N, C), mean over inputs
    and classes; zero when all members predict alike."""
    return float(input_variance(members).mean())


def disagreement(members: Tensor) -> float:
    """Pairwise disagreement: share of (member pair, input) with different top labels."""
    s = len(members)
    if s < 2:
        return 0.0
    labels = members.argmax(-1)
    same = (labels[:, None] == labels[None]).float().mean(-1)
    return float((1 - same).sum() / (s * (s - 1)))


def ece(proba: Tensor, labels: Tensor, bins: int = 15) -> float:
    """Expected calibration error: confidence-vs-accuracy gap over equal-width bins,
    weighted by the share of inputs in each bin (Guo et al., ICML 2017)."""
    conf, pred = proba.float().max(-1)
    right = (pred == labels).float()
    edges = torch.linspace(0, 1, bins + 1, device=proba.device)
    total = torch.zeros((), device=proba.device)
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (conf > lo) & (conf <= hi)
        if inside.any():
            total += inside.float().mean() * (conf[inside].mean() - right[inside].mean()).abs()
    return float(total)


def scores(members: Tensor, victim_labels: Tensor, labels: Tensor, bins: int = 15) -> dict[str, float]:
    """Fidelity, accuracy, member variance, disagreement and ECE (``bins`` bins) of a
    surrogate, from its member probabilities (S, N, C) on test inputs."""
    proba = members.mean(0)
    return {
        "fidelity": fidelity(proba, victim_labels),
        "accuracy": accuracy(proba, labels),
        "variance": member_variance(members),
        "disagreement": disagreement(members),
        "ece": ece(proba, labels, bins),
    }


# ---------------------------------------------------------------- shared machinery


def _ce_loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
    return soft_cross_entropy(model(xb), yb)


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Run the block with torch's RNG seeded, leaving the global RNG state untouched."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


class _Functional(nn.Module):
    """Holds a network's weights in its own tensors and calls a weightless (meta) copy
    of the network with them through :func:`torch.func.functional_call`."""

    base: nn.Module

    def __init__(self, net: nn.Module):
        super().__init__()
        object.__setattr__(self, "base", copy.deepcopy(net).to("meta"))
        self.param_names = [n for n, _ in net.named_parameters()]
        self.buffer_names = [n for n, _ in net.named_buffers()]

    def train(self, mode: bool = True) -> _Functional:
        super().train(mode)
        self.base.train(mode)
        return self

    def _get(self, prefix: str, names: list[str]) -> dict[str, Tensor]:
        return {n: getattr(self, prefix + n.replace(".", "__")) for n in names}


class StackedEnsemble(_Functional):
    """M networks of one architecture as one module: weights stacked along a leading
    member axis, the forward pass vectorised over it with ``torch.func.vmap``.

    ``forward(x)`` gives logits of shape (M, N, C). Summing the members' losses gives each
    member exactly its own gradient, so one optimiser step updates every member as if it
    were trained alone (SGD, momentum and weight decay act elementwise).
    """

    def __init__(self, nets: list[nn.Module]):
        super().__init__(nets[0])
        params, buffers = stack_module_state(nets)
        for n, p in params.items():
            self.register_parameter("p_" + n.replace(".", "__"), nn.Parameter(p.detach().clone()))
        for n, b in buffers.items():
            self.register_buffer("b_" + n.replace(".", "__"), b.clone())
        self.members = len(nets)

    def forward(self, x: Tensor) -> Tensor:
        def one(params: dict[str, Tensor], buffers: dict[str, Tensor], xb: Tensor) -> Tensor:
            return functional_call(self.base, (params, buffers), (xb,))

        return vmap(one, in_dims=(0, 0, None), randomness="different")(
            self._get("p_", self.param_names), self._get("b_", self.buffer_names), x
        )


class BayesNet(_Functional):
    """A network with a factorised Gaussian over every weight: ``mu`` and
    ``sigma = softplus(rho)`` per weight, a N(0, ``prior_sigma**2``) prior.

    Each forward pass draws one weight sample by reparameterisation (Blundell et al. 2015).
    """

    def __init__(self, net: nn.Module, prior_sigma: float = 1.0, init_sigma: float = 1e-2):
        super().__init__(net)
        rho = math.log(math.expm1(init_sigma))
        for n, p in net.named_parameters():
            key = n.replace(".", "__")
            self.register_parameter("mu_" + key, nn.Parameter(p.detach().clone()))
            self.register_parameter("rho_" + key, nn.Parameter(torch.full_like(p, rho)))
        for n, b in net.named_buffers():
            self.register_buffer("b_" + n.replace(".", "__"), b.detach().clone())
        self.prior_sigma = prior_sigma

    def sigmas(self) -> dict[str, Tensor]:
        """Posterior standard deviation of each weight."""
        return {n: F.softplus(r) for n, r in self._get("rho_", self.param_names).items()}

    def sample(self) -> dict[str, Tensor]:
        """One weight sample ``mu + sigma * eps``."""
        mus, sigmas = self._get("mu_", self.param_names), self.sigmas()
        return {n: mus[n] + sigmas[n] * torch.randn_like(mus[n]) for n in mus}

    def kl(self) -> Tensor:
        """KL(q || prior) summed over weights: zero exactly when q equals the prior."""
        total = torch.zeros((), device=model_device(self))
        sp = self.prior_sigma
        mus, sigmas = self._get("mu_", self.param_names), self.sigmas()
        for n in mus:
            s2, m2 = sigmas[n] ** 2, mus[n] ** 2
            total = total + (math.log(sp) - torch.log(sigmas[n]) + (s2 + m2) / (2 * sp**2) - 0.5).sum()
        return total

    def forward(self, x: Tensor) -> Tensor:
        return functional_call(self.base, (self.sample(), self._get("b_", self.buffer_names)), (x,))


def _flat(net: nn.Module) -> Tensor:
    return torch.cat([p.detach().reshape(-1) for p in net.parameters()])


def _assign(net: nn.Module, flat: Tensor) -> None:
    i = 0
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(flat[i : i + p.numel()].view_as(p))
            i += p.numel()


@torch.no_grad()
def bn_update(net: nn.Module, x: Tensor, batch_size: int = 256) -> None:
    """Recompute batch-norm running statistics of ``net`` on ``x`` (needed after setting
    sampled weights, as in SWA/SWAG). A no-op for networks without batch norm."""
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    moments = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    net.train()
    for i in range(0, len(x), batch_size):
        with autocast(x.device):
            net(x[i : i + batch_size])
    for m, mom in zip(bns, moments):
        m.momentum = mom
    net.eval()


class SwagNet(nn.Module):
    """A network plus SWAG's moments of its weights: running mean, running mean of
    squares and the last ``rank`` deviations from the running mean (Maddox et al. 2019)."""

    net: nn.Module
    mean: Tensor
    sq_mean: Tensor
    dev: Tensor
    n: Tensor

    def __init__(self, net: nn.Module, rank: int):
        super().__init__()
        self.net = net
        size = sum(p.numel() for p in net.parameters())
        self.register_buffer("mean", torch.zeros(size))
        self.register_buffer("sq_mean", torch.zeros(size))
        self.register_buffer("dev", torch.zeros(rank, size))
        self.register_buffer("n", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def collect(self) -> None:
        """Add the network's current weights to the running moments."""
        w = _flat(self.net)
        n = int(self.n) + 1
        self.mean.mul_((n - 1) / n).add_(w / n)
        self.sq_mean.mul_((n - 1) / n).add_(w * w / n)
        self.dev.copy_(torch.cat([self.dev[1:], (w - self.mean)[None]]))
        self.n.fill_(n)

    @torch.no_grad()
    def sample(self, scale: float = 1.0) -> Tensor:
        """Flat weights ``mean + (diag^1/2 z1 + D z2 / sqrt(K-1)) / sqrt(2)``."""
        k = min(int(self.n), len(self.dev))
        return swag_sample(self.mean, self.sq_mean, self.dev[-k:] if k else self.dev[:0], scale)


@torch.no_grad()
def swag_sample(mean: Tensor, sq_mean: Tensor, dev: Tensor, scale: float = 1.0) -> Tensor:
    """One SWAG draw ``mean + sqrt(scale/2) (diag^1/2 z1 + D^T z2 / sqrt(K-1))`` from the
    first and second moments of the iterates and ``K`` deviations ``dev`` (K, P)
    (Maddox et al. 2019, eq. 1; the low-rank part only when K >= 2)."""
    var = (sq_mean - mean**2).clamp_min(1e-30)
    w = var.sqrt() * torch.randn_like(var)
    if len(dev) >= 2:
        w = w + dev.T @ torch.randn(len(dev), device=var.device) / math.sqrt(len(dev) - 1)
    return mean + math.sqrt(scale / 2) * w


class SwagWindow:
    """SWAG's moments over a sliding window of the last ``size`` weight snapshots (the
    low-rank part from the last ``rank`` of them, as deviations from the window's mean):
    the posterior SWAG would form had its collection ended at the latest snapshot. Used
    to trace SWAG's diversity from step 0 (:class:`SWAG`)."""

    def __init__(self, size: int, rank: int):
        if size < 1 or rank < 1:
            raise ValueError(f"size and rank must be >= 1, got {size}, {rank}")
        self.size, self.rank = size, rank
        self.snapshots: list[Tensor] = []

    def add(self, flat: Tensor) -> None:
        """Add a snapshot of the flat weights, dropping the oldest beyond ``size``."""
        self.snapshots = [*self.snapshots, flat.detach().clone()][-self.size :]

    @torch.no_grad()
    def sampler(self, scale: float = 1.0):
        """A function drawing from the window's SWAG Gaussian (:func:`swag_sample`), its
        moments computed once."""
        stack = torch.stack(self.snapshots)
        mean, sq_mean = stack.mean(0), (stack**2).mean(0)
        dev = stack[-self.rank :] - mean
        return lambda: swag_sample(mean, sq_mean, dev, scale)


# ---------------------------------------------------------------- the surrogates


class Surrogate:
    """A stolen copy that is a UQ model. Subclasses build ``self.module`` (everything that
    is stored in the cache) in ``__init__`` and implement ``_train`` and ``member_proba``.

    ``members`` is the number of ensemble members or of posterior samples drawn.
    ``fit_kwargs`` go to :func:`ipkit.methods.train.fit` (epochs, batch_size, lr, optimizer...).
    ``trace_points``: log-spaced optimiser steps, after step 0, at which the members'
    diversity is recorded (:func:`trace_steps`).

    Random streams, all derived from ``seed`` (:data:`SEED_STREAMS`): network ``i`` starts
    from ``seed * member_stride + i``, training draws from ``seed`` (SWAG's collection
    phase from ``seed + swa_phase``), prediction-time samples from ``seed + samples``.
    """

    name = ""

    def __init__(
        self,
        arch: str,
        num_classes: int,
        in_shape: tuple[int, int, int],
        *,
        members: int = 5,
        seed: int = 0,
        device: torch.device | str | None = None,
        trace_points: int = TRACE_POINTS,
        **fit_kwargs: Any,
    ):
        if members < 1:
            raise ValueError(f"members must be >= 1, got {members}")
        self.arch, self.num_classes = arch, num_classes
        self.in_shape: tuple[int, int, int] = (in_shape[0], in_shape[1], in_shape[2])
        self.members, self.seed, self.trace_points = members, seed, trace_points
        self.device = torch.device(device) if device is not None else default_device()
        self.fit_kwargs = {"epochs": 10, "batch_size": 128, "lr": 0.05, **fit_kwargs}
        self.trace: list[dict[str, float]] = []
        self.module: nn.Module = nn.Module()

    def settings(self) -> dict[str, Any]:
        """The surrogate's scalar settings (part of its cache key): its public scalar
        attributes, none set by training, so a trained and a cached surrogate agree."""
        return {
            k: v
            for k, v in sorted(vars(self).items())
            if isinstance(v, (bool, int, float, str)) and k not in ("arch", "name") and not k.startswith("_")
        }

    def _net(self, i: int = 0, dropout: float = 0.0) -> nn.Module:
        """Network ``i`` of this surrogate, freshly initialised from its own seed."""
        return models.build(
            self.arch,
            self.num_classes,
            self.in_shape,
            dropout=dropout,
            seed=self.seed * SEED_STREAMS["member_stride"] + i,
        ).to(self.device)

    def _sampling(self, device: torch.device):
        """The block in which prediction-time samples are drawn (global RNG left alone)."""
        return _seeded(self.seed + SEED_STREAMS["samples"], device)

    def fit(self, queries: Tensor, victim_outputs: Tensor, monitor: Tensor | None = None) -> Surrogate:
        """Train on the victim's answers (probabilities, or labels) to ``queries``.

        With ``monitor`` inputs, record the members' prediction variance and disagreement
        there in ``self.trace``: at step 0 (the untrained members) and at the log-spaced
        optimiser steps of :func:`trace_steps`, each row with its ``step`` and ``epoch``
        (steps over steps per epoch).
        """
        self.trace = []
        self._per_epoch = steps_per_epoch(len(queries), self.fit_kwargs["batch_size"])
        self._train(queries, victim_outputs.to(queries.device), monitor)
        return self

    def _record(self, step: int, monitor: Tensor | None, members: Tensor | None = None) -> None:
        """Append the diversity at optimiser ``step`` on ``monitor`` (of ``members``'
        probabilities when given, else of :meth:`member_proba`)."""
        if monitor is None:
            return
        m = members if members is not None else self.member_proba(monitor)
        self.trace.append(
            {
                "step": step,
                "epoch": step / self._per_epoch,
                "variance": member_variance(m),
                "disagreement": disagreement(m),
            }
        )

    def _recorder(self, monitor: Tensor | None, total: int, offset: int = 0, before=None):
        """An ``on_step`` hook that records at the steps of :func:`trace_steps` (``total``
        steps in all; the hook's steps start after ``offset``), calling ``before(step)``
        first; the trained model is put back in training mode."""
        steps = set(trace_steps(total, self.trace_points))

        def on_step(step: int, model: nn.Module) -> None:
            if monitor is not None and step + offset in steps:
                if before is not None:
                    before(step + offset)
                self._record(step + offset, monitor)
                model.train()

        return on_step

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        raise NotImplementedError

    def member_proba(self, x: Tensor) -> Tensor:
        """Probabilities of each member or posterior sample, shape (members, N, C)."""
        raise NotImplementedError

    def predict_proba(self, x: Tensor) -> Tensor:
        """The combined prediction: mean of the member probabilities, shape (N, C)."""
        return self.member_proba(x).mean(0)

    def _fit(
        self, model: nn.Module, x: Tensor, y: Tensor, monitor: Tensor | None, *, loss=None, **overrides: Any
    ) -> History:
        settings = {**self.fit_kwargs, **overrides}
        total = settings["epochs"] * steps_per_epoch(len(x), settings["batch_size"])
        self._record(0, monitor)
        return fit(
            model,
            x,
            y,
            loss=loss or _ce_loss,
            seed=self.seed,
            on_step=self._recorder(monitor, total),
            desc=f"{self.name} {self.arch}",
            **settings,
        )


class DeepEnsemble(Surrogate):
    """``members`` networks from different random initialisations, trained on the same
    answers; ``together=True`` trains them as one vmapped :class:`StackedEnsemble`,
    ``False`` one after another (same results up to float rounding)."""

    name = "ensemble"

    def __init__(self, *args: Any, together: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.together = together
        nets = [self._net(i) for i in range(self.members)]
        self.module = StackedEnsemble(nets).to(self.device) if together else nn.ModuleList(nets)

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        if self.together:

            def loss(m: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
                logits = m(xb)
                return cast(Tensor, sum(soft_cross_entropy(logits[i], yb) for i in range(len(logits))))

            self._fit(self.module, x, y, monitor, loss=loss)
            return
        self._record(0, monitor)
        for net in cast(nn.ModuleList, self.module):
            self._fit(net, x, y, None)
        self._record(self.fit_kwargs["epochs"] * self._per_epoch, monitor)

    def member_proba(self, x: Tensor) -> Tensor:
        was = self.module.training
        self.module.eval()
        if self.together:
            out = batched(self.module, x).softmax(-1)
        else:
            out = torch.stack([batched(net, x).softmax(-1) for net in cast(nn.ModuleList, self.module)])
        self.module.train(was)
        return out


class MCDropout(Surrogate):
    """One network with dropout rate ``p`` (hidden layers and before the head); at
    prediction time ``members`` forward passes with dropout on are averaged."""

    name = "mc_dropout"

    def __init__(self, *args: Any, p: float = 0.2, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.p = p
        self.module = self._net(dropout=p)

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        self._fit(self.module, x, y, monitor)

    def member_proba(self, x: Tensor, dropout: bool = True) -> Tensor:
        """Probabilities of ``members`` passes, dropout on (``dropout=False``: all off, so
        every pass gives the same answer). Batch norm always uses its running statistics."""
        was = self.module.training
        self.module.eval()
        for m in self.module.modules():
            if isinstance(m, nn.Dropout):
                m.train(dropout)
        with self._sampling(x.device):
            out = torch.stack([batched(self.module, x).softmax(-1) for _ in range(self.members)])
        self.module.train(was)
        return out


class MeanFieldVI(Surrogate):
    """Bayes-by-backprop: loss = expected NLL (one weight sample per batch) +
    ``kl_weight`` * KL(q || prior) / number of queries. ``kl_weight = 1`` is the evidence
    lower bound; smaller values temper the KL term."""

    name = "vi"

    def __init__(
        self, *args: Any, prior_sigma: float = 1.0, init_sigma: float = 1e-2, kl_weight: float = 1.0, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        self.kl_weight, self.prior_sigma, self.init_sigma = kl_weight, prior_sigma, init_sigma
        self.module = BayesNet(self._net(), prior_sigma, init_sigma).to(self.device)

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        n = len(x)

        def loss(m: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
            return soft_cross_entropy(m(xb), yb) + self.kl_weight * cast(BayesNet, m).kl() / n

        self._fit(self.module, x, y, monitor, loss=loss, weight_decay=0.0)

    def member_proba(self, x: Tensor) -> Tensor:
        was = self.module.training
        self.module.eval()
        with self._sampling(x.device):
            out = torch.stack([batched(self.module, x).softmax(-1) for _ in range(self.members)])
        self.module.train(was)
        return out


class SWAG(Surrogate):
    """SWAG as Maddox et al. (2019) run it: first the network is trained like any single
    copy (``epochs`` on the usual schedule), then ``swa_epochs`` more epochs (default: half
    of ``epochs``, at least one) at the constant rate ``swa_lr`` (default: half the peak
    learning rate) collect the weights about ``2 * rank`` times (rank of the low-rank part:
    ``rank``) through the trainer's step and epoch hooks: at the start of the phase, every
    ``steps // (2 * rank)`` optimiser steps and at its end. Prediction averages ``members``
    weight samples, each with batch norm recomputed on the queries.

    Its diversity is traced from step 0 of the whole run (pre-training and collection) by
    the posterior SWAG would form from the most recent iterates: the same moments over a
    sliding window of snapshots taken at the collection's cadence, as many as the
    collection phase takes (:class:`SwagWindow`). At step 0 the window holds one snapshot
    (the initial weights), so every sample is that network and the diversity is zero; at
    the end the window is the collection phase, so the trace ends on (nearly) the
    posterior that predicts. What the curve cannot show: during pre-training no SWAG
    model exists, so those points say how diverse SWAG's samples would be had collection
    stopped there, not how diverse the final model's members were."""

    name = "swag"
    module: SwagNet

    def __init__(
        self, *args: Any, swa_epochs: int | None = None, swa_lr: float | None = None, rank: int = 10, **kwargs: Any
    ):
        super().__init__(*args, **kwargs)
        epochs = self.fit_kwargs["epochs"]
        self.swa_epochs = swa_epochs if swa_epochs is not None else max(1, epochs // 2)
        if self.swa_epochs < 1:
            raise ValueError(f"swa_epochs must be >= 1, got {self.swa_epochs}")
        self.swa_lr = swa_lr if swa_lr is not None else self.fit_kwargs["lr"] / 2
        self.rank = rank
        self.module = SwagNet(self._net(), rank).to(self.device)
        self._queries: Tensor | None = None

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        self._queries = x
        pre = self.fit_kwargs["epochs"] * self._per_epoch
        steps = self.swa_epochs * self._per_epoch
        every = max(1, steps // (2 * self.rank))
        window = SwagWindow(size=steps // every + 1, rank=self.rank)
        total = pre + steps
        net = self.module.net

        def trace(step: int, model: nn.Module) -> None:
            if step % every == 0:
                window.add(_flat(model))

        trace(0, net)
        self._record(0, monitor, self._window_proba(window, monitor))
        schedule = set(trace_steps(total, self.trace_points))

        def on_pre_step(step: int, model: nn.Module) -> None:
            trace(step, model)
            self._record_window(step, model, window, monitor, schedule)

        fit(
            net,
            x,
            y,
            loss=_ce_loss,
            seed=self.seed,
            on_step=on_pre_step,
            desc=f"swag {self.arch} (pre-training)",
            **self.fit_kwargs,
        )
        self.module.collect()

        def on_step(step: int, model: nn.Module) -> None:
            if step % every == 0 and step < steps:
                self.module.collect()
            trace(pre + step, model)
            self._record_window(pre + step, model, window, monitor, schedule)

        def on_epoch(epoch: int, _m: nn.Module, _h: History) -> None:
            if epoch == self.swa_epochs - 1:
                self.module.collect()

        fit(
            net,
            x,
            y,
            loss=_ce_loss,
            seed=self.seed + SEED_STREAMS["swa_phase"],
            on_epoch=on_epoch,
            on_step=on_step,
            desc=f"swag {self.arch}",
            **{**self.fit_kwargs, "epochs": self.swa_epochs, "lr": self.swa_lr, "schedule": "constant"},
        )

    def _record_window(
        self, step: int, model: nn.Module, window: SwagWindow, monitor: Tensor | None, schedule: set[int]
    ) -> None:
        if monitor is None or step not in schedule:
            return
        self._record(step, monitor, self._window_proba(window, monitor))
        model.train()

    def _window_proba(self, window: SwagWindow, monitor: Tensor | None) -> Tensor | None:
        """Probabilities on ``monitor`` of ``members`` samples of the window's posterior."""
        if monitor is None:
            return None
        assert self._queries is not None, "the training queries are set before the window is traced"
        return self._sample_proba(monitor, window.sampler(), self._queries)

    def _sample_proba(self, x: Tensor, sample, bn_x: Tensor) -> Tensor:
        net = copy.deepcopy(self.module.net)
        outs = []
        with self._sampling(x.device):
            for _ in range(self.members):
                _assign(net, sample())
                bn_update(net, bn_x)
                net.eval()
                outs.append(batched(net, x).softmax(-1))
        return torch.stack(outs)

    def member_proba(self, x: Tensor, queries: Tensor | None = None) -> Tensor:
        """Probabilities under ``members`` weight samples; batch norm statistics come
        from ``queries`` (default: the training queries, else ``x``)."""
        bn_x = queries if queries is not None else self._queries if self._queries is not None else x
        return self._sample_proba(x, self.module.sample, bn_x)


class LastLayerLaplace(Surrogate):
    """A trained network whose last layer gets a Gaussian posterior: mean = the trained
    weights, covariance = inverse of (Gauss-Newton Hessian of the summed cross-entropy on
    the queries + prior precision * I). ``prior_precision="auto"`` picks the precision
    that maximises the Laplace approximation of the marginal likelihood (MacKay 1992;
    Immer et al., ICML 2021) on a log grid. ``link="sample"`` draws ``members`` last
    layers; ``link="probit"`` uses the probit approximation of the predictive."""

    name = "laplace"

    def __init__(self, *args: Any, prior_precision: float | str = "auto", link: str = "sample", **kwargs: Any):
        super().__init__(*args, **kwargs)
        if link not in ("sample", "probit"):
            raise ValueError(f"unknown Laplace link '{link}': choose sample or probit")
        if prior_precision != "auto" and not float(prior_precision) > 0:
            raise ValueError(f"prior_precision must be 'auto' or > 0, got {prior_precision!r}")
        self.prior_precision, self.link = prior_precision, link
        self.module = self._net()
        size = self.num_classes * (cast(nn.Linear, self.module.head).in_features + 1)
        self.module.register_buffer("laplace_scale_tril", torch.zeros(size, size, device=self.device))
        self.module.register_buffer("laplace_precision", torch.zeros((), device=self.device))

    def _train(self, x: Tensor, y: Tensor, monitor: Tensor | None) -> None:
        """Train the network; at every traced step (step 0 included) fit the posterior
        around the current weights and record its samples' diversity."""
        if monitor is not None:
            self.fit_posterior(x)
            self._record(0, monitor)
        total = self.fit_kwargs["epochs"] * self._per_epoch
        on_step = self._recorder(monitor, total, before=lambda _step: self.fit_posterior(x))
        fit(
            self.module,
            x,
            y,
            loss=_ce_loss,
            seed=self.seed,
            on_step=on_step,
            desc=f"laplace {self.arch}",
            **self.fit_kwargs,
        )
        self.fit_posterior(x)

    def _phi(self, x: Tensor) -> Tensor:
        self.module.eval()
        feats = batched(cast(nn.Module, self.module.features), x).double()
        return torch.cat([feats, torch.ones(len(feats), 1, dtype=feats.dtype, device=feats.device)], 1)

    def _weights(self) -> Tensor:
        head = cast(nn.Linear, self.module.head)
        return torch.cat([head.weight, head.bias[:, None]], 1).detach().double()

    @torch.no_grad()
    def fit_posterior(self, x: Tensor) -> None:
        """Gauss-Newton Hessian of the last layer on ``x``: sum over inputs of
        (diag(p) - p p^T) kron (phi phi^T); add the prior precision (chosen by marginal
        likelihood when ``auto``) and store the Cholesky factor of the inverse."""
        phi = self._phi(x)
        w = self._weights()
        p = (phi @ w.T).softmax(1)
        c, d = p.shape[1], phi.shape[1]
        blocks = torch.block_diag(*[(phi * p[:, k : k + 1]).T @ phi for k in range(c)])
        a = (p[:, :, None] * phi[:, None, :]).reshape(len(x), c * d)
        ggn = blocks - a.T @ a
        ggn = (ggn + ggn.T) / 2
        tau = self.best_precision(ggn, w) if self.prior_precision == "auto" else float(self.prior_precision)
        h = ggn + tau * torch.eye(c * d, dtype=phi.dtype, device=phi.device)
        cov = torch.cholesky_inverse(torch.linalg.cholesky(h))
        self.module.get_buffer("laplace_scale_tril").copy_(torch.linalg.cholesky(cov).float())
        self.module.get_buffer("laplace_precision").fill_(tau)

    @staticmethod
    def best_precision(ggn: Tensor, w: Tensor, grid: Tensor | None = None) -> float:
        """The prior precision tau on ``grid`` (default 1e-3..1e4) that maximises the
        tau-dependent part of the Laplace log marginal likelihood:
        ``-tau/2 |w|^2 + P/2 log tau - 1/2 log det(GGN + tau I)``."""
        grid = grid if grid is not None else torch.logspace(-3, 4, 57, dtype=ggn.dtype)
        eig = torch.linalg.eigvalsh(ggn).clamp_min(0).cpu()
        sq = float((w**2).sum())
        lml = torch.stack(
            [-tau / 2 * sq + len(eig) / 2 * torch.log(tau) - torch.log(eig + tau).sum() / 2 for tau in grid]
        )
        return float(grid[lml.argmax()])

    def logit_moments(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (N, C) and covariance (N, C, C) of the linearised predictive logits."""
        phi = self._phi(x)
        w = self._weights()
        c, d = w.shape
        ell = self.module.get_buffer("laplace_scale_tril").double().reshape(c, d, c * d)
        jl = torch.einsum("nd,cdk->nck", phi, ell)
        return (phi @ w.T).float(), (jl @ jl.transpose(1, 2)).float()

    def member_proba(self, x: Tensor) -> Tensor:
        phi = self._phi(x)
        w = self._weights()
        ell = self.module.get_buffer("laplace_scale_tril").double()
        if self.link == "probit":
            mean, cov = self.logit_moments(x)
            var = torch.diagonal(cov, dim1=1, dim2=2)
            return (mean / torch.sqrt(1 + math.pi / 8 * var)).softmax(-1)[None]
        with self._sampling(x.device):
            z = torch.randn(self.members, ell.shape[0], dtype=ell.dtype, device=ell.device)
        ws = w[None] + (z @ ell.T).reshape(self.members, *w.shape)
        return torch.einsum("nd,scd->snc", phi, ws).float().softmax(-1)


class SingleCopy(DeepEnsemble):
    """The baseline: one stolen network (an ensemble of one, trained the same way)."""

    name = "single"

    def __init__(self, *args: Any, **kwargs: Any):
        kwargs["members"] = 1
        super().__init__(*args, **kwargs)


SURROGATES: dict[str, type[Surrogate]] = {
    "single": SingleCopy,
    "ensemble": DeepEnsemble,
    "mc_dropout": MCDropout,
    "vi": MeanFieldVI,
    "swag": SWAG,
    "laplace": LastLayerLaplace,
}


def make(method: str, arch: str, num_classes: int, in_shape: tuple[int, int, int], **kwargs: Any) -> Surrogate:
    """A fresh surrogate of ``method`` (one of ``single`` and :data:`METHODS`)."""
    if method not in SURROGATES:
        raise ValueError(f"unknown UQ method '{method}': choose one of {', '.join(SURROGATES)}")
    return SURROGATES[method](arch, num_classes, in_shape, **kwargs)


# ---------------------------------------------------------------- cached stealing runs


def stolen_surrogate(
    method: str,
    victim: nn.Module,
    s: Splits,
    arch: str,
    *,
    budget: int,
    monitor: int,
    output: str = "probs",
    members: int = 5,
    epochs: int = 10,
    seed: int = 0,
    **kwargs: Any,
) -> Surrogate:
    """A surrogate of ``method`` stolen from ``victim`` (a cached model), from the cache
    when possible.

    The attacker draws ``budget`` queries from ``s.attacker``, asks
    :class:`ipkit.methods.steal.Victim` (answering ``output``: probabilities or labels) and fits
    the surrogate on the answers; the first ``monitor`` test images are the set on
    which the members' diversity is recorded per epoch (``surrogate.trace``). Trainer
    settings (``lr``, ``batch_size``, ``optimizer``, ``augment``) in ``kwargs`` replace
    :func:`ipkit.methods.recipes.train_settings`; the rest go to the surrogate's class.
    """
    base = train_settings(s, epochs)
    settings = {**base, **{k: kwargs.pop(k) for k in list(kwargs) if k in base}}
    params = dict(
        victim=getattr(victim, "ipkit_key", None) or digest(*victim.state_dict().values()),
        split=s.fingerprint,
        method=method,
        arch=arch,
        budget=budget,
        output=output,
        members=members,
        seed=seed,
        monitor=monitor,
        fit=settings,
        kwargs=kwargs,
    )
    sur = make(
        method,
        arch,
        s.num_classes,
        s.in_shape,
        members=members,
        seed=seed,
        device=s.test.x.device,
        **settings,
        **kwargs,
    )
    queries = steal.query_set(s.attacker.x, budget, seed=seed)

    def train() -> tuple[dict[str, Tensor], dict[str, Any]]:
        oracle = steal.Victim(victim, output=output, budget=budget)
        sur.fit(queries, oracle.query(queries), monitor=s.test.x[:monitor])
        return dict(sur.module.state_dict()), {"trace": sur.trace, "queries": oracle.queries}

    params["settings"] = sur.settings()
    tensors, meta = cache.cached("uq_surrogate", params, train, like=sur.module.state_dict())
    sur.module.load_state_dict(tensors)
    sur.module.eval()
    sur.trace = meta["trace"]
    if isinstance(sur, SWAG):
        sur._queries = queries
    return sur
