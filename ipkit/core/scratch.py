"""Scratch folders of runs, and the orphans a killed run leaves behind.

Every scratch folder ipkit makes (a notebook's run, a publish, a verify rerun, a redraw)
is ``$TMPDIR/ipkit-<kind>-<pid>-<random>`` (a notebook's kernel writes its connection
file inside it: :func:`ipkit.orchestrate.parallel.execute`), and every run writes its private folder
``runs/<study>-<profile>-<UTC time>-<pid>-<random>/`` with a ``.host`` file naming the
machine. A process killed mid-run (SIGKILL, a lost node) cannot clean up, so
:func:`orphans` finds what no live process owns: a scratch folder whose pid is gone (or,
named before pids were, older than an hour), and a run folder without ``results.json``
written on this machine by a process that is gone (elsewhere: untouched for a day).
:func:`sweep_orphans` deletes them; runs and ``ipkit cache clear --temp`` call it, and
``ipkit cache ls`` lists them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .paths import runs_dir

#: The kinds of scratch folder (``ipkit-<kind>-...``).
KINDS = ("run", "publish", "verify", "redraw")
#: A scratch folder without a pid in its name is an orphan after this many seconds.
MAX_AGE_S = 3600.0
#: A partial run folder written on another machine is an orphan after this many seconds.
OTHER_HOST_MAX_AGE_S = 86400.0
HOST_FILE = ".host"

_SCRATCH = re.compile(r"ipkit-(?P<kind>" + "|".join(KINDS) + r")-(?:(?P<pid>\d+)-)?.+")
_RUN = re.compile(r".+-\d{8}T\d{6}Z-(?P<pid>\d+)-[0-9a-f]{6}")


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def scratch(kind: str, label: str = "") -> tempfile.TemporaryDirectory:
    """A temporary folder ``ipkit-<kind>-<pid>-[<label>-]<random>`` (a context manager,
    as :class:`tempfile.TemporaryDirectory`), whose name lets :func:`orphans` tell whether
    its maker still runs."""
    if kind not in KINDS:
        raise ValueError(f"scratch kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return tempfile.TemporaryDirectory(prefix=f"ipkit-{kind}-{os.getpid()}-{label + '-' if label else ''}")


def mark_run_folder(folder: Path) -> None:
    """Write the ``.host`` file that says which machine's process owns run ``folder``."""
    (Path(folder) / HOST_FILE).write_text(socket.gethostname())


@dataclass(frozen=True)
class Orphan:
    """A folder a killed run left: ``kind`` is ``scratch`` or ``partial run``."""

    path: Path
    kind: str
    pid: int | None
    age_s: float


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def _scratch_orphans() -> list[Orphan]:
    out = []
    for path in Path(tempfile.gettempdir()).glob("ipkit-*"):
        m = _SCRATCH.fullmatch(path.name)
        if not m or not path.is_dir() or path.is_symlink():
            continue
        pid = int(m["pid"]) if m["pid"] else None
        age = _age(path)
        if (pid is not None and not alive(pid)) or (pid is None and age > MAX_AGE_S):
            out.append(Orphan(path, "scratch", pid, age))
    return out


def _run_orphans() -> list[Orphan]:
    folder = runs_dir()
    out = []
    for path in folder.iterdir() if folder.is_dir() else []:
        m = _RUN.fullmatch(path.name)
        if not m or not path.is_dir() or path.is_symlink() or (path / "results.json").exists():
            continue
        pid, age = int(m["pid"]), _age(path)
        try:
            host = (path / HOST_FILE).read_text().strip()
        except OSError:
            host = ""
        here = host in ("", socket.gethostname())
        if (here and not alive(pid)) or (not here and age > OTHER_HOST_MAX_AGE_S):
            out.append(Orphan(path, "partial run", pid, age))
    return out


def orphans() -> list[Orphan]:
    """Scratch folders and partial run folders whose maker is gone (see the module text)."""
    return sorted(_scratch_orphans() + _run_orphans(), key=lambda o: str(o.path))


def sweep_orphans() -> list[Orphan]:
    """Delete :func:`orphans` and return them."""
    found = orphans()
    for o in found:
        shutil.rmtree(o.path, ignore_errors=True)
    return found
