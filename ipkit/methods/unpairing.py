"""Similarity-unpairing: fine-tune an on-device sibling away from its full model.

Hong, Carlini & Kurakin (SaTML 2023) defend published siblings by fine-tuning them with an
objective that lowers their similarity to the full model; only the abstract is public, so
the loss here is reconstructed:

    CE(sibling(x), y) + lambda * mean_x pen(cos(grad_x L_sibling(x, y), grad_x L_full(x, y)))

The cross-entropy keeps the sibling's accuracy; the second term (gradient alignment, as in
TRS, Yang et al., NeurIPS 2021) pushes its input gradients away from the full model's, so
its adversarial examples and its gradients stop pointing where the full model's do. The
penalty ``pen`` (:data:`PENALTIES`) pushes the alignment toward zero: ``abs`` (``|cos|``, the
default of the study) or ``square`` (cos^2). ``signed`` (cos itself) is a control only: it
rewards gradients pointing the opposite way, which help an attacker as much (P-RGF weighs
its prior by the squared cosine, and a flipped PGD direction is trivial to use). The
sibling keeps its compression while it is fine-tuned: quantized layers train through their
straight-through estimator, pruned weights stay zero (:func:`ipkit.methods.transforms.finetune`).
The experiments of the study that uses it are :mod:`ipkit.studies.ondevice_unpairing`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cache, transforms
from .compression import bits_of, skeleton
from .data import Splits
from .similarity import input_gradients

#: The alignment penalties: ``|cos|`` and ``cos^2`` push it toward zero; the signed cosine (toward -1)
#: is the control.
PENALTIES = ("abs", "square", "signed")


def alignment_penalty(cos: Tensor, penalty: str) -> Tensor:
    """Per-example penalty on a gradient cosine: ``abs`` ``|cos|``, ``square`` ``cos^2``, ``signed`` ``cos``."""
    if penalty == "abs":
        return cos.abs()
    if penalty == "square":
        return cos**2
    if penalty == "signed":
        return cos
    raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")


def unpairing_loss(
    sibling: nn.Module, full: nn.Module, x: Tensor, y: Tensor, lam: float, penalty: str = "signed"
) -> Tensor:
    """CE(sibling(x), y) + lam * mean pen(cos(grad_x L_sibling, grad_x L_full)) (reconstructed;
    ``penalty`` one of :data:`PENALTIES`)."""
    ce = F.cross_entropy(sibling(x), y)
    if lam == 0:
        return ce
    g_sib = input_gradients(sibling, x, y, create_graph=True).flatten(1)
    g_full = input_gradients(full, x, y).flatten(1)
    cos = F.cosine_similarity(g_sib, g_full, dim=1, eps=1e-12)
    return ce + lam * alignment_penalty(cos, penalty).mean()


def unpair(
    sibling: nn.Module,
    full: nn.Module,
    s: Splits,
    lam: float,
    *,
    epochs: int,
    lr: float = 0.01,
    seed: int = 0,
    penalty: str = "signed",
) -> nn.Module:
    """The cached sibling fine-tuned with :func:`unpairing_loss` (``penalty``) for ``epochs``
    on the owner's training data (``lam = 0``: plain fine-tuning, the control)."""
    alignment_penalty(torch.zeros(1), penalty)
    full.eval()
    params = dict(
        sibling=sibling.ipkit_key,
        full=full.ipkit_key,
        lam=float(lam),
        epochs=epochs,
        lr=lr,
        seed=seed,
        split=s.fingerprint,
    )
    if penalty != "signed" and lam != 0:
        params["penalty"] = penalty  # older cache entries (signed) keep their keys

    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        return unpairing_loss(model, full, xb, yb, lam, penalty)

    def train(model: nn.Module) -> dict:
        tuned = transforms.finetune(
            sibling,
            s.owner.x,
            s.owner.y,
            layers="all",
            epochs=epochs,
            lr=lr,
            seed=seed,
            loss=loss,
            augment=s.in_shape[0] == 3,
        )
        model.load_state_dict(tuned.state_dict())
        return {}

    return cache.cached_model("unpaired", params, lambda: skeleton(full, bits_of(sibling)), train)
