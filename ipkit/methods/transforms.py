"""Model transformations an adversary or a publisher applies to a trained model.

Each function returns a new model and leaves its input untouched:
- :func:`finetune`: continue training the last layer or all layers on new data;
- :func:`prune`: global magnitude pruning (Han et al., 2015) of conv and linear weights;
- :func:`fake_quantize`: symmetric per-output-channel n-bit weight quantization;
- :func:`quantize_int8`: PyTorch dynamic int8 quantization of linear layers (CPU);
- :func:`quantize_float16`: weights rounded to float16 precision;
- :func:`knowledge_distill`: a student trained on a teacher's soft outputs (Hinton et al., 2015);
- :func:`transfer`: transfer learning to a new task, fine-tuning the last fraction of layers;
- :func:`distillation_attack`: Yang et al.'s attack, a fresh student distilled from a suspect;
- :func:`prune_finetune`: pruning followed by fine-tuning with the pruned weights kept at zero.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import cast

import torch
from torch import Tensor, nn

from ..core.seeds import seed_for
from .models import Net, build
from .train import fit, kd_loss, model_device, predict, seeded


def _weights(model: nn.Module) -> list[Tensor]:
    return [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def finetune(
    model: nn.Module, x: Tensor, y: Tensor, layers: str = "last", epochs: int = 3, lr: float = 0.01, **fit_kwargs
) -> nn.Module:
    """A copy of ``model`` trained further on (x, y): ``layers`` is ``last`` (the head) or
    ``all``. Pruned weights stay zero (their masks are kept)."""
    if layers not in ("last", "all"):
        raise ValueError(f"unknown fine-tune layers '{layers}': choose last or all")
    out = copy.deepcopy(model)
    params = list(cast(Net, out).head.parameters()) if layers == "last" else list(out.parameters())
    masks = {id(w): (w != 0) for w in _weights(out)} if sparsity(out) > 0.01 else {}

    def keep_masks(epoch: int, m: nn.Module, hist) -> None:
        with torch.no_grad():
            for w in _weights(m):
                if id(w) in masks:
                    w.mul_(masks[id(w)])

    fit(
        out,
        x,
        y,
        epochs=epochs,
        lr=lr,
        params=params,
        on_epoch=keep_masks if masks else None,
        desc="fine-tune",
        **fit_kwargs,
    )
    keep_masks(0, out, None)
    return out


def prune(model: nn.Module, ratio: float) -> nn.Module:
    """A copy with the ``ratio`` smallest-magnitude conv/linear weights (globally) set to 0."""
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"pruning ratio must lie in [0, 1), got {ratio}")
    out = copy.deepcopy(model)
    weights = _weights(out)
    if ratio == 0:
        return out
    flat = torch.cat([w.detach().abs().flatten() for w in weights])
    k = int(round(ratio * flat.numel()))
    threshold = flat.kthvalue(k).values if k > 0 else flat.min() - 1
    with torch.no_grad():
        for w in weights:
            w.mul_((w.abs() > threshold).to(w.dtype))
    return out


def sparsity(model: nn.Module) -> float:
    """Share of conv/linear weights that are exactly zero."""
    weights = _weights(model)
    return float(sum((w == 0).sum() for w in weights) / sum(w.numel() for w in weights))


def quantize_tensor(w: Tensor, bits: int) -> Tensor:
    """Symmetric per-output-channel quantization of ``w`` to ``bits`` bits (dequantized).

    Each output channel is scaled by its max ``|w|`` onto the integers in
    [-(2^(b-1) - 1), 2^(b-1) - 1]; ``bits >= 32`` returns ``w`` unchanged.
    """
    if bits >= 32:
        return w
    if bits < 2:
        raise ValueError(f"bits must be at least 2, got {bits}")
    levels = 2 ** (bits - 1) - 1
    flat = w.reshape(w.shape[0], -1)
    scale = flat.abs().amax(1, keepdim=True).clamp_min(1e-12) / levels
    return (torch.round(flat / scale).clamp(-levels, levels) * scale).reshape(w.shape)


def fake_quantize(model: nn.Module, bits: int) -> nn.Module:
    """A copy whose conv/linear weights are quantized to ``bits`` bits per output channel."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for w in _weights(out):
            w.copy_(quantize_tensor(w, bits))
    return out


def quantize_int8(model: nn.Module) -> nn.Module:
    """PyTorch dynamic int8 quantization of the linear layers (runs on the CPU only).

    Uses ``torch.ao.quantization.quantize_dynamic``, which recent torch releases mark as
    deprecated in favour of torchao; its deprecation warnings are silenced here.
    """
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        return quantize_dynamic(copy.deepcopy(model).cpu().eval(), {nn.Linear}, dtype=torch.qint8)


def knowledge_distill(
    teacher: nn.Module, x: Tensor, student: nn.Module, temperature: float = 4.0, **fit_kwargs
) -> nn.Module:
    """Train ``student`` in place on ``teacher``'s softened outputs over ``x``; return it."""
    targets = (predict(teacher, x) / temperature).softmax(1)

    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        return kd_loss(model(xb), yb, temperature)

    fit(student, x, targets, loss=loss, desc="distill", **fit_kwargs)
    return student


def quantize_float16(model: nn.Module) -> nn.Module:
    """A copy whose weights and buffers are rounded to float16 precision (stored back as
    float32, so it runs on any device); ``float_parent`` points at ``model`` (not registered
    as a submodule, so the copy's parameters are its own)."""
    out = copy.deepcopy(model)
    with torch.no_grad():
        for t in list(out.parameters()) + list(out.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())
    object.__setattr__(out, "float_parent", model)  # a plain reference, not a submodule
    return out


def layers_with_params(model: nn.Module) -> list[nn.Module]:
    """Modules that own parameters directly, in forward (registration) order."""
    return [m for m in model.modules() if any(True for _ in m.parameters(recurse=False))]


def last_fraction_params(model: nn.Module, fraction: float) -> list[nn.Parameter]:
    """Parameters of the last ``ceil(fraction * L)`` of the model's L parameterised layers
    (at least the last one): what "fine-tune the last 10/50/100%" trains (ModelDiff's
    transfer-learning reuse; counting layers rather than single weights is reconstructed)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fine-tune fraction must lie in (0, 1], got {fraction}")
    layers = layers_with_params(model)
    k = max(1, math.ceil(fraction * len(layers) - 1e-9))
    return [p for m in layers[-k:] for p in m.parameters(recurse=False)]


def transfer(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    num_classes: int,
    fraction: float,
    epochs: int = 5,
    lr: float = 0.01,
    seed: int = 0,
    **fit_kwargs,
) -> nn.Module:
    """Transfer learning: a copy of ``model`` with a fresh ``num_classes`` head, whose last
    ``fraction`` of layers (see :func:`last_fraction_params`) is trained on (x, y); the new
    head's initial weights are drawn with ``seed`` (global generator state left alone)."""
    out = copy.deepcopy(model)
    net = cast(Net, out)
    with seeded(seed):
        net.head = nn.Linear(net.head.in_features, num_classes).to(model_device(out))
    if getattr(out, "spec", None):
        net.spec = dict(net.spec, num_classes=int(num_classes))
    fit(
        out,
        x,
        y,
        epochs=epochs,
        lr=lr,
        params=last_fraction_params(out, fraction),
        seed=seed,
        desc=f"transfer {fraction:.0%}",
        **fit_kwargs,
    )
    return out


def distillation_attack(
    teacher: nn.Module, x: Tensor, arch: str, *, temperature: float = 4.0, epochs: int = 10, seed: int = 0, **fit_kwargs
) -> nn.Module:
    """Yang et al.'s distillation attack: a fresh ``arch`` student (same as the suspect's or
    smaller) trained only on the suspect ``teacher``'s soft labels at ``temperature`` over the
    attacker's data ``x`` (no watermark inputs), for ``epochs`` epochs (see :func:`knowledge_distill`)."""
    spec = cast(Net, teacher).spec
    student = build(arch, spec["num_classes"], tuple(spec["in_shape"]), seed=seed_for("student", seed)).to(x.device)
    return knowledge_distill(teacher, x, student, temperature=temperature, epochs=epochs, seed=seed, **fit_kwargs)


def prune_finetune(
    model: nn.Module,
    ratio: float,
    x: Tensor | None = None,
    y: Tensor | None = None,
    epochs: int = 0,
    lr: float = 0.01,
    **fit_kwargs,
) -> nn.Module:
    """Global magnitude pruning at ``ratio`` (:func:`prune`), then, when ``epochs > 0``,
    fine-tuning all layers on (x, y) with the pruned weights kept at zero (:func:`finetune`)."""
    out = prune(model, ratio)
    if epochs > 0:
        if x is None or y is None:
            raise ValueError("fine-tuning after pruning needs data x and y")
        out = finetune(out, x, y, layers="all", epochs=epochs, lr=lr, **fit_kwargs)
    return out
