"""Where a study's time goes: wall seconds and counts per kind of work, and per notebook section.

Inside ipkit, :func:`timed` wraps the places that cost time: training by recipe (on a cache
miss), cache hits and misses by recipe (counts), attacks, similarity probes and scores,
predictions (every evaluation goes through :func:`ipkit.methods.train.predict`) and saving figures.
Blocks may nest (an evaluation inside a training run): ``seconds`` counts a block whole,
``self_s`` without the timed blocks inside it, so the ``self_s`` of all rows add up to the
timed share of the run.

A run writes ``timings.json`` and ``timings.md`` beside ``results.json``: the kernel writes
the per-kind table when the notebook calls ``run.record(...)``; ``ipkit run`` then adds the
wall seconds per notebook section (papermill stores each cell's duration in the executed
notebook; a section runs from one markdown heading to the next).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "timings.json"


@dataclass
class Tally:
    """Totals of one (kind, name): calls, wall seconds, and seconds outside nested blocks."""

    count: int = 0
    seconds: float = 0.0
    self_s: float = 0.0


_TALLIES: dict[tuple[str, str], Tally] = {}
_STACK: list[list[float]] = []  # per open block: [start, seconds of timed blocks inside]


class timed:
    """Context manager and decorator adding a block's wall seconds to ``(kind, name)``.

    >>> with timed("attack", "pgd"):
    ...     pass
    >>> @timed("plot", "savefig")
    ... def save(): ...
    """

    def __init__(self, kind: str, name: str):
        self.kind, self.name = kind, name

    def __enter__(self) -> timed:
        _STACK.append([time.perf_counter(), 0.0])
        return self

    def __exit__(self, *exc: object) -> None:
        start, inner = _STACK.pop()
        elapsed = time.perf_counter() - start
        tally = _TALLIES.setdefault((self.kind, self.name), Tally())
        tally.count += 1
        tally.seconds += elapsed
        tally.self_s += elapsed - inner
        if _STACK:
            _STACK[-1][1] += elapsed

    def __call__(self, fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with timed(self.kind, self.name):
                return fn(*args, **kwargs)

        return wrapper


def count(kind: str, name: str) -> None:
    """Count one event of ``(kind, name)`` that takes no time worth measuring (a cache hit)."""
    _TALLIES.setdefault((kind, name), Tally()).count += 1


def reset() -> None:
    """Forget every tally (a new run starts)."""
    _TALLIES.clear()


def kinds() -> list[dict[str, Any]]:
    """The tallies as rows (kind, name, count, seconds, self_s), slowest kind first and
    slowest name first within a kind."""
    per_kind: dict[str, float] = {}
    for (kind, _), t in _TALLIES.items():
        per_kind[kind] = per_kind.get(kind, 0.0) + t.self_s
    order = sorted(_TALLIES.items(), key=lambda kv: (-per_kind[kv[0][0]], kv[0][0], -kv[1].seconds))
    return [
        {"kind": k, "name": n, "count": t.count, "seconds": round(t.seconds, 2), "self_s": round(t.self_s, 2)}
        for (k, n), t in order
    ]


def sections(notebook: Path) -> list[dict[str, Any]]:
    """Wall seconds per section of an executed notebook (papermill's per-cell ``duration``),
    a section being the cells from one markdown heading to the next, in notebook order."""
    cells = json.loads(Path(notebook).read_text())["cells"]
    out: list[dict[str, Any]] = []
    title = "(before the first heading)"
    for cell in cells:
        if cell["cell_type"] == "markdown":
            text = "".join(cell["source"])
            heading = next((ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")), None)
            if heading:
                title = heading
        duration = (cell.get("metadata", {}).get("papermill") or {}).get("duration")
        if cell["cell_type"] != "code" or duration is None:
            continue
        if not out or out[-1]["section"] != title:
            out.append({"section": title, "cells": 0, "seconds": 0.0})
        out[-1]["cells"] += 1
        out[-1]["seconds"] = round(out[-1]["seconds"] + float(duration), 2)
    return out


def markdown(data: dict[str, Any]) -> str:
    """``timings.md``: the per-section table (when known), then the per-kind table."""
    lines = [f"# Timings: {data.get('study', '?')} (profile {data.get('profile', '?')})", ""]
    if data.get("sections"):
        total = sum(s["seconds"] for s in data["sections"])
        lines += [f"Notebook sections: {total:.1f} s in all.", "", "| section | cells | seconds |", "|---|---|---|"]
        lines += [f"| {s['section']} | {s['cells']} | {s['seconds']:.1f} |" for s in data["sections"]]
        lines.append("")
    if data.get("kinds"):
        lines += [
            "Work inside ipkit (until `run.record`; `self` leaves out nested timed blocks):",
            "",
            "| kind | name | count | seconds | self seconds |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['kind']} | {r['name']} | {r['count']} | {r['seconds']:.2f} | {r['self_s']:.2f} |"
            for r in data["kinds"]
        ]
        lines.append("")
    return "\n".join(lines)


def _write(folder: Path, data: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / FILE).write_text(json.dumps(data, indent=2) + "\n")
    (folder / "timings.md").write_text(markdown(data))
    return folder / FILE


def write_kinds(folder: Path, study: str, profile: str) -> Path:
    """Write this process's per-kind tallies to ``folder/timings.json`` and ``timings.md``."""
    return _write(Path(folder), {"study": study, "profile": profile, "kinds": kinds()})


def add_sections(folder: Path, study: str, profile: str, notebook: Path, since: float) -> dict[str, Any]:
    """Add the executed ``notebook``'s per-section seconds to ``folder/timings.json``, rewrite
    ``timings.md`` and return the data; a ``timings.json`` older than ``since`` (the run's
    start, ``time.time()``) is from an earlier run and is replaced."""
    path = Path(folder) / FILE
    fresh = path.exists() and path.stat().st_mtime >= since
    data = json.loads(path.read_text()) if fresh else {"study": study, "profile": profile}
    data["sections"] = sections(notebook)
    _write(Path(folder), data)
    return data
