"""Model reuse: the ways one model is made from another, as a registry.

The reuse types are ModelDiff's (Li et al., ISSTA 2021, https://arxiv.org/abs/2106.08890,
Sec. 5.1), named as their benchmark names them: ``<kind>-<level>`` or a bare ``<kind>``.

- ``transfer-<percent>``: the last ``percent`` of layers fine-tuned on another task with a
  fresh head (:func:`ipkit.methods.transforms.transfer`);
- ``prune-<percent>``: ``percent`` of the weights pruned by magnitude, then fine-tuned on the
  parent's data (:func:`ipkit.methods.transforms.prune_finetune`);
- ``quant-int8``, ``quant-fp16``: the weights quantized, no training;
- ``distill``: a fresh student trained on the parent's soft labels over its data;
- ``steal-same``, ``steal-other``: a thief (of the parent's architecture, or another) trained
  on the parent's answers to queries drawn from a pool, within a budget.

:func:`parse` reads a name (and rejects one not registered), :func:`names` lists them all in
order, :func:`quantized` makes a quantized copy, and :func:`train_into` trains a fresh model
the caller built (so the caller owns its architecture, initial seed and cache key) into the
derived one. :func:`register` adds a kind.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from ..core.seeds import seed_for
from . import steal, transforms


@dataclass(frozen=True)
class Reuse:
    """One reuse type: its ``kind`` and ``level`` (``transfer-50``: kind ``transfer``,
    level ``50``; ``distill``: level ``""``)."""

    kind: str
    level: str = ""

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.level}" if self.level else self.kind

    @property
    def fraction(self) -> float:
        """The level as a fraction (``transfer-50``, ``prune-50``: 0.5)."""
        return int(self.level) / 100


@dataclass(frozen=True)
class Inputs:
    """What a derivation trains on besides the parent: data ``x`` (and labels ``y`` for
    transfer and pruning), the head width a transfer goes to, the seed, the trainer settings
    (:func:`ipkit.methods.train.fit` keywords), the distillation temperature, and a thief's
    query ``pool`` and ``budget``."""

    x: Tensor
    y: Tensor | None = None
    classes: int = 0
    seed: int = 0
    fit: dict[str, Any] = field(default_factory=dict)
    temperature: float = 4.0
    pool: Tensor | None = None
    budget: int = 0
    desc: str = ""


Trainer = Callable[[nn.Module, Reuse, nn.Module, Inputs], None]


@dataclass(frozen=True)
class Kind:
    """A registered kind: its levels (``("",)`` when it has none) and how it trains a fresh
    model into the derived one (``None``: a quantization, no training)."""

    levels: tuple[str, ...]
    trainer: Trainer | None


KINDS: dict[str, Kind] = {}


def register(kind: str, levels: tuple[str, ...], trainer: Trainer | None) -> None:
    """Add ``kind`` with its ``levels`` (``("",)`` for none) and its trainer."""
    KINDS[kind] = Kind(levels, trainer)


def names() -> tuple[str, ...]:
    """Every registered reuse type, kind by kind in registration order."""
    return tuple(Reuse(k, level).name for k, kind in KINDS.items() for level in kind.levels)


def parse(name: str) -> Reuse:
    """The reuse type called ``name``; a ValueError naming the choices if none is."""
    kind, _, level = name.partition("-")
    if kind not in KINDS or level not in KINDS[kind].levels:
        raise ValueError(f"unknown reuse type '{name}': choose from {', '.join(names())}")
    return Reuse(kind, level)


def trains(r: Reuse) -> bool:
    """Whether ``r`` trains a model (every kind but a quantization)."""
    return KINDS[r.kind].trainer is not None


def quantized(parent: nn.Module, r: Reuse) -> nn.Module:
    """The ``quant-int8`` or ``quant-fp16`` copy of ``parent``; ``float_parent`` points at
    ``parent`` (a reference, not a submodule: ModelDiff probes a quantized model's float parent)."""
    if r.kind != "quant":
        raise ValueError(f"{r.name} is not a quantization")
    q = transforms.quantize_int8(parent) if r.level == "int8" else transforms.quantize_float16(parent)
    object.__setattr__(q, "float_parent", parent)
    return q


def train_into(parent: nn.Module, r: Reuse, into: nn.Module, inputs: Inputs) -> None:
    """Train ``into`` (a fresh model) in place into ``parent``'s ``r`` derivative."""
    trainer = KINDS[r.kind].trainer
    if trainer is None:
        raise ValueError(f"{r.name} trains nothing: use quantized()")
    trainer(parent, r, into, inputs)


def _transfer(parent: nn.Module, r: Reuse, into: nn.Module, inputs: Inputs) -> None:
    assert inputs.y is not None, "a transfer trains on labels"
    child = transforms.transfer(parent, inputs.x, inputs.y, inputs.classes, r.fraction, seed=inputs.seed, **inputs.fit)
    into.load_state_dict(child.state_dict())


def _prune(parent: nn.Module, r: Reuse, into: nn.Module, inputs: Inputs) -> None:
    rest = {n: v for n, v in inputs.fit.items() if n not in ("epochs", "lr")}
    epochs, lr = inputs.fit["epochs"], inputs.fit["lr"]
    child = transforms.prune_finetune(
        parent, r.fraction, inputs.x, inputs.y, epochs=epochs, lr=lr, seed=inputs.seed, **rest
    )
    into.load_state_dict(child.state_dict())


def _distill(parent: nn.Module, r: Reuse, into: nn.Module, inputs: Inputs) -> None:
    transforms.knowledge_distill(parent, inputs.x, into, temperature=inputs.temperature, seed=inputs.seed, **inputs.fit)


def _steal(parent: nn.Module, r: Reuse, into: nn.Module, inputs: Inputs) -> None:
    assert inputs.pool is not None, "a thief draws its queries from a pool"
    queries = steal.query_set(inputs.pool, inputs.budget, seed=seed_for("queries", inputs.seed))
    victim = steal.Victim(parent, output="probs", budget=inputs.budget)
    steal.distill(victim, queries, into, method="probs", seed=inputs.seed, desc=inputs.desc, **inputs.fit)


register("transfer", ("10", "50", "100"), _transfer)
register("prune", ("20", "50", "80"), _prune)
register("quant", ("int8", "fp16"), None)
register("distill", ("",), _distill)
register("steal", ("same", "other"), _steal)
