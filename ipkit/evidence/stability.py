"""Stability records: how a study's committed verdicts fared in reruns with other seeds.

``ipkit verify`` (:mod:`ipkit.orchestrate.verify`) reruns a study and compares claim by
claim (:class:`Comparison`); :func:`record` stores the comparisons under ``stability`` in
the committed ``results.json``, :func:`carry_over` keeps that record when a new run
reproduced what it checked, and :func:`stability_markdown` shows it.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.files import write_json

DECIDED = ("holds", "does not hold")


@dataclass
class Comparison:
    """One claim's committed and rerun verdicts and intervals."""

    id: str
    committed: str
    committed_ci: list[float]
    rerun: str
    rerun_ci: list[float]

    @property
    def flip(self) -> bool:
        """True for a change between ``holds`` and ``does not hold``."""
        return {self.committed, self.rerun} == set(DECIDED)

    @property
    def changed(self) -> bool:
        return self.committed != self.rerun


def record(path: Path, runs: list[tuple[list[int], list[Comparison]]]) -> None:
    """Store the comparisons under ``stability`` in the committed results.json, atomically:
    one entry per rerun (its seeds, claims and flips) and the flips of all reruns."""
    data = json.loads(path.read_text())
    entries = [
        {
            "seeds": list(seeds),
            "claims": [dict(asdict(r), flip=r.flip) for r in rows],
            "flips": sum(r.flip for r in rows),
        }
        for seeds, rows in runs
    ]
    data["stability"] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": entries,
        "flips": sum(r.flip for _, rows in runs for r in rows),
    }
    write_json(path, data)


def still_valid(stability: dict, data: dict) -> bool:
    """True when a ``stability`` record's committed verdicts and intervals are those of
    ``data``'s claims (a rerun that reproduced the committed results keeps its record)."""
    now = {c["id"]: (c.get("verdict"), list(c.get("ci") or [])) for c in data.get("claims", [])}
    return all(
        now.get(c["id"]) == (c["committed"], list(c["committed_ci"]))
        for run in stability.get("runs", [])
        for c in run["claims"]
    )


def carry_over(old: Path, new: Path) -> bool:
    """Copy the ``stability`` record of results.json ``old`` into ``new`` (atomically) when
    it is still valid for ``new`` (:func:`still_valid`); True when it was copied."""
    try:
        kept, data = json.loads(old.read_text()).get("stability"), json.loads(new.read_text())
    except (OSError, ValueError):
        return False
    if not kept or "stability" in data or not still_valid(kept, data):
        return False
    data["stability"] = kept
    write_json(new, data)
    return True


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3g}, {ci[1]:.3g}]" if len(ci) == 2 and None not in ci else "[no interval]"


def report_lines(rows: list[Comparison]) -> list[str]:
    """One line per claim: committed verdict and interval -> rerun verdict and interval."""
    lines = []
    for r in rows:
        mark = "FLIP" if r.flip else "changed" if r.changed else "same"
        lines.append(
            f"  {r.id:5s} {mark:8s} committed {r.committed} {_ci(r.committed_ci)}"
            f"  ->  rerun {r.rerun} {_ci(r.rerun_ci)}"
        )
    return lines


def stability_markdown(data: dict) -> str:
    """A Markdown table per rerun of a results.json's ``stability`` record (empty when it
    has none)."""
    st = data.get("stability")
    if not st:
        return ""
    rows = []
    for run in st["runs"]:
        rows += [
            f"Rerun with seeds {', '.join(map(str, run['seeds']))} ({st['date']}): {run['flips']} flip(s).",
            "",
            "| id | committed | rerun | flip |",
            "|---|---|---|---|",
        ]
        rows += [
            f"| {c['id']} | {c['committed']} {_ci(c['committed_ci'])} | "
            f"{c['rerun']} {_ci(c['rerun_ci'])} | {'**yes**' if c['flip'] else 'no'} |"
            for c in run["claims"]
        ] + [""]
    return "\n".join(rows).rstrip()
