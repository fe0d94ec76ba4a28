"""The ingrain watermark: a watermark carried on the main task's paths (Yang, Dang & Chang, 2019).

Yang et al. ("Effectiveness of Distillation Attack and Countermeasure on Neural Network
Watermarking", arXiv 1906.06046, https://arxiv.org/abs/1906.06046) propose to *ingrain* a
watermark: a separate ingrainer model carries it, and the main model is regularised to also
represent the ingrainer's knowledge on ordinary inputs, so that distilling the main model
on ordinary data carries the watermark along. Only the abstract is public; this form is
reconstructed:

- the ingrainer ``g`` (:func:`ingrainer`) is a model of the same architecture trained on the
  watermark carriers mixed into every batch of a small slice of the owner's ordinary data
  (``ordinary`` images, which keep ``g`` a sensible classifier while the carriers dominate
  what it learns);
- the main model ``f`` (:func:`ingrain_model`) is trained on the owner's data with the
  carriers mixed into every batch and the loss of :func:`ingrain_loss`,
  ``CE(f(x), y) + lambda * T^2 * KL(softmax(g(x)/T) || softmax(f(x)/T))``, where the KL term
  runs over the ordinary inputs of each batch only. (Until 2026-12-07 the sum was divided
  by ``1 + lambda``, a choice of this reconstruction, not the paper's, which shrank the
  clean signal at large ``lambda``; the study brief's form has no such factor.)

Both models come from :mod:`ipkit.methods.cache`. The study that tests the defence against
distillation is :mod:`ipkit.studies.distillation_ingrain`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.seeds import seed_for
from . import cache, recipes
from . import watermark as wmk
from .data import Splits
from .train import evaluate, fit, kd_loss
from .watermark import WatermarkSet


def ingrainer(s: Splits, arch: str, wm: WatermarkSet, *, epochs: int, ordinary: int = 500, seed: int = 0) -> nn.Module:
    """The ingrainer ``g``: ``arch`` trained on the first ``ordinary`` owner images with the
    carriers ``wm`` mixed into every batch (reconstructed; see the module docstring)."""
    settings = recipes.train_settings(s, epochs)
    n = min(ordinary, len(s.owner))
    params = dict(split=s.fingerprint, arch=arch, seed=seed, fit=settings, ordinary=n, wm=recipes.digest(wm.x, wm.y))

    def train(model: nn.Module) -> dict:
        wmk.embed(model, s.owner.x[:n], s.owner.y[:n], wm, seed=seed, desc="ingrainer", **settings)
        return {"test_acc": evaluate(model, s.test.x, s.test.y), "wm_acc": wmk.accuracy(model, wm)}

    return cache.cached_model(
        "ingrainer", params, lambda: recipes.fresh_model(s, arch, seed_for("ingrainer", seed)), train
    )


def ingrain_loss(teacher: nn.Module, lam: float, temperature: float, n_carriers: int):
    """The reconstructed ingrain loss for :func:`ipkit.methods.train.fit` with ``n_carriers`` carriers
    appended to each batch: ``CE + lam * T^2 * KL(g || f)`` on the ordinary rows."""

    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        logits = model(xb)
        ce = F.cross_entropy(logits, yb)
        ordinary = slice(0, len(xb) - n_carriers)
        with torch.no_grad():
            target = (teacher(xb[ordinary]).float() / temperature).softmax(1)
        return ce + lam * kd_loss(logits[ordinary], target, temperature)

    return loss


def ingrain_model(
    s: Splits,
    arch: str,
    wm: WatermarkSet,
    *,
    lam: float,
    temperature: float,
    epochs: int,
    ordinary: int = 500,
    per_batch: int = 16,
    seed: int = 0,
) -> nn.Module:
    """The owner's model watermarked with ingrain (Yang et al., reconstructed form): trained on
    ``s.owner`` with the carriers mixed into every batch (``per_batch`` each) and the loss of
    :func:`ingrain_loss` against the :func:`ingrainer` at weight ``lam`` and temperature
    ``temperature``."""
    if lam < 0 or temperature <= 0:
        raise ValueError(f"ingrain needs lambda >= 0 and temperature > 0, got {lam} and {temperature}")
    g = ingrainer(s, arch, wm, epochs=epochs, ordinary=ordinary, seed=seed)
    settings = recipes.train_settings(s, epochs)
    params = dict(
        split=s.fingerprint,
        arch=arch,
        seed=seed,
        fit=settings,
        lam=lam,
        temperature=temperature,
        per_batch=per_batch,
        ingrainer=g.ipkit_key,
        loss="ce + lam * kd",
    )

    def train(model: nn.Module) -> dict:
        fit(
            model,
            s.owner.x,
            s.owner.y,
            loss=ingrain_loss(g.eval(), lam, temperature, per_batch),
            extra=(wm.x.to(s.owner.x.device), wm.y.to(s.owner.x.device)),
            extra_per_batch=per_batch,
            seed=seed,
            desc=f"ingrain lambda={lam:g}",
            **settings,
        )
        return {"test_acc": evaluate(model, s.test.x, s.test.y), "wm_acc": wmk.accuracy(model, wm)}

    return cache.cached_model("ingrain", params, lambda: recipes.fresh_model(s, arch, seed_for("owner", seed)), train)
