"""Evasion attacks on a target model, with and without a surrogate (Hong et al., SaTML 2023).

- :func:`pgd`: batched L-inf projected gradient descent (Madry et al., 2018) on any device;
- :func:`transfer_success`: craft PGD examples on a surrogate, count how often they fool
  the target;
- :class:`QueryCounter`: the target as a score oracle (log-probabilities) that counts
  every query of every example and refuses queries past a cap;
- :func:`query_attack`: a score-based L-inf attack that estimates the target's gradient
  from finite differences along random directions (RGF), biased toward a surrogate's
  gradient when one is given (P-RGF, Cheng et al., NeurIPS 2019). Without a surrogate it
  is the plain RGF baseline.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.timings import timed
from .similarity import input_gradients


def margin_loss(logits: Tensor, y: Tensor) -> Tensor:
    """Per-example margin ``max_{j != y} z_j - z_y`` (positive once misclassified)."""
    true = logits.gather(1, y[:, None])[:, 0]
    other = logits.clone()
    other.scatter_(1, y[:, None], -float("inf"))
    return other.amax(1) - true


@timed("attack", "pgd")
def pgd(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    eps: float,
    steps: int = 20,
    step_size: float | None = None,
    random_start: bool = True,
    seed: int = 0,
    batch_size: int = 512,
) -> Tensor:
    """Untargeted L-inf PGD on the cross-entropy of ``model`` (Madry et al., 2018).

    Returns adversarial examples within ``eps`` of ``x`` (L-inf) and inside [0, 1].
    ``step_size`` defaults to ``2.5 * eps / steps``; the random start is seeded. Runs on
    ``x``'s device, ``batch_size`` examples at a time, with the model in eval mode.
    """
    if eps < 0 or steps < 0:
        raise ValueError("eps and steps must be non-negative")
    model.eval()
    alpha = step_size if step_size is not None else 2.5 * eps / max(steps, 1)
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for i in range(0, len(x), batch_size):
        xb, yb = x[i : i + batch_size], y[i : i + batch_size]
        adv = xb.clone()
        if random_start and eps > 0:
            adv = (xb + ((torch.rand(xb.shape, generator=g) * 2 - 1) * eps).to(xb.device)).clamp(0, 1)
        for _ in range(steps):
            grad = input_gradients(model, adv, yb)
            adv = torch.min(torch.max(adv + alpha * grad.sign(), xb - eps), xb + eps).clamp(0, 1)
        out.append(adv.detach())
    return torch.cat(out) if out else x.clone()


@torch.no_grad()
def fooled(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Boolean per example: ``model`` does not predict ``y`` on ``x``."""
    model.eval()
    return model(x).argmax(1) != y


def attack_set(target: nn.Module, x: Tensor, y: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The first ``n`` examples of (x, y) that ``target`` classifies correctly (attacks start
    from correctly classified inputs)."""
    keep = ~fooled(target, x, y)
    return x[keep][:n], y[keep][:n]


def transfer_success(
    surrogate: nn.Module, target: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int = 20, seed: int = 0
) -> float:
    """Share of PGD examples crafted on ``surrogate`` that ``target`` misclassifies.

    (x, y) should be inputs the target classifies correctly (see :func:`attack_set`).
    """
    adv = pgd(surrogate, x, y, eps, steps, seed=seed)
    return float(fooled(target, adv, y).float().mean())


class QueryCounter:
    """The target as a black-box score oracle: log-probabilities, every query counted.

    ``counts[i]`` is the number of queries spent on example ``i``; a batch that would take
    any example past ``cap`` raises ``RuntimeError`` (the attack checks before asking).
    """

    def __init__(self, model: nn.Module, n: int, cap: int):
        self.model = model.eval()
        self.cap = int(cap)
        self.counts = torch.zeros(n, dtype=torch.long)

    @property
    def total(self) -> int:
        """Queries sent so far, over all examples."""
        return int(self.counts.sum())

    def left(self, idx: Tensor) -> Tensor:
        """Queries each example in ``idx`` may still send."""
        return self.cap - self.counts[idx.cpu()]

    @torch.no_grad()
    def __call__(self, x: Tensor, idx: Tensor) -> Tensor:
        """Log-probabilities of the target on ``x``; row ``r`` is a query for example ``idx[r]``."""
        idx = idx.cpu()
        add = torch.bincount(idx, minlength=len(self.counts))
        if bool((self.counts + add > self.cap).any()):
            raise RuntimeError(f"query cap {self.cap} exceeded")
        self.counts += add
        return self.model(x).float().log_softmax(1)


@dataclass
class QueryResult:
    """Per example: ``queries`` spent, ``success`` (fooled within the cap), and the final
    ``x_adv``. For a failed example ``queries`` is a lower bound (censored at the cap)."""

    queries: np.ndarray
    success: np.ndarray
    x_adv: Tensor
    cap: int


def prgf_lambda(alpha: Tensor, d: int, q: int) -> Tensor:
    """Cheng et al.'s optimal weight of the prior direction (P-RGF, Theorem 1 / Eq. 12):
    0 when the prior is no better than chance (alpha^2 <= 1 / (d + 2q - 2)), 1 when it is
    very good (alpha^2 >= (2q - 1) / (d + 2q - 2)), in between otherwise."""
    a2 = alpha.double() ** 2
    m = d + 2 * q - 2
    num = (1 - a2) * (a2 * m - 1)
    den = 2 * a2 * d * q - a2**2 * d * m - 1
    lam = torch.where(den.abs() > 1e-12, num / den, torch.ones_like(a2)).clamp(0, 1)
    lam = torch.where(a2 <= 1.0 / m, torch.zeros_like(a2), lam)
    lam = torch.where(a2 >= (2 * q - 1) / m, torch.ones_like(a2), lam)
    return lam.float()


@timed("attack", "query attack")
def query_attack(
    counter: QueryCounter,
    x: Tensor,
    y: Tensor,
    eps: float,
    *,
    prior: nn.Module | None = None,
    samples: int = 10,
    sigma: float = 1e-3,
    step_size: float | None = None,
    seed: int = 0,
) -> QueryResult:
    """Score-based L-inf attack on the target behind ``counter``, started at ``x``.

    Each iteration queries the current point (success check), then ``samples`` random
    directions orthogonal to the prior and, with a ``prior`` surrogate, the prior
    direction itself (the surrogate's normalised gradient of the margin loss at the current
    point). The target's margin-loss gradient is estimated from the finite differences
    (step ``sigma``) as in P-RGF (Cheng et al., 2019): the prior's weight ``lambda`` comes
    from the estimated cosine between prior and true gradient (:func:`prgf_lambda`).
    Reconstructed: the mixed directions' differences are combined linearly from the ones
    already queried instead of being queried again. Without a prior the estimate is plain
    RGF. The step is signed (``step_size``, default ``eps / 10``) and projected onto the
    ``eps`` ball and [0, 1]. An example stops when fooled or when its next iteration would
    pass the cap.
    """
    n = len(x)
    d = x[0].numel()
    q = samples
    per_iter = 1 + q + (1 if prior is not None else 0)
    eta = step_size if step_size is not None else eps / 10
    g = torch.Generator(device="cpu").manual_seed(seed)
    adv = x.clone()
    success = np.zeros(n, dtype=bool)
    active = torch.arange(n)
    if prior is not None:
        prior.eval()
    while True:
        active = active[counter.left(active) >= 1]
        if not len(active):
            break
        sel = active.to(x.device)
        base = margin_loss(counter(adv[sel], active), y[sel])
        won = (base > 0).cpu()
        success[active[won].numpy()] = True
        keep = ~won & (counter.left(active) >= per_iter - 1)
        active, base = active[keep], base[keep.to(x.device)]
        if not len(active):
            break
        sel = active.to(x.device)
        xa, ya, x0 = adv[sel], y[sel], x[sel]
        b = len(active)
        xi = torch.randn((b, q, d), generator=g).to(x.device)
        if prior is not None:
            xv = xa.detach().requires_grad_(True)
            (gv,) = torch.autograd.grad(margin_loss(prior(xv).float(), ya).sum(), xv)
            v = F.normalize(gv.flatten(1), dim=1, eps=1e-12)
            xi = xi - (xi @ v[:, :, None]) * v[:, None, :]
            dirs = torch.cat([v[:, None, :], F.normalize(xi, dim=2, eps=1e-12)], 1)
        else:
            dirs = F.normalize(xi, dim=2, eps=1e-12)
        probes = (xa.flatten(1)[:, None, :] + sigma * dirs).reshape(-1, *x.shape[1:])
        rows = active.repeat_interleave(dirs.shape[1])
        diffs = (
            margin_loss(counter(probes, rows), ya.repeat_interleave(dirs.shape[1])).reshape(b, -1) - base[:, None]
        ) / sigma
        if prior is not None:
            dv, dr, u = diffs[:, 0], diffs[:, 1:], dirs[:, 1:]
            norm2 = dv**2 + (d - 1) / q * (dr**2).sum(1)
            alpha = dv / norm2.clamp_min(1e-20).sqrt()
            lam = prgf_lambda(alpha, d, q)
            mix = lam.sqrt()[:, None, None] * v[:, None, :] + (1 - lam).sqrt()[:, None, None] * u
            coef = lam.sqrt()[:, None] * dv[:, None] + (1 - lam).sqrt()[:, None] * dr
            grad = (coef[:, :, None] * mix).sum(1)
        else:
            grad = (diffs[:, :, None] * dirs).sum(1)
        step = eta * grad.sign().reshape(xa.shape)
        new = torch.min(torch.max(xa + step, x0 - eps), x0 + eps).clamp(0, 1)
        adv[sel] = new.detach()
    return QueryResult(counter.counts.numpy().copy(), success, adv, counter.cap)
