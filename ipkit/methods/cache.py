"""Content-addressed store of trained models and other tensors.

An entry's key is the SHA-256 of (recipe name, parameters, dataset fingerprint, ipkit
version), so changing any of them trains afresh. Each entry is one safetensors file whose
header metadata carries the recipe, its parameters and a SHA-256 over the whole header
(tensor names, dtypes, shapes, offsets and the metadata) and the tensor bytes. Writes go
to a temporary file ``.<key>.<pid>.<random>.tmp`` in the same folder, are flushed to disk
and renamed into place, so an interrupted run or two processes writing one key never leave
a torn entry; temp files whose writer is gone are swept (:func:`sweep_temp`). Any failure
to load an entry (not a regular file, unreadable header or metadata, checksum mismatch,
tensors that do not fit the model) makes it corrupt: a line ``corrupt cache entry <key> (<reason>):
rebuilt`` goes to stderr, the entry is deleted and rebuilt. A folder that refuses writes
(read-only, disk full) costs the cache, never the run: ``cache not written ...`` names the
folder and the fix, and the model stays in memory. Nothing is ever unpickled.
The folder is ``IPKIT_CACHE`` (default: the user cache).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import struct
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import Tensor, nn

from .. import __version__
from ..core import timings
from ..core.paths import user_folder
from ..core.scratch import alive
from .train import cpu_bf16, cpu_threads, default_device, model_device

SUFFIX = ".safetensors"


TEMP_MAX_AGE_S = 3600.0
CORRUPT_LINE = re.compile(r"corrupt cache entry \S+ \(.*\): rebuilt")
#: What :func:`save` prints when the folder refuses a write (:func:`unwritten_line`).
UNWRITTEN_LINE = re.compile(r"cache not written \S+ \(.*\): .*the run goes on with the model in memory")


class CorruptEntry(ValueError):
    """A cache entry that cannot be used; the message is the short reason."""


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
    """Cache key of ``recipe`` run with ``params`` (include the dataset fingerprint in them)
    on this process's :func:`compute` (a model trained with another thread count or on
    another device differs in its last bits, so it is another entry)."""
    blob = json.dumps(
        {"recipe": recipe, "params": _canonical(params), "ipkit": __version__, "compute": compute()}, sort_keys=True
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def compute() -> str:
    """Where training runs: the device type and, on the CPU, the thread count the trainer
    uses (:func:`ipkit.methods.train.cpu_threads`; results are deterministic for a given count, not
    across counts) and ``-bf16`` where the trainer trains its large conv models in bf16
    there (:func:`ipkit.methods.train.cpu_bf16`)."""
    device = default_device().type
    if device != "cpu":
        return device
    return f"cpu-{cpu_threads()}" + ("-bf16" if cpu_bf16() else "")


def entry_path(k: str) -> Path:
    """Where entry ``k`` is (or would be) stored: ``<cache folder>/<k>.safetensors``."""
    return cache_dir() / f"{k}{SUFFIX}"


def _parse(blob: bytes) -> tuple[dict[str, Any], str]:
    """A safetensors blob's header and the SHA-256 over that header (without the digest
    itself) and the data."""
    if len(blob) < 8:
        raise CorruptEntry("shorter than a safetensors header")
    (header_len,) = struct.unpack("<Q", blob[:8])
    if header_len > len(blob) - 8:
        raise CorruptEntry("not a safetensors file: header length past the end")
    try:
        header = json.loads(blob[8 : 8 + header_len])
    except ValueError:
        raise CorruptEntry("not a safetensors file: header is not JSON") from None
    if not isinstance(header, dict):
        raise CorruptEntry("not a safetensors file: header is not a table")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CorruptEntry("malformed metadata: not a table of strings")
    meta = {k: v for k, v in meta.items() if k != "sha256"}
    canonical = json.dumps({**header, "__metadata__": meta}, sort_keys=True).encode()
    return header, hashlib.sha256(canonical + b"\0" + blob[8 + header_len :]).hexdigest()


def _temp_name(k: str) -> str:
    return f".{k}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"


def save(k: str, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> Path | None:
    """Write entry ``k`` atomically (temp file, fsync, rename) and return its path.

    A write the folder refuses (read-only, disk full, not a folder) leaves no temp file
    behind: one line ``cache not written ...`` on stderr names the folder, the reason and the
    fix, and None is returned, so the caller goes on with the model in memory."""
    folder = cache_dir()
    cpu = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items()}
    header = {"meta": json.dumps(_canonical(dict(meta))), "created": str(time.time())}
    _, digest = _parse(st_save(cpu, metadata=header))
    blob = st_save(cpu, metadata={**header, "sha256": digest})
    tmp = folder / _temp_name(k)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, entry_path(k))
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        print(unwritten_line(k, folder, err), file=sys.stderr, flush=True)
        return None
    return entry_path(k)


def unwritten_line(k: str, folder: Path, err: OSError) -> str:
    """The one line saying entry ``k`` could not be written to ``folder``, why, and the fix."""
    if err.errno == errno.ENOSPC:
        fix = "free space there, or set IPKIT_CACHE to a folder with room"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        fix = "make it writable, or set IPKIT_CACHE to a writable folder"
    else:
        fix = "set IPKIT_CACHE to a writable folder"
    return (
        f"cache not written {k} ({folder}: {err.strerror or type(err).__name__}): {fix}; "
        "the run goes on with the model in memory"
    )


def _read(path: Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Parse and check one entry; raise :class:`CorruptEntry` with the reason otherwise."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise CorruptEntry("vanished while being read") from None
    if not stat.S_ISREG(mode):
        raise CorruptEntry("not a regular file")
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise CorruptEntry(f"unreadable: {err.strerror}") from None
    header, digest = _parse(blob)
    info = header.get("__metadata__") or {}
    if info.get("sha256") != digest:
        raise CorruptEntry("checksum mismatch")
    try:
        tensors = st_load(blob)
        meta = json.loads(info["meta"])
    except Exception as err:
        raise CorruptEntry(f"unreadable: {type(err).__name__}") from None
    if not isinstance(meta, dict):
        raise CorruptEntry("malformed metadata: its record is not a table")
    return tensors, meta


def _fits(tensors: Mapping[str, Tensor], like: Mapping[str, Tensor]) -> None:
    """Raise :class:`CorruptEntry` unless ``tensors`` has ``like``'s names, shapes and dtypes."""
    missing, extra = sorted(set(like) - set(tensors)), sorted(set(tensors) - set(like))
    if missing or extra:
        raise CorruptEntry(f"does not fit the model: missing {missing[:3]}, unexpected {extra[:3]}")
    for name, ref in like.items():
        t = tensors[name]
        if t.shape != ref.shape or t.dtype != ref.dtype:
            raise CorruptEntry(
                f"does not fit the model: {name} is {t.dtype} {tuple(t.shape)}, "
                f"the model needs {ref.dtype} {tuple(ref.shape)}"
            )


def _discard(path: Path, reason: str) -> None:
    """Report a corrupt entry on stderr and delete it (whatever kind of file it is)."""
    print(f"corrupt cache entry {path.name[: -len(SUFFIX)]} ({reason}): rebuilt", file=sys.stderr, flush=True)
    try:
        _remove(path)
    except OSError:  # a read-only folder: the rebuilt model stays in memory (see save)
        pass


def load(k: str, like: Mapping[str, Tensor] | None = None) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
    """Return (tensors, meta) of entry ``k``, or None if absent or corrupt (then deleted).

    With ``like`` (a model's state dict), an entry whose tensor names, shapes or dtypes
    differ from it is corrupt too.
    """
    path = entry_path(k)
    if not os.path.lexists(path):
        return None
    try:
        tensors, meta = _read(path)
        if like is not None:
            _fits(tensors, like)
        return tensors, meta
    except CorruptEntry as err:
        _discard(path, str(err))
        return None


def cached(
    recipe: str,
    params: Mapping[str, Any],
    make: Callable[[], tuple[dict[str, Tensor], dict[str, Any]]],
    like: Mapping[str, Tensor] | None = None,
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Return the stored (tensors, meta) for (recipe, params), calling ``make`` on a miss
    or a corrupt entry (``like``: the state dict the tensors must fit, see :func:`load`)."""
    k = key(recipe, params)
    hit = load(k, like)
    timings.count("cache hit" if hit is not None else "cache miss", recipe)
    if hit is not None:
        return hit
    with timings.timed("train", recipe):
        tensors, meta = make()
    save(k, tensors, {**meta, "recipe": recipe, "params": _canonical(params)})
    return tensors, {**meta, "recipe": recipe}


def cached_model(
    recipe: str,
    params: Mapping[str, Any],
    build: Callable[[], nn.Module],
    train: Callable[[nn.Module], Mapping[str, Any] | None],
) -> nn.Module:
    """Return the model trained by ``train(build())``, from the cache when possible.

    ``train`` trains the model in place and may return a dict of facts about the run
    (accuracy, seconds); they are stored with the weights and exposed as
    ``model.ipkit_meta``; ``model.ipkit_key`` is its cache key. A model loaded from the
    cache is in eval mode on ``build()``'s device and never runs pickled code.
    """
    model = build()
    device = model_device(model)

    def make() -> tuple[dict[str, Tensor], dict[str, Any]]:
        info = train(model) or {}
        return dict(model.state_dict()), {"info": dict(info), "spec": getattr(model, "spec", None)}

    tensors, meta = cached(recipe, params, make, like=model.state_dict())
    model.load_state_dict(tensors)
    model.to(device).eval()
    model.ipkit_meta = meta.get("info", {})
    model.ipkit_key = key(recipe, params)  # type: ignore[assignment]  # a plain attribute, not a submodule
    return model


@dataclass
class Entry:
    """One stored entry, for ``ipkit cache ls``; ``problem`` says why it is corrupt."""

    key: str
    recipe: str
    size: int
    created: float
    ok: bool
    problem: str = ""


def entries() -> list[Entry]:
    """All entries in the cache folder, newest first; ``ok`` is False for corrupt ones."""
    folder = cache_dir()
    out = []
    for path in folder.glob(f"*{SUFFIX}") if folder.exists() else []:
        try:
            _, meta = _read(path)
            recipe, problem = meta.get("recipe", "?"), ""
        except CorruptEntry as err:
            recipe, problem = "(corrupt)", str(err)
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # removed meanwhile
            continue
        out.append(Entry(path.name[: -len(SUFFIX)], recipe, st.st_size, st.st_mtime, not problem, problem))
    return sorted(out, key=lambda e: -e.created)


_TEMP = re.compile(r"\.(?P<key>[^.]+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp")


@dataclass
class TempFile:
    """A temp file of a write in progress or interrupted; ``stale`` when its writer is gone."""

    path: Path
    pid: int | None
    size: int
    age_s: float
    stale: bool


def temp_files() -> list[TempFile]:
    """Temp files of writes in the cache folder. One is stale when the pid in its name is
    no running process, or it is older than :data:`TEMP_MAX_AGE_S` (an hour)."""
    folder = cache_dir()
    out = []
    for path in folder.glob(".*.tmp") if folder.exists() else []:
        m = _TEMP.fullmatch(path.name)
        pid = int(m["pid"]) if m else None
        try:
            st = os.lstat(path)
        except FileNotFoundError:  # its write just finished
            continue
        age = time.time() - st.st_mtime
        out.append(TempFile(path, pid, st.st_size, age, pid is None or not alive(pid) or age > TEMP_MAX_AGE_S))
    return sorted(out, key=lambda t: t.path.name)


def sweep_temp() -> list[TempFile]:
    """Delete the stale temp files (see :func:`temp_files`) and return them."""
    stale = [t for t in temp_files() if t.stale]
    for t in stale:
        _remove(t.path)
    return stale


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def clear(recipe: str | None = None) -> int:
    """Delete entries (only ``recipe``'s, if given; corrupt ones always) and stale temp
    files; return the number of entries deleted."""
    folder = cache_dir()
    sweep_temp()
    removed = 0
    for path in folder.glob(f"*{SUFFIX}") if folder.exists() else []:
        if recipe is not None:
            try:
                if _read(path)[1].get("recipe") != recipe:
                    continue
            except CorruptEntry:
                pass
        _remove(path)
        removed += 1
    return removed
