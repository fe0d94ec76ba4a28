"""Claim rows and results files of a study run.

A claim row states one of the paper's claims, quotes the paper's value or direction, and
carries its evidence: for each deciding quantity (an :class:`Evidence`) the value this run
measured, a 95% bootstrap interval (:func:`ipkit.stats.bootstrap_ci`), the threshold
declared as a notebook parameter before the run, which side of it holds, and the number
of independent units behind it. The verdict is computed, never typed:

- ``holds`` when every part's whole interval lies on the holding side of its threshold;
- ``does not hold`` when some part's whole interval lies on the other side;
- ``inconclusive`` otherwise (an interval straddles a threshold).

:func:`write_results` writes ``results.json`` (schema checked by :func:`check_results`;
``holds`` stays a boolean, true only for ``holds``) and ``results.md``; every results
file, table and figure is written atomically (:func:`write_atomic`).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .seeds import SEED_ROLES
from .stats import Statistic, bootstrap_ci

VERDICTS = ("holds", "does not hold", "inconclusive")
SIDES = ("above", "below")
RESULT_KEYS = {"study": str, "title": str, "profile": str, "date": str, "ipkit": str,
               "device": str, "torch": str, "runtime_s": float, "params": dict,
               "metrics": dict, "claims": list, "figures": list, "tables": list}
CLAIM_KEYS = {"id": str, "statement": str, "paper": str, "measured": str, "holds": bool,
              "verdict": str, "ci": list, "threshold": float, "n": int, "unit": str,
              "parts": list}
OPTIONAL_CLAIM_KEYS = {"sensitivity": str}


def verdict(ci: tuple[float, float], threshold: float, holds_when: str) -> str:
    """``holds`` / ``does not hold`` / ``inconclusive`` for an interval against a threshold.

    ``holds_when="above"``: holds when ``lo > threshold``, does not hold when
    ``hi <= threshold``. ``"below"``: holds when ``hi < threshold``, does not hold when
    ``lo >= threshold``. An undefined (NaN) interval is inconclusive.
    """
    if holds_when not in SIDES:
        raise ValueError(f"holds_when must be one of {SIDES}, got {holds_when!r}")
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if holds_when == "above":
        return "holds" if lo > threshold else "does not hold" if hi <= threshold else "inconclusive"
    return "holds" if hi < threshold else "does not hold" if lo >= threshold else "inconclusive"


@dataclass
class Evidence:
    """One deciding quantity of a claim: value, interval, threshold and units behind it."""

    name: str
    value: float
    ci: tuple[float, float]
    threshold: float
    holds_when: str
    n: int
    unit: str

    @property
    def verdict(self) -> str:
        return verdict(self.ci, self.threshold, self.holds_when)

    def margin(self) -> float:
        """Distance of the interval's nearer edge past the threshold (negative: not past)."""
        lo, hi = self.ci
        return lo - self.threshold if self.holds_when == "above" else self.threshold - hi

    def text(self) -> str:
        lo, hi = self.ci
        return f"{self.name} = {_num(self.value)} [{_num(lo)}, {_num(hi)}]"


def evidence(name: str, frame: pd.DataFrame, statistic: Statistic, *, threshold: float,
             holds_when: str, unit: str, group: str | None = "seed") -> Evidence:
    """Measure ``statistic`` on ``frame`` (one row per independent unit) with its bootstrap
    interval; ``group`` is the outer resampling level (seeds), see :func:`bootstrap_ci`."""
    if holds_when not in SIDES:
        raise ValueError(f"holds_when must be one of {SIDES}, got {holds_when!r}")
    value = float(statistic(frame)) if len(frame) else float("nan")
    groups = frame[group].nunique() if group is not None and group in frame.columns else 1
    label = f"{unit}s" if groups <= 1 else f"{unit}s over {groups} {group}s"
    return Evidence(name, value, bootstrap_ci(frame, statistic, group=group), float(threshold),
                    holds_when, int(len(frame)), label)


@dataclass
class Claim:
    """One checkable claim: what the paper says, what this run measured, and the verdict.

    ``ci``, ``threshold``, ``n`` and ``unit`` are those of the deciding part: the first part
    that does not hold, else the first inconclusive one, else the one with the least margin.
    """

    id: str
    statement: str
    paper: str
    measured: str
    holds: bool
    verdict: str
    ci: list[float]
    threshold: float
    n: int
    unit: str
    parts: list[dict] = field(default_factory=list)
    sensitivity: str | None = None


def claim(id: str, statement: str, paper: str, *parts: Evidence,
          sensitivity: str | None = None) -> Claim:
    """A claim row from its deciding quantities; all parts must hold for ``holds``."""
    if not parts or not all(isinstance(e, Evidence) for e in parts):
        raise TypeError(f"claim {id}: give one or more Evidence (results.evidence) parts")
    verdicts = [e.verdict for e in parts]
    if "does not hold" in verdicts:
        overall, decider = "does not hold", parts[verdicts.index("does not hold")]
    elif "inconclusive" in verdicts:
        overall, decider = "inconclusive", parts[verdicts.index("inconclusive")]
    else:
        overall, decider = "holds", min(parts, key=Evidence.margin)
    return Claim(id, statement, paper, "; ".join(e.text() for e in parts), overall == "holds",
                 overall, [float(decider.ci[0]), float(decider.ci[1])], decider.threshold,
                 decider.n, decider.unit, [_part_dict(e) for e in parts], sensitivity)


def _part_dict(e: Evidence) -> dict:
    return {"name": e.name, "value": e.value, "ci": list(e.ci), "threshold": e.threshold,
            "holds_when": e.holds_when, "n": e.n, "unit": e.unit, "verdict": e.verdict}


def claim_dict(c: Claim) -> dict:
    """A claim row as stored in results.json (``sensitivity`` only when set)."""
    d = _plain(asdict(c))
    if d.get("sensitivity") is None:
        d.pop("sensitivity", None)
    return d


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else round(float(v), 6)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if hasattr(v, "item") and callable(v.item):
        return _plain(v.item())
    return v


def _num(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "nan" if math.isnan(float(v)) else f"{float(v):.3g}"
    return str(v)


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``, so a
    reader sees the old file or the whole new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON to ``path`` (atomically: :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def write_table(df, path: Path) -> Path:
    """Write a pandas DataFrame as ``path.csv`` and ``path.md`` (atomically); return the .md path."""
    write_atomic(path.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    text = df.to_markdown(index=False, floatfmt=".3f") + "\n"
    return write_atomic(path.with_suffix(".md"), lambda tmp: tmp.write_text(text))


def claims_markdown(claims: list[dict]) -> str:
    """A Markdown table of claim rows: verdict, deciding interval and threshold, units."""
    rows = ["| id | claim | paper | measured [95% CI] | verdict | deciding CI | threshold | n |",
            "|---|---|---|---|---|---|---|---|"]
    for c in claims:
        ci = c.get("ci")
        ci_text = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci and None not in ci else "-"
        rows.append(f"| {c['id']} | {c['statement']} | {c['paper']} | {c['measured']} | "
                    f"**{c.get('verdict', 'holds' if c['holds'] else 'does not hold')}** | "
                    f"{ci_text} | {_num(c.get('threshold', '-'))} | "
                    f"{c.get('n', '-')} {c.get('unit', '')} |")
    return "\n".join(rows)


def write_results(run, metrics: dict[str, Any], claims: list[Claim],
                  hyperparameters: dict[str, Any] | None = None) -> Path:
    """Write ``results.json`` and ``results.md`` for ``run`` and return the JSON path.

    ``hyperparameters`` are the study's declared constants that are not notebook
    parameters (PGD steps of a probe, monitor sizes, ...); the seed roles are added.
    """
    import torch

    from .train import bf16_archs

    data = {
        "study": run.study, "title": run.info.title, "profile": run.profile,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ipkit": __import__("ipkit").__version__,
        "device": torch.cuda.get_device_name() if run.device.type == "cuda" else
        f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads() if run.device.type == "cpu" else None,
        "bf16_archs": bf16_archs(run.device),
        "runtime_s": round(float(__import__("time").time() - run.started), 1),
        "params": _plain(run.values), "seed_roles": dict(SEED_ROLES),
        "hyperparameters": _plain(hyperparameters or {}), "metrics": _plain(metrics),
        "claims": [claim_dict(c) for c in claims], "figures": list(run.figures),
        "tables": list(run.tables),
    }
    check_results(data)
    path = run.out / "results.json"
    write_json(path, data)
    write_atomic(run.out / "results.md", lambda tmp: tmp.write_text(results_markdown(data)))
    return path


def results_markdown(data: dict) -> str:
    """results.md: title, profile, date, device and run time, the claim rows and, when
    sensitivity sweeps were drawn (:mod:`ipkit.sensitivity`), their findings."""
    md = [f"# {data['title']}", "",
          f"Profile `{data['profile']}`, {data['date']}, {data['device']}, "
          f"{data['runtime_s']:.0f} s.", "", claims_markdown(data["claims"]), ""]
    if data.get("sensitivity"):
        from .sensitivity import markdown

        md += ["## What would make it hold", "", markdown(data["sensitivity"]), ""]
    return "\n".join(md)


def recorded_threads(data: dict) -> int | None:
    """The CPU thread count a results.json was made with: its ``threads`` field, or for a
    run recorded before that field existed, the count in its ``device`` line
    (``cpu (x86_64, 1 threads)``); None for a CUDA run or when neither says."""
    if data.get("threads") is not None:
        return int(data["threads"])
    found = re.fullmatch(r"cpu \(.*, (\d+) threads\)", str(data.get("device", "")))
    return int(found.group(1)) if found else None


def check_results(data: dict) -> None:
    """Raise ValueError unless ``data`` follows the results.json schema."""
    for k, t in RESULT_KEYS.items():
        if k not in data:
            raise ValueError(f"results.json lacks '{k}'")
        if not isinstance(data[k], t) and not (t is float and isinstance(data[k], int)):
            raise ValueError(f"results.json '{k}' should be {t.__name__}")
    for c in data["claims"]:
        missing, extra = set(CLAIM_KEYS) - set(c), set(c) - set(CLAIM_KEYS) - set(OPTIONAL_CLAIM_KEYS)
        if missing or extra:
            raise ValueError(f"claim {c.get('id')}: missing keys {sorted(missing)}, "
                             f"unknown keys {sorted(extra)}")
        for k, t in {**CLAIM_KEYS, **OPTIONAL_CLAIM_KEYS}.items():
            if k in c and not isinstance(c[k], t) and not (t is float and isinstance(c[k], int)):
                raise ValueError(f"claim {c.get('id')}: '{k}' should be {t.__name__}")
        if c["verdict"] not in VERDICTS:
            raise ValueError(f"claim {c['id']}: verdict {c['verdict']!r} not one of {VERDICTS}")
        if c["holds"] != (c["verdict"] == "holds"):
            raise ValueError(f"claim {c['id']}: holds must be true exactly when verdict is 'holds'")


def frame(claims: list[Claim]):
    """Claim rows as a pandas DataFrame, for display in a notebook."""
    cols = ["id", "statement", "paper", "measured", "verdict", "ci", "threshold", "n", "unit"]
    return pd.DataFrame([claim_dict(c) for c in claims])[cols]
