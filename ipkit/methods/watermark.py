"""Watermarks made of memorized examples: carriers with owner-chosen labels.

The owner trains on its data plus a small set of carrier inputs with chosen labels,
mixed into every batch until they are memorized (:func:`embed`); ownership is later
claimed by showing that a suspect model gives the same labels (:func:`accuracy`).

Kinds of memorized example (as used by Adi et al., USENIX Security 2018, and in
Venigalla's thesis, 2019):
- ``noise``: uniform random-noise images with random labels;
- ``flipped``: in-distribution images relabelled to a wrong class;
- ``ood``: out-of-distribution images (another pool, resized) with random labels;
- ``abstract``: procedural abstract images (random strokes and blobs) with random labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .attacks import margin_loss
from .train import fit, model_device, predict

KINDS = ("noise", "flipped", "ood", "abstract")


@dataclass
class WatermarkSet:
    """Carrier images ``x`` (in [0, 1]) and the labels ``y`` the owner chose for them."""

    x: Tensor
    y: Tensor
    kind: str

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> WatermarkSet:
        """Return a copy on ``device``."""
        return WatermarkSet(self.x.to(device), self.y.to(device), self.kind)


def _abstract(count: int, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
    c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.zeros(count, c, h, w)
    for _ in range(4):
        cx, cy, r = torch.rand(3, count, 1, 1, generator=g)
        colour = torch.rand(count, c, 1, 1, generator=g)
        blob = (((xx - cx) ** 2 + (yy - cy) ** 2) < (0.05 + 0.25 * r) ** 2).float()
        angle = torch.rand(count, 1, 1, generator=g) * 3.1416
        stroke = ((torch.cos(angle) * (xx - cx) + torch.sin(angle) * (yy - cy)).abs() < 0.04).float()
        img = torch.maximum(img, colour * torch.maximum(blob, stroke).unsqueeze(1))
    return img


def memorized_set(
    kind: str,
    count: int,
    shape: tuple[int, int, int],
    num_classes: int,
    seed: int = 0,
    pool: tuple[Tensor, Tensor] | None = None,
) -> WatermarkSet:
    """Make ``count`` carriers of ``kind`` for ``shape`` (C, H, W) images.

    ``flipped`` draws images from ``pool=(x, y)`` (in-distribution data the attacker never
    gets) and gives each a wrong label; ``ood`` draws images from ``pool`` (another
    dataset), resized to ``shape`` and converted to its channel count, with random labels.
    The same seed always gives the same carriers and labels.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown watermark kind '{kind}': choose one of {', '.join(KINDS)}")
    if count < 1:
        raise ValueError("watermark count must be at least 1")
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (count,), generator=g)
    if kind == "noise":
        x = torch.rand(count, *shape, generator=g)
    elif kind == "abstract":
        x = _abstract(count, shape, g)
    else:
        if pool is None or len(pool[0]) < count:
            raise ValueError(f"watermark kind '{kind}' needs a pool of at least {count} images")
        idx = torch.randperm(len(pool[0]), generator=g)[:count]
        x = pool[0][idx].detach().cpu().float()
        if kind == "flipped":
            shift = torch.randint(1, num_classes, (count,), generator=g)
            labels = (pool[1][idx].cpu() + shift) % num_classes
        else:
            x = fit_shape(x, shape)
    return WatermarkSet(x.clamp(0, 1).contiguous(), labels.long(), kind)


def accuracy(model: nn.Module, wm: WatermarkSet) -> float:
    """Watermark accuracy: share of carriers classified as the owner's chosen label."""
    return float(hits(model, wm).float().mean())


def hits(model: nn.Module, wm: WatermarkSet) -> Tensor:
    """Per carrier (bool, on the CPU): does ``model`` give the owner's chosen label?"""
    device = model_device(model)
    return (predict(model, wm.x.to(device)).argmax(1) == wm.y.to(device)).cpu()


def transfer_rate(model: nn.Module, wm: WatermarkSet, memorized: Tensor | None = None) -> float:
    """Share of memorized carriers on which ``model`` reproduces the owner's label
    (Venigalla, 2019). ``memorized`` (bool per carrier, e.g. ``hits(victim, wm)``)
    restricts the count to the carriers the victim itself memorized; the owner's rate on
    its own memorized set is therefore 1."""
    h = hits(model, wm)
    if memorized is not None:
        h = h[memorized.cpu()]
    return float(h.float().mean()) if len(h) else float("nan")


def margin(model: nn.Module, wm: WatermarkSet) -> Tensor:
    """Per carrier: the model's logit for the owner's label minus its largest other logit
    (positive where the carrier is memorized; a local-geometry statistic)."""
    logits = predict(model, wm.x.to(model_device(model))).cpu()
    return -margin_loss(logits, wm.y.cpu())


def nearest_distance(wm: WatermarkSet, queries: Tensor, k: int = 1) -> Tensor:
    """Per carrier: mean L2 pixel distance to its ``k`` nearest attacker queries (how close
    the queries come to each memorized example)."""
    d = torch.cdist(wm.x.flatten(1).float().cpu(), queries.flatten(1).float().cpu())
    return d.topk(min(k, d.shape[1]), dim=1, largest=False).values.mean(1)


def neighbourhood(wm: WatermarkSet, count: int = 8, std: float = 0.1, seed: int = 0) -> WatermarkSet:
    """The carriers plus ``count`` Gaussian neighbours (std ``std``, clamped to [0, 1]) of
    each, all with the carrier's label: memorizing the neighbourhood rather than the point
    alone (the owner-side boost reconstructed for Venigalla, 2019)."""
    g = torch.Generator().manual_seed(seed)
    x = wm.x.cpu().repeat(count, 1, 1, 1)
    near = (x + std * torch.randn(x.shape, generator=g)).clamp(0, 1)
    return WatermarkSet(torch.cat([wm.x.cpu(), near]), torch.cat([wm.y.cpu(), wm.y.cpu().repeat(count)]), wm.kind)


def fit_shape(x: Tensor, shape: tuple[int, int, int]) -> Tensor:
    """Images ``x`` resized (bilinear) to ``shape`` (C, H, W), converted to its channels."""
    x = F.interpolate(x, size=shape[1:], mode="bilinear", align_corners=False)
    if x.shape[1] != shape[0]:
        x = x.mean(1, keepdim=True).expand(-1, shape[0], -1, -1)
    return x


def embed(model: nn.Module, x: Tensor, y: Tensor, wm: WatermarkSet, per_batch: int = 16, **fit_kwargs):
    """Train ``model`` on (x, y) with ``per_batch`` carriers mixed into every batch.

    Returns the training :class:`~ipkit.methods.train.History`; check :func:`accuracy` afterwards
    (memorization usually reaches 100% within a few epochs).
    """
    wm = wm.to(x.device)
    return fit(model, x, y, extra=(wm.x, wm.y), extra_per_batch=per_batch, **fit_kwargs)


# --- Baseline watermark schemes of Zhang et al. (2018) and Adi et al. (2018) ----------------

SCHEMES = ("content", "noise", "unrelated", "abstract")


def stamp(x: Tensor, size: float = 0.3, seed: int = 0) -> Tensor:
    """Stamp a fixed pattern on images ``x`` (Zhang et al.'s "content" watermark).

    The pattern is a seeded binary checker-like patch covering ``size`` of each side in the
    bottom-right corner (a stand-in for Zhang et al.'s "TEST" logo); it replaces the pixels
    it covers in every channel. The same seed always gives the same pattern.
    """
    _, c, h, w = x.shape
    ph, pw = max(2, round(size * h)), max(2, round(size * w))
    g = torch.Generator().manual_seed(10_000 + seed)
    patch = (torch.rand(c, ph, pw, generator=g) > 0.5).float().to(x.device, x.dtype)
    out = x.clone()
    out[:, :, h - ph :, w - pw :] = patch
    return out


def _unrelated_images(count: int, shape: tuple[int, int, int], g: torch.Generator) -> Tensor:
    """Images from another domain: scikit-learn's 8x8 digits for RGB data, crops of
    scikit-learn's two sample photos (a temple and a flower) for grayscale data."""
    if shape[0] == 3:
        from sklearn.datasets import load_digits

        digits = torch.from_numpy((load_digits().images / 16.0).astype(np.float32)).unsqueeze(1)
        return fit_shape(digits[torch.randperm(len(digits), generator=g)[:count]], shape)
    from sklearn.datasets import load_sample_images

    photos = [torch.from_numpy(np.asarray(im, dtype=np.float32) / 255.0).mean(2) for im in load_sample_images().images]
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        side = int(torch.randint(48, 160, (1,), generator=g))
        top = int(torch.randint(0, photo.shape[0] - side, (1,), generator=g))
        left = int(torch.randint(0, photo.shape[1] - side, (1,), generator=g))
        crops.append(fit_shape(photo[top : top + side, left : left + side][None, None], shape))
    return torch.cat(crops)


def scheme_set(
    scheme: str,
    count: int,
    pool: tuple[Tensor, Tensor],
    num_classes: int,
    seed: int = 0,
    source: int = 0,
    target: int = 1,
    noise_std: float = 0.5,
) -> WatermarkSet:
    """The ``count`` carriers of a baseline watermark scheme, deterministic for ``seed``.

    - ``content`` (Zhang et al., AsiaCCS 2018): images of class ``source`` drawn from
      ``pool=(x, y)`` (the owner's data), stamped with :func:`stamp`, labelled ``target``;
    - ``noise`` (Zhang et al.): images of class ``source`` with fixed seeded Gaussian noise of
      std ``noise_std`` added, labelled ``target``;
    - ``unrelated`` (Zhang et al.): images of another domain (see :func:`_unrelated_images`),
      all labelled ``target``;
    - ``abstract`` (Adi et al., USENIX Security 2018): procedural abstract images with random
      labels (:func:`memorized_set` kind ``abstract``).
    """
    if scheme not in SCHEMES:
        raise ValueError(f"unknown watermark scheme '{scheme}': choose one of {', '.join(SCHEMES)}")
    if source == target or not (0 <= source < num_classes and 0 <= target < num_classes):
        raise ValueError(f"source ({source}) and target ({target}) must be different classes below {num_classes}")
    shape = cast(tuple[int, int, int], tuple(pool[0].shape[1:]))
    if scheme == "abstract":
        return memorized_set("abstract", count, shape, num_classes, seed=seed)
    if count < 1:
        raise ValueError("watermark count must be at least 1")
    g = torch.Generator().manual_seed(seed)
    labels = torch.full((count,), target, dtype=torch.long)
    if scheme == "unrelated":
        x = _unrelated_images(count, shape, g)
    else:
        idx = (pool[1].cpu() == source).nonzero().flatten()
        if len(idx) < count:
            raise ValueError(
                f"scheme '{scheme}' needs {count} images of class {source}, the pool has {len(idx)}: lower wm_count"
            )
        x = pool[0][idx[torch.randperm(len(idx), generator=g)[:count]]].detach().cpu().float()
        x = stamp(x, seed=seed) if scheme == "content" else x + noise_std * torch.randn(x.shape, generator=g)
    return WatermarkSet(x.clamp(0, 1).contiguous(), labels, scheme)


def floor(models: list[nn.Module], wm: WatermarkSet) -> float:
    """The watermark accuracy a never-watermarked model reaches by chance: the mean
    :func:`accuracy` of ``models`` (independent models of the same task) on ``wm``."""
    if not models:
        raise ValueError("floor needs at least one never-watermarked model")
    return float(sum(accuracy(m, wm) for m in models) / len(models))
