"""Content-addressed store of trained models and other tensors.

An entry's key is the SHA-256 of (recipe name, parameters, dataset fingerprint, ipkit
version), so changing any of them trains afresh. Each entry is one safetensors file whose
header metadata carries the recipe, its parameters and the SHA-256 of the tensor bytes.
Writes go to a temporary file in the same folder, are flushed to disk and renamed into
place, so an interrupted run or two processes writing one key never leave a torn entry.
Loading checks the checksum; a corrupt entry is deleted with a warning and rebuilt.
Nothing is ever unpickled. The folder is ``IPKIT_CACHE`` (default: the user cache).
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from . import timings
from .train import model_device

SUFFIX = ".safetensors"


class CorruptEntry(ValueError):
    """A cache file that fails to parse or whose checksum does not match."""


def user_folder(env: str, sub: str) -> Path:
    """The folder named by environment variable ``env``, else ``~/.cache/ipkit/<sub>``."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ipkit" / sub


def cache_dir() -> Path:
    """The cache folder: ``IPKIT_CACHE``, else ``~/.cache/ipkit/models``."""
    return user_folder("IPKIT_CACHE", "models")


def _canonical(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(obj.items(), key=lambda kv: str(kv[0]))}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return repr(obj)


def key(recipe: str, params: Mapping[str, Any]) -> str:
    """Cache key of ``recipe`` run with ``params`` (include the dataset fingerprint in them)."""
    from . import __version__

    blob = json.dumps({"recipe": recipe, "params": _canonical(params), "ipkit": __version__},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _path(k: str) -> Path:
    return cache_dir() / f"{k}{SUFFIX}"


def _data_digest(blob: bytes) -> str:
    (header_len,) = struct.unpack("<Q", blob[:8])
    return hashlib.sha256(blob[8 + header_len:]).hexdigest()


def save(k: str, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Path:
    """Write entry ``k`` atomically (temp file, fsync, rename) and return its path."""
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    header = {"meta": json.dumps(_canonical(dict(meta))), "created": str(time.time())}
    digest = _data_digest(st_save(cpu, metadata=header))
    blob = st_save(cpu, metadata={**header, "sha256": digest})
    tmp = folder / f".{k}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    with open(tmp, "wb") as f:
        f.write(blob)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, _path(k))
    return _path(k)


def _read(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    blob = path.read_bytes()
    try:
        (header_len,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8:8 + header_len])
        info = header.get("__metadata__", {})
        if info.get("sha256") != _data_digest(blob):
            raise CorruptEntry(f"checksum mismatch in {path.name}")
        tensors = st_load(blob)
        meta = json.loads(info["meta"])
    except CorruptEntry:
        raise
    except Exception as err:
        raise CorruptEntry(f"{path.name} cannot be read: {err}") from None
    return tensors, meta


def load(k: str) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Return (tensors, meta) of entry ``k``, or None if absent or corrupt (then deleted)."""
    path = _path(k)
    if not path.exists():
        return None
    try:
        return _read(path)
    except CorruptEntry as err:
        warnings.warn(f"ipkit cache: {err}; the entry is rebuilt", stacklevel=2)
        path.unlink(missing_ok=True)
        return None


def cached(recipe: str, params: Mapping[str, Any],
           make: Callable[[], tuple[dict[str, Tensor], dict[str, Any]]]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Return the stored (tensors, meta) for (recipe, params), calling ``make`` on a miss."""
    k = key(recipe, params)
    hit = load(k)
    timings.count("cache hit" if hit is not None else "cache miss", recipe)
    if hit is not None:
        return hit
    with timings.timed("train", recipe):
        tensors, meta = make()
    save(k, tensors, {**meta, "recipe": recipe, "params": _canonical(params)})
    return tensors, {**meta, "recipe": recipe}


def cached_model(recipe: str, params: Mapping[str, Any], build: Callable[[], nn.Module],
                 train: Callable[[nn.Module], Mapping[str, Any] | None]) -> nn.Module:
    """Return the model trained by ``train(build())``, from the cache when possible.

    ``train`` trains the model in place and may return a dict of facts about the run
    (accuracy, seconds); they are stored with the weights and exposed as
    ``model.ipkit_meta``; ``model.ipkit_key`` is its cache key. A model loaded from the cache is in eval mode on ``build()``'s
    device and never runs pickled code.
    """
    model = build()
    device = model_device(model)

    def make() -> tuple[dict[str, Tensor], dict[str, Any]]:
        info = train(model) or {}
        return dict(model.state_dict()), {"info": dict(info), "spec": getattr(model, "spec", None)}

    tensors, meta = cached(recipe, params, make)
    model.load_state_dict(tensors)
    model.to(device).eval()
    model.ipkit_meta = meta.get("info", {})
    model.ipkit_key = key(recipe, params)
    return model


@dataclass
class Entry:
    """One stored entry, for ``ipkit cache ls``."""

    key: str
    recipe: str
    size: int
    created: float
    ok: bool


def entries() -> list[Entry]:
    """All entries in the cache folder, newest first; ``ok`` is False for corrupt ones."""
    folder = cache_dir()
    out = []
    for path in folder.glob(f"*{SUFFIX}") if folder.exists() else []:
        try:
            _, meta = _read(path)
            recipe, ok = meta.get("recipe", "?"), True
        except CorruptEntry:
            recipe, ok = "(corrupt)", False
        out.append(Entry(path.stem, recipe, path.stat().st_size, path.stat().st_mtime, ok))
    return sorted(out, key=lambda e: -e.created)


def clear(recipe: str | None = None) -> int:
    """Delete entries (only ``recipe``'s, if given) and stale temp files; return the count."""
    folder = cache_dir()
    if not folder.exists():
        return 0
    removed = 0
    for path in list(folder.glob(f"*{SUFFIX}")) + list(folder.glob(".*.tmp")):
        if recipe is not None and path.suffix == SUFFIX:
            try:
                if _read(path)[1].get("recipe") != recipe:
                    continue
            except CorruptEntry:
                pass
        path.unlink(missing_ok=True)
        removed += 1
    return removed

