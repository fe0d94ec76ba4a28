"""Black-box victims and model stealing by querying them.

:class:`Victim` is the only door an attacker has to the victim model: it answers queries
with probabilities, logits or labels, counts them against a budget, and gives no access to
the model's weights or training data (so never to a watermark set). :func:`distill`
trains a fresh copy on the answers (Tramer et al., USENIX Security 2016; Orekondy et al.,
CVPR 2019): on labels with cross-entropy, or on probabilities with the Hinton
distillation loss at a temperature. :class:`GradientVictim` also answers projected
input-logit gradients at the attacker's queries, and :func:`jacobian_distill` steals with
them (Jacobian matching, Srinivas & Fleuret, ICML 2018), as in Venigalla (2019); the
query set can be perturbed (:func:`perturb`) or drawn out of distribution
(:func:`ood_pool`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..core.seeds import seed_for
from .data import load
from .train import fit, kd_loss, predict
from .watermark import fit_shape, memorized_set

OUTPUTS = ("probs", "logits", "labels")
METHODS = ("labels", "probs")


class BudgetExceeded(RuntimeError):
    """The attacker asked more queries than the victim's budget allows."""


class Victim:
    """A query-only view of a model: answers ``query(x)`` and counts the queries.

    ``output`` is what the victim returns: ``probs`` (softmax at ``temperature``),
    ``logits`` or ``labels``. ``budget`` caps the total number of inputs queried.
    """

    def __init__(self, model: nn.Module, output: str = "probs", budget: int | None = None, temperature: float = 1.0):
        if output not in OUTPUTS:
            raise ValueError(f"unknown victim output '{output}': choose one of {', '.join(OUTPUTS)}")
        self._model = model.eval()  # the attacker never reads it
        self.output = output
        self.budget = budget
        self.temperature = temperature
        self.queries = 0

    def _count(self, n: int) -> None:
        if self.budget is not None and self.queries + n > self.budget:
            raise BudgetExceeded(f"query budget of {self.budget} exceeded ({self.queries} used, {n} more asked)")
        self.queries += n

    @torch.no_grad()
    def query(self, x: Tensor) -> Tensor:
        """The victim's answers on ``x`` (counted against the budget)."""
        self._count(len(x))
        logits = predict(self._model, x)
        if self.output == "logits":
            return logits
        if self.output == "labels":
            return logits.argmax(1)
        return (logits / self.temperature).softmax(1)

    def __repr__(self) -> str:
        return f"Victim(output={self.output!r}, queries={self.queries}, budget={self.budget})"


def query_set(pool: Tensor, budget: int, seed: int = 0, noise: float = 0.0) -> Tensor:
    """The attacker's queries: ``budget`` images drawn from its own ``pool`` without
    replacement, optionally with Gaussian noise of std ``noise`` (clamped to [0, 1])."""
    if budget > len(pool):
        raise ValueError(f"query budget {budget} exceeds the attacker pool ({len(pool)} images): lower query_budget")
    g = torch.Generator().manual_seed(seed)
    x = pool[torch.randperm(len(pool), generator=g)[:budget].to(pool.device)]
    if noise > 0:
        eps = torch.randn(x.shape, generator=g).to(x.device)
        x = (x + noise * eps).clamp(0, 1)
    return x


def distill(
    victim: Victim, queries: Tensor, thief: nn.Module, method: str = "probs", temperature: float = 1.0, **fit_kwargs
):
    """Train ``thief`` in place on the victim's answers to ``queries``; return its History.

    ``labels``: cross-entropy on the victim's top-1 labels. ``probs``: distillation loss at
    ``temperature`` against the victim's probabilities at that temperature (a victim that
    returns logits is softened here; one that returns labels is one-hot).
    """
    if method not in METHODS:
        raise ValueError(f"unknown stealing method '{method}': choose one of {', '.join(METHODS)}")
    answers = victim.query(queries)
    if method == "labels" or victim.output == "labels":
        labels = answers if victim.output == "labels" else answers.argmax(1)
        return fit(thief, queries, labels, **fit_kwargs)
    if victim.output == "logits":
        targets = (answers / temperature).softmax(1)
    elif victim.temperature != temperature:
        targets = (answers.clamp_min(1e-12).log() * victim.temperature / temperature).softmax(1)
    else:
        targets = answers

    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        return kd_loss(model(xb), yb, temperature)

    return fit(thief, queries, targets, loss=loss, **fit_kwargs)


# --- Stealing with input gradients (Venigalla, 2019; Srinivas & Fleuret, ICML 2018) ---

PROJECTIONS = ("random", "topk")
PERTURBATIONS = ("none", "noise", "shift")


class GradientVictim(Victim):
    """A black-box victim that also answers input-logit gradients for the queries.

    Besides :meth:`Victim.query`, :meth:`query_gradients` returns, for each query ``x_i``
    and each of ``k`` directions ``v_ij`` the attacker chooses in logit space, the
    gradient of ``<v_ij, logits(x_i)>`` with respect to ``x_i`` (a projection of the
    victim's input-logit Jacobian). Gradients are only ever computed at the attacker's own
    queries, so the answers carry no training or watermark example, and every input is
    counted against the budget.
    """

    def query_gradients(
        self, x: Tensor, k: int = 2, projection: str = "random", seed: int = 0
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Logits on ``x`` (n, classes), the ``k`` logit-space directions per input
        (n, k, classes; see :func:`projections`) and the projected input Jacobians along
        them (``n, k, *x.shape[1:]``); counted against the budget like a query."""
        self._count(len(x))
        model = self._model.eval()
        logits, dirs, grads = [], [], []
        for i in range(0, len(x), 256):
            xb = x[i : i + 256]
            d = projections(predict(model, xb), k, projection, seed + i)
            out, g = projected_jacobians(model, xb, d)
            logits.append(out.detach())
            dirs.append(d)
            grads.append(g.detach())
        return torch.cat(logits), torch.cat(dirs), torch.cat(grads)


def projections(logits: Tensor, k: int, kind: str = "random", seed: int = 0) -> Tensor:
    """Directions (n, k, classes) in logit space at which to read the Jacobian.

    ``random``: k Gaussian directions per input, each of unit norm (a random projection of
    the logits, which makes Jacobian matching affordable: one backward pass per direction
    instead of one per class). ``topk``: the one-hot directions of the k largest logits.
    """
    if kind not in PROJECTIONS:
        raise ValueError(f"unknown projection '{kind}': choose one of {', '.join(PROJECTIONS)}")
    n, c = logits.shape
    if not 1 <= k <= c:
        raise ValueError(f"number of projections must lie in [1, {c}], got {k}")
    if kind == "topk":
        return torch.nn.functional.one_hot(logits.topk(k, dim=1).indices, c).to(logits.dtype)
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(n, k, c, generator=g).to(logits.device, logits.dtype)
    return v / v.norm(dim=2, keepdim=True)


def projected_jacobians(
    model: nn.Module, x: Tensor, directions: Tensor, create_graph: bool = False
) -> tuple[Tensor, Tensor]:
    """Logits of ``model`` on ``x`` and, per direction ``v`` in ``directions`` (n, k,
    classes), the input gradient of ``<v, logits(x)>`` (``n, k, *x.shape[1:]``).

    With ``create_graph=True`` the gradients stay differentiable with respect to the
    model's parameters (double back-prop, as Jacobian matching needs).
    """
    with torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        logits = model(xg).float()
        grads = [
            torch.autograd.grad((logits * directions[:, j]).sum(), xg, create_graph=create_graph, retain_graph=True)[0]
            for j in range(directions.shape[1])
        ]
    return logits, torch.stack(grads, 1)


def _unit(g: Tensor) -> Tensor:
    flat = g.flatten(2)
    return flat / flat.norm(dim=2, keepdim=True).clamp_min(1e-12)


def jacobian_match(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean over inputs and directions of ``|| J_s/||J_s|| - J_t/||J_t|| ||^2`` for
    projected input gradients of shape (n, k, ...) (Srinivas & Fleuret, 2018)."""
    return ((_unit(student) - _unit(teacher)) ** 2).sum(2).mean()


def jacobian_loss(model: nn.Module, x: Tensor, directions: Tensor, target: Tensor) -> Tensor:
    """Jacobian-matching loss of Srinivas & Fleuret (2018): :func:`jacobian_match` between
    ``model``'s projected input gradients (by double back-prop, differentiable in the
    parameters) and the teacher's ``target``. Zero when the model is the teacher."""
    _, g = projected_jacobians(model, x, directions, create_graph=True)
    return jacobian_match(g, target)


def jacobian_distill(
    victim: GradientVictim,
    queries: Tensor,
    thief: nn.Module,
    *,
    alpha: float = 1.0,
    temperature: float = 1.0,
    k: int = 2,
    projection: str = "random",
    seed: int = 0,
    **fit_kwargs,
):
    """Steal with outputs and input gradients: KD at ``temperature`` on the victim's logits
    plus ``alpha`` times :func:`jacobian_loss` (Srinivas & Fleuret, 2018; the attack under
    which Venigalla, 2019, finds memorized examples transfer).

    The victim is asked once per query for its logits and ``k`` projected Jacobians
    (:func:`projections`). At every batch the thief draws a fresh random combination of
    each input's ``k`` directions and matches the victim's gradient along it (the victim's
    answer is the same combination of its ``k`` gradients, by linearity), so each batch
    sees a new random projection of the logits. Augmentation is off: gradients belong to
    the exact queried inputs. Returns the training History.
    """
    if alpha < 0:
        raise ValueError("alpha must be >= 0")
    logits, directions, grads = victim.query_gradients(queries, k, projection, seed)
    targets = (logits / temperature).softmax(1)
    grads = grads.flatten(2)
    g = torch.Generator(device=queries.device).manual_seed(seed)

    def loss(model: nn.Module, xb: Tensor, idx: Tensor) -> Tensor:
        if alpha == 0:
            return kd_loss(model(xb), targets[idx], temperature)
        mix = torch.randn(len(idx), k, 1, device=xb.device, generator=g)
        out, grad = projected_jacobians(model, xb, (mix * directions[idx]).sum(1, keepdim=True), create_graph=True)
        return kd_loss(out, targets[idx], temperature) + alpha * jacobian_match(
            grad, (mix * grads[idx]).sum(1, keepdim=True)
        )

    index = torch.arange(len(queries), device=queries.device)
    return fit(thief, queries, index, loss=loss, **{**fit_kwargs, "augment": False})


def perturb(x: Tensor, kind: str = "none", strength: float = 0.0, seed: int = 0) -> Tensor:
    """The attacker's query set perturbed: ``noise`` adds Gaussian noise of std
    ``strength``; ``shift`` translates each image by up to ``strength`` x a quarter of its
    side in each axis (zero fill), a standard augmentation; ``none`` (or strength 0)
    returns ``x``. Results are clamped to [0, 1] and seeded."""
    if kind not in PERTURBATIONS:
        raise ValueError(
            f"unknown perturbation '{kind}': choose {', '.join(PERTURBATIONS)} "
            "(an out-of-distribution pool comes from ood_pool)"
        )
    if kind == "none" or strength <= 0:
        return x
    g = torch.Generator().manual_seed(seed)
    if kind == "noise":
        return (x + strength * torch.randn(x.shape, generator=g).to(x.device)).clamp(0, 1)
    n, _, h, w = x.shape
    pad = max(1, round(strength * min(h, w) / 4))
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=g).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def ood_pool(
    source: str,
    count: int,
    shape: tuple[int, int, int],
    seed: int = 0,
    part: str = "queries",
    device: torch.device | str | None = None,
) -> Tensor:
    """``count`` out-of-distribution images for ``shape`` (C, H, W) inputs, from dataset
    ``source`` (resized and converted to the channel count) or procedural ``abstract``
    images. ``part="queries"`` (an attacker's pool) and ``part="carriers"`` (an owner's
    ``ood`` memorized set) never share an image: queries come from the official test
    part (else the second half of the training part), carriers from the training part
    (else its first half). Seeded."""
    if part not in ("queries", "carriers"):
        raise ValueError(f"unknown pool part '{part}': choose queries or carriers")
    if source == "abstract":
        x = memorized_set("abstract", count, shape, 2, seed=seed_for("queries", seed) if part == "queries" else seed).x
    else:
        ds = load(source)
        images = ds.train.x
        if ds.test is None:
            half = len(images) // 2
            images = images[half:] if part == "queries" else images[:half]
        elif part == "queries":
            images = ds.test.x
        if len(images) < count:
            raise ValueError(
                f"out-of-distribution pool '{source}' holds {len(images)} images, "
                f"fewer than the {count} asked: lower query_budget or wm_count"
            )
        idx = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))[:count]
        x = fit_shape(images[idx.to(images.device)].float().cpu(), shape)
    return x.to(device if device is not None else x.device)
