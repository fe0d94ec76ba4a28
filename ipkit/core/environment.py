"""The ``IPKIT_*`` settings the trainer reads, parsed without loading torch.

Each reader raises a one-line ValueError that names the variable and the fix, so a bad
value is refused before any work (the command line calls :func:`check`); the trainer
(:mod:`ipkit.methods.train`) reads the same values through these functions, so the check and
the run can never disagree.
"""

from __future__ import annotations

import os
import re

THREAD_SOURCES = ("IPKIT_THREADS", "OMP_NUM_THREADS")


def threads() -> int:
    """Threads for the CPU kernels, from one source in this order: ``IPKIT_THREADS`` (what
    ``--threads`` sets), ``OMP_NUM_THREADS`` (usual on clusters), else every core this
    process may run on. Anything but a positive ASCII integer is a ValueError."""
    for name in THREAD_SOURCES:
        text = os.environ.get(name, "").strip()
        if text:
            if not (text.isascii() and text.isdigit()) or int(text) < 1:
                raise ValueError(f"{name} must be a positive integer, got '{text[:40]}': unset it or set e.g. {name}=2")
            return int(text)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def cpu_bf16() -> bool | None:
    """``IPKIT_CPU_BF16``: True for ``1``, False for ``0``, None when unset (the CPU decides);
    any other value is a ValueError."""
    text = os.environ.get("IPKIT_CPU_BF16", "").strip()
    if not text:
        return None
    if text not in ("0", "1"):
        raise ValueError(f"IPKIT_CPU_BF16 must be 0 or 1, got '{text[:40]}': unset it to let the CPU decide")
    return text == "1"


def device() -> tuple[str, int | None] | None:
    """``IPKIT_DEVICE`` as (``"cpu"`` or ``"cuda"``, the GPU index ``N`` of ``cuda:N`` or
    None), None when unset;
    anything but ``cpu``, ``cuda`` or ``cuda:N`` is a ValueError. Whether the GPU exists
    is for :func:`ipkit.methods.train.default_device` to say (it needs torch)."""
    name = os.environ.get("IPKIT_DEVICE", "").strip()
    if not name:
        return None
    m = re.fullmatch(r"cpu|cuda(?::(\d+))?", name) if name.isascii() else None
    if m is None:
        raise ValueError(
            f"IPKIT_DEVICE must be cpu, cuda or cuda:N, got '{name[:40]}': unset it "
            "to use CUDA when there is a GPU, else the CPU"
        )
    return ("cpu", None) if name == "cpu" else ("cuda", None if m.group(1) is None else int(m.group(1)))


#: Device nodes one of which a machine with a CUDA (NVIDIA) or ROCm (AMD) GPU has.
GPU_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd")


def gpu_possible() -> bool:
    """False when this machine certainly has no GPU torch could use (none of
    :data:`GPU_NODES` exists), so that a ``cuda`` setting is refused without loading torch;
    True leaves the answer to torch."""
    return any(os.path.exists(node) for node in GPU_NODES)


def check() -> None:
    """Raise the first ValueError among the settings above (no torch needed), including an
    ``IPKIT_DEVICE`` naming CUDA on a machine with no GPU device at all."""
    threads(), cpu_bf16()
    setting = device()
    if setting is not None and setting[0] == "cuda" and not gpu_possible():
        name = "cuda" if setting[1] is None else f"cuda:{setting[1]}"
        raise ValueError(f"IPKIT_DEVICE={name} but this machine has no CUDA GPUs: set IPKIT_DEVICE=cpu or unset it")
