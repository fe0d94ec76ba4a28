"""One fast trainer for every study: device-resident batches, no worker processes.

Batches are sliced from tensors already on the device (in the spirit of airbench), with
bf16 autocast on CUDA (and on a CPU with AMX for the large conv models), the channels_last
memory layout for conv models (CUDA and the CPU),
every available CPU core, a one-cycle or cosine schedule and optional flip/crop
augmentation done on the device. Label smoothing is off by default because the studies
read the models' confidences. A custom ``loss`` hook lets studies add distillation,
Jacobian matching or regularisers; ``extra`` mixes a few fixed examples (a watermark set)
into every batch. Runs are seeded without touching the global random state; on the CPU
they are deterministic for a given thread count.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.deterministic as torch_deterministic
from torch import Tensor, nn

from ..core import environment
from ..core.timings import timed

LossFn = Callable[[nn.Module, Tensor, Tensor], Tensor]


def default_device() -> torch.device:
    """``IPKIT_DEVICE`` if set (``cpu``, ``cuda`` or ``cuda:N`` of a GPU this machine has;
    anything else is a ValueError naming the choices, :func:`ipkit.core.environment.device`),
    else CUDA when available, else the CPU."""
    setting = environment.device()
    if setting is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind, index = setting
    if kind == "cpu":
        return torch.device("cpu")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if (index or 0) >= count:
        name = "cuda" if index is None else f"cuda:{index}"
        raise ValueError(
            f"IPKIT_DEVICE={name} but this machine has "
            f"{count or 'no'} CUDA GPU{'s' if count != 1 else ''}: set IPKIT_DEVICE=cpu or unset it"
        )
    return torch.device("cuda" if index is None else f"cuda:{index}")


def model_device(model: nn.Module) -> torch.device:
    """The device ``model``'s parameters live on; the CPU for a model without parameters
    (e.g. PyTorch's dynamic int8 quantization packs its weights outside them)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cpu_threads() -> int:
    """Threads for the CPU kernels (:func:`ipkit.core.environment.threads`: ``IPKIT_THREADS``,
    ``OMP_NUM_THREADS``, else every core this process may run on). The cache key's compute
    part (:func:`ipkit.methods.cache.compute`) reads the same count, so a model is stored
    under the thread count it trains with."""
    return environment.threads()


def use_cpu_threads() -> int:
    """Set torch's intra-op thread count (process-wide) to :func:`cpu_threads` and return
    it; :func:`fit` and :func:`predict` call it, so a run uses every core from its first
    training or prediction on, whether its models come from the cache or not."""
    n = cpu_threads()
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


#: Architectures the trainer trains under bf16 autocast on a CPU with bf16 matrix units
#: (:func:`cpu_bf16`): 2.1x (vgg) and 2.4x (resnet18) faster per step at batch 128 on
#: 3x32x32 on a 2-core Xeon with AMX. Not mobilenetv2 (its depthwise convolutions ran 1.4x
#: slower in bf16) nor the small cnn and lenet5 (1.1-1.2x).
CPU_BF16_ARCHS = frozenset({"vgg", "resnet18"})


def _arch(model: nn.Module) -> str | None:
    spec = getattr(model, "spec", None)
    return spec.get("arch") if isinstance(spec, dict) else None


def best_memory_format(model: nn.Module, device: torch.device) -> torch.memory_format:
    """The memory layout the trainer uses for ``model`` on ``device``: channels_last for
    a model with 2-d convolutions owning 4-d weights (on CUDA, and on the CPU, where it
    measured 1.1-1.5x faster per step for cnn, lenet5, vgg, resnet18 and mobilenetv2 at
    batch 128, measured 2026-12-06: docs/benchmarks.md), else the default contiguous layout
    (MLPs, and the functional UQ wrappers whose stacked weights have no 4-d layout)."""
    if any(p.dim() > 4 for p in model.parameters()):
        return torch.contiguous_format
    conv = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return torch.channels_last if conv and device.type in ("cpu", "cuda") else torch.contiguous_format


def cpu_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (Intel AMX tiles), so that bf16
    autocast speeds training up rather than emulating it; ``IPKIT_CPU_BF16=0`` says no
    (to train every model in float32, as on a CPU without them), ``=1`` says yes
    (:func:`ipkit.core.environment.cpu_bf16`)."""
    setting = environment.cpu_bf16()
    if setting is not None:
        return setting
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def bf16_archs(device: torch.device) -> list[str]:
    """The architectures the trainer trains under bf16 autocast on ``device``: every one on
    CUDA (``["*"]``), those of :data:`CPU_BF16_ARCHS` on a CPU with AMX (:func:`cpu_bf16`),
    none elsewhere. ``results.json`` records it."""
    if device.type == "cuda":
        return ["*"]
    return sorted(CPU_BF16_ARCHS) if device.type == "cpu" and cpu_bf16() else []


def train_dtype(model: nn.Module, device: torch.device) -> torch.dtype:
    """The autocast precision the trainer uses for ``model`` on ``device``: bf16 for the
    architectures of :func:`bf16_archs`, else float32. Weights, optimiser state and
    predictions stay float32."""
    archs = bf16_archs(device)
    return torch.bfloat16 if "*" in archs or _arch(model) in archs else torch.float32


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | str = "cpu") -> Iterator[None]:
    """Run the block with torch's global generators of the CPU and of ``device`` (a CUDA
    device's, if it is one) seeded with ``seed``; restore their states afterwards and
    touch no other device's."""
    device = torch.device(device)
    cuda = device.type == "cuda"
    index = (device.index if device.index is not None else torch.cuda.current_device()) if cuda else None
    with torch.random.fork_rng(devices=[index] if cuda else []):
        torch.random.default_generator.manual_seed(seed)
        if cuda:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


@contextlib.contextmanager
def deterministic(on: bool = True) -> Iterator[None]:
    """Run the block with ``torch.use_deterministic_algorithms(on, warn_only=True)`` and
    restore the process's previous setting afterwards.

    Deterministic mode also fills every new tensor with NaN by default
    (``torch.utils.deterministic.fill_uninitialized_memory``), a debugging aid that took a
    third of a CPU training step of the ``cnn`` (``aten::fill_`` in the profile); the block
    runs with it off (every tensor is written before it is read, so results are the same
    bit for bit: checked when it was turned off, 2026-12-06, issue 16)."""
    before, warn = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    fill = torch_deterministic.fill_uninitialized_memory  # type: ignore[attr-defined]
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch_deterministic.fill_uninitialized_memory = False  # type: ignore[attr-defined]
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn)
        torch_deterministic.fill_uninitialized_memory = fill  # type: ignore[attr-defined]


@contextlib.contextmanager
def in_layout(model: nn.Module, fmt: torch.memory_format) -> Iterator[None]:
    """Run the block with ``model``'s weights in memory layout ``fmt``, then put them back
    in the default contiguous layout."""
    model.to(memory_format=fmt)
    try:
        yield
    finally:
        if fmt != torch.contiguous_format:
            model.to(memory_format=torch.contiguous_format)


def quiet() -> bool:
    """Whether progress bars are off: in CI, or with ``IPKIT_QUIET=1``."""
    return bool(os.environ.get("CI")) or os.environ.get("IPKIT_QUIET", "0") not in ("", "0")


#: A study step's ``progress`` argument: :func:`progress`, a notebook run's ``run.progress``
#: or :func:`no_progress`, called as ``progress(iterable, desc=...)``.
Progress = Callable[..., Iterable]


def no_progress(iterable: Iterable, **kwargs: Any) -> Iterable:
    """``iterable`` as it is, the keyword arguments of :func:`progress` (``desc``, ...)
    ignored: the default of a study step's ``progress`` argument, no bar drawn."""
    return iterable


def progress(iterable=None, **kwargs):
    """A tqdm progress bar that stays silent in CI: a widget in a notebook, or plain text
    with ``IPKIT_PROGRESS=text``, which ``ipkit run`` sets so that an executed notebook holds
    no widget output. As text, every bar writes on one line (no cursor movement), at most
    every 2 s, and a bar that erases itself when done (``leave=False``) stays off."""
    disable = quiet()
    if os.environ.get("IPKIT_PROGRESS") == "text":
        from tqdm.std import tqdm

        kwargs.setdefault("mininterval", 2.0)
        kwargs.setdefault("position", 0)
        disable = disable or not kwargs.get("leave", True)
    else:
        from tqdm.auto import tqdm
    return tqdm(iterable, disable=disable, **kwargs)


def autocast(device: torch.device, dtype: torch.dtype | None = None):
    """Autocast to ``dtype`` on ``device`` (default: bf16 on CUDA, none on the CPU); a
    no-op for float32."""
    dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
    if dtype == torch.float32 or device.type not in ("cuda", "cpu"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def cross_entropy(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy against hard labels (int) or probability targets (float)."""
    return F.cross_entropy(model(x), y)


def kd_loss(student_logits: Tensor, teacher_probs: Tensor, temperature: float = 1.0) -> Tensor:
    """Hinton distillation loss: T^2 * KL(teacher || student) at temperature T.

    ``teacher_probs`` are the teacher's probabilities already softened at ``temperature``.
    The loss is zero when the student's softened output equals them.
    """
    log_s = F.log_softmax(student_logits.float() / temperature, dim=1)
    t = teacher_probs.float()
    return (temperature**2) * (t * (torch.log(t.clamp_min(1e-12)) - log_s)).sum(1).mean()


def augment_flip_crop(x: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Random horizontal flips and random crops after reflect padding, per image, on device."""
    n, _, h, w = x.shape
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    dy = torch.randint(0, 2 * pad + 1, (n,), device=x.device, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=x.device)[None])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device)[None])[:, None, None, :]
    idx_n = torch.arange(n, device=x.device)[:, None, None, None]
    idx_c = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows, cols]


@dataclass
class History:
    """Per-epoch mean training loss, wall-clock seconds and anything a callback adds."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    extra: dict[str, list] = field(default_factory=dict)


def fit(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 0.05,
    optimizer: str = "sgd",
    weight_decay: float = 5e-4,
    schedule: str = "onecycle",
    label_smoothing: float = 0.0,
    loss: LossFn | None = None,
    extra: tuple[Tensor, Tensor] | None = None,
    extra_per_batch: int = 32,
    augment: bool = False,
    params: list[nn.Parameter] | None = None,
    seed: int = 0,
    on_epoch: Callable[[int, nn.Module, History], None] | None = None,
    on_step: Callable[[int, nn.Module], None] | None = None,
    desc: str = "train",
    memory_format: torch.memory_format | None = None,
    precision: torch.dtype | None = None,
) -> History:
    """Train ``model`` in place on (``x``, ``y``) and return its :class:`History`.

    ``y`` holds class indices or per-class target probabilities. ``loss(model, xb, yb)``
    replaces the default cross-entropy. ``extra=(xe, ye)`` adds ``extra_per_batch`` of those
    examples (sampled with replacement, hard labels) to every batch, so they are memorised.
    ``params`` restricts training to some parameters (fine-tuning). ``optimizer`` is
    ``sgd`` (Nesterov momentum 0.9) or ``adam``; ``schedule`` is ``onecycle``, ``cosine``
    or ``constant``. ``memory_format`` overrides the layout chosen by
    :func:`best_memory_format`; the model is handed back in the default layout.
    ``precision`` overrides the autocast precision chosen by :func:`train_dtype`.
    ``on_epoch(epoch, model, history)`` runs after every epoch, ``on_step(step, model)``
    after every optimiser step (``step`` counts them from 1).

    The global torch generators are seeded with ``seed`` inside the run (dropout draws from
    them) and restored afterwards; deterministic algorithms are on inside the run on the
    CPU only.
    """
    if epochs < 0 or batch_size < 1 or lr <= 0:
        raise ValueError("epochs must be >= 0, batch_size >= 1 and lr > 0")
    device = x.device
    use_cpu_threads()
    model.to(device)
    fmt = memory_format if memory_format is not None else best_memory_format(model, device)
    dtype = precision or train_dtype(model, device)
    with seeded(seed, device), deterministic(device.type == "cpu"), in_layout(model, fmt):
        params = params if params is not None else [p for p in model.parameters() if p.requires_grad]
        if optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay
            )
        elif optimizer == "adam":
            opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        else:
            raise ValueError(f"unknown optimizer '{optimizer}': choose sgd or adam")
        n = len(x)
        steps_per_epoch = max(1, math.ceil(n / batch_size))
        total = max(1, epochs * steps_per_epoch)
        if schedule == "onecycle" and total < 8:
            schedule = "cosine"  # OneCycleLR's warm-up phase is degenerate below a few steps
        if schedule == "onecycle":
            sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=lr, total_steps=total, pct_start=0.25
            )
        elif schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        elif schedule == "constant":
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        else:
            raise ValueError(f"unknown schedule '{schedule}': choose onecycle, cosine or constant")

        def default_loss(m: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
            return F.cross_entropy(m(xb), yb, label_smoothing=label_smoothing)

        loss_fn = loss or default_loss
        gen = torch.Generator(device=device).manual_seed(seed)
        hist = History()
        start = time.perf_counter()
        model.train()
        bar = progress(range(epochs), desc=desc, leave=False)
        for epoch in bar:
            perm = torch.randperm(n, device=device, generator=gen)
            total_loss = 0.0
            for i in range(steps_per_epoch):
                idx = perm[i * batch_size : (i + 1) * batch_size]
                xb, yb = x[idx], y[idx]
                if augment:
                    xb = augment_flip_crop(xb, generator=gen)
                if extra is not None:
                    j = torch.randint(0, len(extra[0]), (extra_per_batch,), device=device, generator=gen)
                    xe, ye = extra[0][j], extra[1][j]
                    if yb.is_floating_point():
                        ye = F.one_hot(ye, yb.shape[1]).to(yb.dtype)
                    xb, yb = torch.cat([xb, xe]), torch.cat([yb, ye])
                if fmt != torch.contiguous_format:
                    xb = xb.contiguous(memory_format=fmt)
                with autocast(device, dtype):
                    batch_loss = loss_fn(model, xb, yb)
                opt.zero_grad(set_to_none=True)
                batch_loss.backward()
                opt.step()
                sched.step()
                total_loss += float(batch_loss.detach())
                if on_step is not None:
                    on_step(epoch * steps_per_epoch + i + 1, model)
            hist.loss.append(total_loss / steps_per_epoch)
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}")
            if on_epoch is not None:
                on_epoch(epoch, model, hist)
                model.train()
        hist.seconds = time.perf_counter() - start
        model.eval()
        return hist


@torch.no_grad()
def batched(
    fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int = 1024, device: torch.device | None = None
) -> Tensor:
    """``fn`` applied to ``x`` ``batch_size`` inputs at a time, without gradients, under
    :func:`autocast`, as float32. Batches run on ``device`` (default: ``x``'s) and come back
    to ``x``'s device, joined along their second-to-last axis: the batch axis of (n, k)
    outputs and of (members, n, k) stacks. The caller sets train or eval mode."""
    device = device or x.device
    out = []
    for i in range(0, len(x), batch_size):
        with autocast(device):
            out.append(fn(x[i : i + batch_size].to(device)).float().to(x.device))
    return torch.cat(out, -2) if out else torch.empty(0, device=x.device)


@timed("evaluate", "predict")
def predict(model: nn.Module, x: Tensor, batch_size: int = 1024, probs: bool = False) -> Tensor:
    """Logits (or softmax probabilities) of ``model`` on ``x``, in eval mode, float32,
    computed on the model's device (:func:`model_device`) and returned on ``x``'s, with
    :func:`use_cpu_threads`."""
    use_cpu_threads()
    model.eval()
    logits = batched(model, x, batch_size, model_device(model))
    return logits.softmax(-1) if probs else logits


def evaluate(model: nn.Module, x: Tensor, y: Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on (``x``, ``y``)."""
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x, batch_size).argmax(1) == y).float().mean())


def agreement(a: nn.Module, b: nn.Module, x: Tensor) -> float:
    """Fidelity: share of inputs on which two models predict the same label."""
    return float((predict(a, x).argmax(1) == predict(b, x).argmax(1)).float().mean())
