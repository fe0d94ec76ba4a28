"""Black-box victims and model stealing by querying them.

:class:`Victim` is the only door an attacker has to the victim model: it answers queries
with probabilities, logits or labels, counts them against a budget, and gives no access to
the model's weights or training data (so never to a watermark set). :func:`distill`
trains a fresh copy on the answers (Tramer et al., USENIX Security 2016; Orekondy et al.,
CVPR 2019): on labels with cross-entropy, or on probabilities with the Hinton
distillation loss at a temperature.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from .train import fit, kd_loss, predict

OUTPUTS = ("probs", "logits", "labels")
METHODS = ("labels", "probs")


class BudgetExceeded(RuntimeError):
    """The attacker asked more queries than the victim's budget allows."""


class Victim:
    """A query-only view of a model: answers ``query(x)`` and counts the queries.

    ``output`` is what the victim returns: ``probs`` (softmax at ``temperature``),
    ``logits`` or ``labels``. ``budget`` caps the total number of inputs queried.
    """

    def __init__(self, model: nn.Module, output: str = "probs", budget: int | None = None,
                 temperature: float = 1.0):
        if output not in OUTPUTS:
            raise ValueError(f"unknown victim output '{output}': choose one of {', '.join(OUTPUTS)}")
        self.__model = model.eval()
        self.output = output
        self.budget = budget
        self.temperature = temperature
        self.queries = 0

    def _count(self, n: int) -> None:
        if self.budget is not None and self.queries + n > self.budget:
            raise BudgetExceeded(f"query budget of {self.budget} exceeded "
                                 f"({self.queries} used, {n} more asked)")
        self.queries += n

    @torch.no_grad()
    def query(self, x: Tensor) -> Tensor:
        """The victim's answers on ``x`` (counted against the budget)."""
        self._count(len(x))
        logits = predict(self.__model, x)
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
        raise ValueError(f"query budget {budget} exceeds the attacker pool ({len(pool)} images): "
                         "lower query_budget")
    g = torch.Generator().manual_seed(seed)
    x = pool[torch.randperm(len(pool), generator=g)[:budget].to(pool.device)]
    if noise > 0:
        eps = torch.randn(x.shape, generator=g).to(x.device)
        x = (x + noise * eps).clamp(0, 1)
    return x


def distill(victim: Victim, queries: Tensor, thief: nn.Module, method: str = "probs",
            temperature: float = 1.0, **fit_kwargs):
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
