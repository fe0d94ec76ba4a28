"""Cached recipes for the models every study needs.

Each recipe trains through :func:`ipkit.methods.cache.cached_model`, so rerunning a notebook (or
moving a widget back to a value seen before) loads weights instead of training. A cache
key covers the recipe, its parameters and the split's fingerprint; a model built from
another cached model includes that model's key.

- :func:`owner_model`: the owner's model on its split, optionally with a watermark set
  memorized;
- :func:`independent_model`: a model of the same task that never saw the owner's model or
  watermark (trained on the attacker pool's true labels): the floor for watermark tests;
- :func:`stolen_model`: a copy trained on a black-box victim's answers to the attacker's
  queries (see :mod:`ipkit.methods.steal`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from torch import Tensor, nn

from ..core.seeds import seed_for
from . import cache, models, steal
from .data import Splits
from .train import default_device, evaluate, fit
from .watermark import WatermarkSet, embed


def digest(*tensors: Tensor) -> str:
    """A short SHA-256 of tensors' values (to key cached models built from them)."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def train_settings(s: Splits, epochs: int, **overrides: Any) -> dict[str, Any]:
    """Trainer settings for a split: SGD one-cycle, flip/crop augmentation on RGB data."""
    settings = dict(epochs=epochs, batch_size=128, lr=0.05, optimizer="sgd", augment=s.in_shape[0] == 3)
    settings.update(overrides)
    return settings


def fresh_model(s: Splits, arch: str, seed: int, dropout: float = 0.0) -> nn.Module:
    """An untrained ``arch`` for split ``s`` (its classes and input shape), initialised from
    ``seed``, on the default device: what every cached recipe starts from."""
    return models.build(arch, s.num_classes, s.in_shape, dropout=dropout, seed=seed).to(default_device())


def owner_model(
    s: Splits,
    arch: str,
    *,
    epochs: int,
    seed: int = 0,
    wm: WatermarkSet | None = None,
    wm_per_batch: int = 16,
    dropout: float = 0.0,
    **fit_kwargs: Any,
) -> nn.Module:
    """The owner's model trained on ``s.owner`` (with ``wm`` memorized when given)."""
    settings = train_settings(s, epochs, **fit_kwargs)
    params = dict(
        split=s.fingerprint,
        arch=arch,
        seed=seed,
        dropout=dropout,
        fit=settings,
        wm=digest(wm.x, wm.y) if wm is not None else None,
        wm_per_batch=wm_per_batch,
    )

    def train(model: nn.Module) -> dict:
        if wm is None:
            fit(model, s.owner.x, s.owner.y, seed=seed, desc=f"owner {arch}", **settings)
        else:
            embed(
                model,
                s.owner.x,
                s.owner.y,
                wm,
                per_batch=wm_per_batch,
                seed=seed,
                desc=f"owner {arch} + watermark",
                **settings,
            )
        return {"test_acc": evaluate(model, s.test.x, s.test.y)}

    return cache.cached_model("owner", params, lambda: fresh_model(s, arch, seed, dropout), train)


def independent_model(s: Splits, arch: str, *, epochs: int, seed: int = 0, **fit_kwargs: Any) -> nn.Module:
    """A same-task model trained on the attacker pool's true labels, never on the owner's
    model or watermark."""
    settings = train_settings(s, epochs, **fit_kwargs)
    params = dict(split=s.fingerprint, arch=arch, seed=seed, fit=settings)

    def train(model: nn.Module) -> dict:
        fit(model, s.attacker.x, s.attacker.y, seed=seed, desc=f"independent {arch}", **settings)
        return {"test_acc": evaluate(model, s.test.x, s.test.y)}

    return cache.cached_model("independent", params, lambda: fresh_model(s, arch, seed_for("independent", seed)), train)


def stolen_model(
    victim: nn.Module,
    s: Splits,
    arch: str,
    *,
    budget: int,
    method: str = "probs",
    output: str = "probs",
    temperature: float = 1.0,
    noise: float = 0.0,
    epochs: int = 10,
    seed: int = 0,
    **fit_kwargs: Any,
) -> nn.Module:
    """A copy of ``victim`` (a cached model) stolen through :class:`ipkit.methods.steal.Victim`.

    The attacker draws ``budget`` queries from ``s.attacker`` (with Gaussian ``noise``),
    asks the victim (answering ``output``) and trains a fresh ``arch`` with ``method``.
    """
    settings = train_settings(s, epochs, **fit_kwargs)
    params = dict(
        victim=getattr(victim, "ipkit_key", None) or digest(*victim.state_dict().values()),
        split=s.fingerprint,
        arch=arch,
        budget=budget,
        method=method,
        output=output,
        temperature=temperature,
        noise=noise,
        seed=seed,
        fit=settings,
    )

    def train(model: nn.Module) -> dict:
        oracle = steal.Victim(victim, output=output, budget=budget, temperature=temperature)
        queries = steal.query_set(s.attacker.x, budget, seed=seed, noise=noise)
        steal.distill(
            oracle,
            queries,
            model,
            method=method,
            temperature=temperature,
            seed=seed,
            desc=f"steal {method} -> {arch}",
            **settings,
        )
        return {"test_acc": evaluate(model, s.test.x, s.test.y), "queries": oracle.queries}

    return cache.cached_model("stolen", params, lambda: fresh_model(s, arch, seed_for("thief", seed)), train)
