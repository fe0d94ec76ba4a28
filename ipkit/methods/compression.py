"""On-device siblings of a full model: quantized and pruned copies an attacker can differentiate.

Hong, Carlini & Kurakin (SaTML 2023) publish efficient on-device siblings of a large model
and use them as attack priors. This module builds those siblings at small scale:

- :func:`quantize_model`: post-training quantization of every conv/linear layer to ``bits``
  bits, weights symmetric per output channel (:func:`ipkit.methods.transforms.quantize_tensor`) and
  input activations per channel with static scales calibrated on training images. Rounding
  passes gradients straight through (straight-through estimator), so attacks and
  fine-tuning can take gradients through the sibling. ``bits >= 32`` is the identity.
  Batch norm is left in float (not folded into the convolutions): a simplification.
- :func:`quantized_sibling` / :func:`pruned_sibling`: cached siblings of a cached full
  model (pruned siblings: global magnitude pruning + fine-tuning, via
  :mod:`ipkit.methods.transforms`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cache, models, transforms
from .data import Splits
from .train import model_device


def ste(x: Tensor, q: Tensor) -> Tensor:
    """``q`` in the forward pass, the identity's gradient in the backward pass (STE)."""
    return x + (q - x).detach()


def quantize_activation(a: Tensor, scale: Tensor, bits: int, signed: bool) -> Tensor:
    """Round activations ``a`` to ``bits`` bits with one static ``scale`` per channel (dim 1).

    Signed activations use the grid [-(2^(b-1) - 1), 2^(b-1) - 1] * scale; non-negative
    ones (after a ReLU) the grid [0, 2^b - 1] * scale. Values beyond the calibrated range
    are clipped. The rounding has a straight-through gradient; ``bits >= 32`` returns ``a``.
    """
    if bits >= 32:
        return a
    shape = [1, -1] + [1] * (a.dim() - 2)
    s = scale.reshape(shape).clamp_min(1e-12)
    lo, hi = (-(2 ** (bits - 1) - 1), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return ste(a, torch.round(a / s).clamp(lo, hi) * s)


class _QuantMixin(nn.Module):
    """Shared state of quantized layers: ``bits`` and per-input-channel activation scales."""

    weight: Tensor
    act_scale: Tensor
    act_signed: Tensor
    _amax: Tensor | None
    _negative: bool

    def _init_quant(self, bits: int, channels: int) -> None:
        self.bits = int(bits)
        self.calibrating = False
        self.register_buffer("act_scale", torch.ones(channels, device=self.weight.device))
        self.register_buffer("act_signed", torch.ones((), device=self.weight.device))

    def _observe(self, a: Tensor) -> None:
        dims = [d for d in range(a.dim()) if d != 1]
        amax = a.detach().abs().amax(dim=dims)
        self._amax = amax if self._amax is None else torch.maximum(self._amax, amax)
        self._negative = self._negative or bool((a < 0).any())

    def _finish_calibration(self) -> None:
        levels = 2 ** (self.bits - 1) - 1 if self._negative else 2**self.bits - 1
        if self._amax is not None:
            self.act_scale.copy_(self._amax / levels)
        self.act_signed.fill_(1.0 if self._negative else 0.0)
        self.calibrating = False

    def _q_input(self, a: Tensor) -> Tensor:
        if self.bits >= 32:
            return a
        if self.calibrating:
            self._observe(a)
            return a
        return quantize_activation(a, self.act_scale, self.bits, bool(self.act_signed > 0.5))

    def _q_weight(self, w: Tensor) -> Tensor:
        return ste(w, transforms.quantize_tensor(w, self.bits)) if self.bits < 32 else w


class QuantConv2d(_QuantMixin, nn.Conv2d):
    """A Conv2d whose weights and input activations are quantized to ``bits`` bits."""

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(self._q_input(x), self._q_weight(self.weight), self.bias)


class QuantLinear(_QuantMixin, nn.Linear):
    """A Linear layer whose weights and input activations are quantized to ``bits`` bits."""

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(self._q_input(x), self._q_weight(self.weight), self.bias)


def quantize_model(model: nn.Module, bits: int) -> nn.Module:
    """A copy of ``model`` with every conv/linear layer replaced by its ``bits``-bit version.

    The copy still needs :func:`calibrate` (activation scales) before use, unless
    ``bits >= 32``, where it computes exactly what ``model`` computes.
    """
    if bits < 2:
        raise ValueError(f"bits must be at least 2, got {bits}")
    out = copy.deepcopy(model)
    for layer in list(out.modules()):
        if type(layer) is nn.Conv2d:
            layer.__class__ = QuantConv2d
            cast(QuantConv2d, layer)._init_quant(bits, layer.in_channels)
        elif type(layer) is nn.Linear:
            layer.__class__ = QuantLinear
            cast(QuantLinear, layer)._init_quant(bits, layer.in_features)
    if getattr(out, "spec", None) is not None:
        net = cast(models.Net, out)
        net.spec = dict(net.spec, bits=int(bits))
    return out


@torch.no_grad()
def calibrate(model: nn.Module, x: Tensor, batch_size: int = 512) -> nn.Module:
    """Set the activation scales of a quantized model from its inputs' ranges on ``x``
    (max ``|activation|`` per channel; post-training calibration). Returns the model."""
    layers = [m for m in model.modules() if isinstance(m, _QuantMixin)]
    for m in layers:
        m._amax, m._negative, m.calibrating = None, False, True
    model.eval()
    for i in range(0, len(x), batch_size):
        model(x[i : i + batch_size])
    for m in layers:
        m._finish_calibration()
    return model


def bits_of(model: nn.Module) -> int:
    """The bit width of a quantized model's layers (32 for a float model)."""
    return min((m.bits for m in model.modules() if isinstance(m, _QuantMixin)), default=32)


def skeleton(full: nn.Module, bits: int = 32) -> nn.Module:
    """An untrained model with ``full``'s architecture, quantized to ``bits`` if below 32
    (what the cache loads a sibling's weights into)."""
    spec = {k: v for k, v in cast(models.Net, full).spec.items() if k != "bits"}
    fresh = models.rebuild(spec).to(model_device(full))
    return quantize_model(fresh, bits) if bits < 32 else fresh


def quantized_sibling(full: nn.Module, s: Splits, bits: int, n_calib: int = 1000) -> nn.Module:
    """The cached ``bits``-bit sibling of the cached model ``full``, calibrated on the first
    ``n_calib`` of the owner's training images (the publisher's data)."""
    params = dict(full=full.ipkit_key, bits=int(bits), n_calib=n_calib, split=s.fingerprint)

    def train(model: nn.Module) -> dict:
        model.load_state_dict(quantize_model(full, bits).state_dict())
        calibrate(model, s.owner.x[:n_calib])
        return {}

    return cache.cached_model("sibling-quant", params, lambda: skeleton(full, bits), train)


def pruned_sibling(
    full: nn.Module, s: Splits, ratio: float, *, epochs: int, seed: int = 0, lr: float = 0.01
) -> nn.Module:
    """The cached sibling of ``full`` with the ``ratio`` smallest weights pruned (globally)
    and the rest fine-tuned for ``epochs`` on the owner's data, masks kept
    (:func:`ipkit.methods.transforms.prune_finetune`)."""
    params = dict(full=full.ipkit_key, ratio=float(ratio), epochs=epochs, seed=seed, lr=lr, split=s.fingerprint)

    def train(model: nn.Module) -> dict:
        pruned = transforms.prune_finetune(
            full, ratio, s.owner.x, s.owner.y, epochs=epochs, lr=lr, seed=seed, augment=s.in_shape[0] == 3
        )
        model.load_state_dict(pruned.state_dict())
        return {"sparsity": transforms.sparsity(model)}

    return cache.cached_model("sibling-prune", params, lambda: skeleton(full), train)


def siblings(
    full: nn.Module,
    s: Splits,
    bits: Sequence[int],
    ratios: Sequence[float],
    *,
    epochs: int,
    seed: int = 0,
    n_calib: int = 1000,
    lr: float = 0.01,
) -> dict[str, nn.Module]:
    """Every sibling of ``full``, by name (:func:`sibling_names`): quantized (calibrated on
    ``n_calib`` owner images), then pruned (fine-tuned at ``lr``)."""
    built = [quantized_sibling(full, s, b, n_calib=n_calib) for b in bits]
    built += [pruned_sibling(full, s, r, epochs=epochs, seed=seed, lr=lr) for r in ratios]
    return dict(zip(sibling_names(bits, ratios), built))


def sibling_names(bits: Sequence[int], ratios: Sequence[float]) -> list[str]:
    """The names :func:`siblings` gives: ``q<bits>`` then ``p<percent>``."""
    return [f"q{b}" for b in bits] + [f"p{round(100 * r)}" for r in ratios]
