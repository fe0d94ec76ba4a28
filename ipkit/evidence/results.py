"""Claim rows and results files of a study run.

A claim row states one of the paper's claims, quotes the paper's own words and its
quantifier ("up to", "every", "on average", "marginal", a direction), and carries its
evidence: for each deciding quantity (an :class:`Evidence`) the value this run measured,
a bootstrap interval over the independent trainings behind it
(:func:`ipkit.core.stats.bootstrap_draws`), the threshold declared as a notebook parameter
before the run, which side of it holds, the number of units and of trainings behind it,
and, where the setting bounds what the quantity can reach, that ceiling. The verdict is
computed, never typed:

- the intervals of a claim with k parts are *simultaneous*: each is taken at Bonferroni's
  level ``1 - 0.05/k`` (:func:`ipkit.core.stats.familywise_level`), so the claim as a whole
  keeps 95% coverage;
- a part is ``untestable here`` when its threshold lies beyond its ceiling (no result of
  this setting could reach it), ``holds`` when its whole interval lies on the holding side
  of the threshold, ``does not hold`` when it lies wholly on the other side, else
  ``inconclusive``;
- the claim ``does not hold`` when a part does not hold, else is ``untestable here`` when a
  part is, else ``inconclusive`` when a part is, else ``holds``;
- a decided verdict (holds / does not hold) resting on fewer than :data:`MIN_TRAININGS`
  independent trainings is capped at ``inconclusive``, and the row says why.

:func:`write_results` writes ``results.json`` (schema :data:`SCHEMA_VERSION`, checked by
:func:`check_results`; ``holds`` stays a boolean, true only for ``holds``) and
``results.md``; every results
file, table and figure is written atomically (:func:`ipkit.core.files.write_atomic`).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import platform
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .. import __version__
from ..core.files import write_atomic, write_json
from ..core.seeds import SEED_ROLES
from ..core.stats import LEVEL, Statistic, bootstrap_draws, familywise_level, percentile_interval
from ..methods.train import bf16_archs

VERDICTS = ("holds", "does not hold", "inconclusive", "untestable here")
SIDES = ("above", "below")
QUANTIFIERS = ("every", "up to", "on average", "marginal", "direction")
MIN_TRAININGS = 3
#: The results.json schema :func:`write_results` writes (its ``schema_version``). Version 1
#: requires ``threads`` (the CPU threads, None on a GPU); a file without ``schema_version``
#: is version 0, written before the field, whose threads only its ``device`` line names:
#: :func:`upgrade` migrates it.
SCHEMA_VERSION = 1
RESULT_KEYS = {
    "study": str,
    "title": str,
    "profile": str,
    "date": str,
    "ipkit": str,
    "device": str,
    "torch": str,
    "runtime_s": float,
    "params": dict,
    "metrics": dict,
    "claims": list,
    "figures": list,
    "tables": list,
}
CLAIM_KEYS = {
    "id": str,
    "statement": str,
    "paper": str,
    "measured": str,
    "holds": bool,
    "verdict": str,
    "ci": list,
    "threshold": float,
    "n": int,
    "unit": str,
    "parts": list,
    "trainings": int,
    "level": float,
    "quantifier": str,
    "paper_words": str,
}
OPTIONAL_CLAIM_KEYS = {"sensitivity": str, "ceiling": float, "why": str, "alternatives": dict, "robust": bool}


def verdict(ci: tuple[float, float], threshold: float, holds_when: str, ceiling: float | None = None) -> str:
    """The verdict of one interval against a threshold.

    ``holds_when="above"``: holds when ``lo > threshold``, does not hold when
    ``hi <= threshold``. ``"below"``: holds when ``hi < threshold``, does not hold when
    ``lo >= threshold``. An undefined (NaN) interval is inconclusive. With a ``ceiling``
    (the best value the quantity can reach in this setting: an upper bound for ``above``,
    a lower bound for ``below``) that does not pass the threshold: ``untestable here``.
    """
    if holds_when not in SIDES:
        raise ValueError(f"holds_when must be one of {SIDES}, got {holds_when!r}")
    if (
        ceiling is not None
        and math.isfinite(ceiling)
        and (ceiling <= threshold if holds_when == "above" else ceiling >= threshold)
    ):
        return "untestable here"
    lo, hi = ci
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return "inconclusive"
    if holds_when == "above":
        return "holds" if lo > threshold else "does not hold" if hi <= threshold else "inconclusive"
    return "holds" if hi < threshold else "does not hold" if lo >= threshold else "inconclusive"


@dataclass
class Evidence:
    """One deciding quantity of a claim: value, interval, threshold, the units and the
    independent trainings behind it, and the ceiling the setting puts on it (if any).

    ``draws`` are the bootstrap values the interval is read from, so :func:`claim` can take
    the interval again at the claim's familywise ``level``.
    """

    name: str
    value: float
    ci: tuple[float, float]
    threshold: float
    holds_when: str
    n: int
    unit: str
    trainings: int = 1
    ceiling: float | None = None
    level: float = LEVEL
    draws: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def verdict(self) -> str:
        return verdict(self.ci, self.threshold, self.holds_when, self.ceiling)

    def at_level(self, level: float) -> Evidence:
        """The same quantity with its interval taken at ``level`` from its draws (a part
        without draws, e.g. :func:`not_measured`, keeps its interval)."""
        if self.draws is None:
            return replace(self, level=level)
        if level == self.level:
            return self
        return replace(self, ci=percentile_interval(self.draws, level), level=level)

    def margin(self) -> float:
        """Distance of the interval's nearer edge past the threshold (negative: not past)."""
        lo, hi = self.ci
        return lo - self.threshold if self.holds_when == "above" else self.threshold - hi

    def text(self) -> str:
        lo, hi = self.ci
        bound = "" if self.ceiling is None else f" (ceiling {_num(self.ceiling)})"
        return f"{self.name} = {_num(self.value)} [{_num(lo)}, {_num(hi)}]{bound}"


def _trainings(frame: pd.DataFrame, group: str | None) -> int:
    for col in (group, "seed"):
        if col is not None and col in frame.columns and len(frame):
            return int(frame[col].nunique())
    return 1


def part(
    name: str,
    frame: pd.DataFrame,
    statistic: Statistic,
    *,
    threshold: float,
    holds_when: str,
    unit: str,
    group: str | None = "seed",
    trainings: int | None = None,
    ceiling: float | None = None,
    empty: str = "no rows",
) -> Evidence:
    """One deciding part of a claim: ``statistic`` measured on ``frame`` (one row per unit)
    with its bootstrap interval, or, when ``frame`` has no rows, :func:`not_measured` with
    ``empty`` as its reason.

    ``group`` is the outer resampling level: the independent training (seed) each row
    comes from, see :func:`ipkit.core.stats.bootstrap_draws`. ``trainings`` is how many
    independent trainings stand behind the quantity (default: the distinct values of the
    ``group`` column, else of a ``seed`` column, else 1). ``ceiling``: the best value the
    quantity can reach in this setting, when the setting bounds it (see :func:`verdict`).
    """
    if holds_when not in SIDES:
        raise ValueError(f"holds_when must be one of {SIDES}, got {holds_when!r}")
    if frame.empty:
        return not_measured(name, threshold=threshold, holds_when=holds_when, unit=unit, why=empty)
    value = float(statistic(frame))
    groups = frame[group].nunique() if group is not None and group in frame.columns else 1
    label = f"{unit}s" if groups <= 1 else f"{unit}s over {groups} {group}s"
    draws = bootstrap_draws(frame, statistic, group=group)
    return Evidence(
        name,
        value,
        percentile_interval(draws),
        float(threshold),
        holds_when,
        int(len(frame)),
        label,
        _trainings(frame, group) if trainings is None else int(trainings),
        None if ceiling is None else float(ceiling),
        LEVEL,
        draws,
    )


def not_measured(name: str, *, threshold: float, holds_when: str, unit: str, why: str = "not measured") -> Evidence:
    """A part of a claim this run did not measure (no units, no trainings), named
    ``"<name> (<why>)"``: its value and interval are undefined, so the claim is at most
    ``inconclusive`` and its row says ``not measured: <name> (<why>)``."""
    if holds_when not in SIDES:
        raise ValueError(f"holds_when must be one of {SIDES}, got {holds_when!r}")
    return Evidence(
        f"{name} ({why})", float("nan"), (float("nan"), float("nan")), float(threshold), holds_when, 0, f"{unit}s", 0
    )


@dataclass
class Claim:
    """One checkable claim: what the paper says, what this run measured, and the verdict.

    ``ci``, ``threshold``, ``n`` and ``unit`` are those of the deciding part: the first part
    that does not hold, else the first untestable one, else the first inconclusive one,
    else the one with the least margin. ``trainings`` is the fewest independent trainings
    behind any part; ``level`` the per-part (familywise) interval level; ``why`` says what
    capped or bounded the verdict.
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
    trainings: int = 1
    level: float = LEVEL
    quantifier: str = "direction"
    paper_words: str = ""
    ceiling: float | None = None
    why: str | None = None
    sensitivity: str | None = None


def claim(
    id: str,
    statement: str,
    paper: str,
    *parts: Evidence,
    quantifier: str,
    paper_words: str,
    sensitivity: str | None = None,
) -> Claim:
    """A claim row from its deciding quantities, judged at the familywise level.

    ``quantifier`` (one of :data:`QUANTIFIERS`) is how the paper words the claim and
    ``paper_words`` its own words (quoted from the paper's brief); the study's statistics
    must match the quantifier ("up to": the best model; "every": a part per member;
    "on average": the mean; "marginal": two-sided).
    """
    if not parts or not all(isinstance(e, Evidence) for e in parts):
        raise TypeError(f"claim {id}: give one or more Evidence parts (results.part, results.not_measured)")
    if quantifier not in QUANTIFIERS:
        raise ValueError(f"claim {id}: quantifier must be one of {QUANTIFIERS}, got {quantifier!r}")
    level = familywise_level(len(parts))
    parts = tuple(e.at_level(level) for e in parts)
    verdicts = [e.verdict for e in parts]
    for overall in ("does not hold", "untestable here", "inconclusive"):
        if overall in verdicts:
            decider = parts[verdicts.index(overall)]
            break
    else:
        overall, decider = "holds", min(parts, key=Evidence.margin)
    trainings = min(e.trainings for e in parts)
    why = None
    if overall == "untestable here":
        why = (
            f"{decider.name}: the threshold {_num(decider.threshold)} lies beyond what this "
            f"setting can reach ({_num(decider.ceiling)})"
        )
    elif overall == "inconclusive" and decider.n == 0:
        why = f"not measured: {decider.name}"
    elif overall in ("holds", "does not hold") and trainings < MIN_TRAININGS:
        why = (
            f"{trainings} training{'s' if trainings != 1 else ''} (at least {MIN_TRAININGS} "
            f"decide); uncapped: {overall}"
        )
        overall = "inconclusive"
    return Claim(
        id,
        statement,
        paper,
        "; ".join(e.text() for e in parts),
        overall == "holds",
        overall,
        [float(decider.ci[0]), float(decider.ci[1])],
        decider.threshold,
        decider.n,
        decider.unit,
        [_part_dict(e) for e in parts],
        trainings,
        level,
        quantifier,
        paper_words,
        decider.ceiling,
        why,
        sensitivity,
    )


def _part_dict(e: Evidence) -> dict:
    d = {
        "name": e.name,
        "value": e.value,
        "ci": list(e.ci),
        "threshold": e.threshold,
        "holds_when": e.holds_when,
        "n": e.n,
        "unit": e.unit,
        "trainings": e.trainings,
        "verdict": e.verdict,
    }
    if e.ceiling is not None:
        d["ceiling"] = e.ceiling
    return d


def claim_dict(c: Claim) -> dict:
    """A claim row as stored in results.json (optional keys only when set)."""
    d = _plain(asdict(c))
    for key in OPTIONAL_CLAIM_KEYS:
        if d.get(key) is None:
            d.pop(key, None)
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


def verdict_text(c: dict) -> str:
    """A claim's verdict as shown in tables: bold, with what capped or bounded it."""
    v = c.get("verdict", "holds" if c["holds"] else "does not hold")
    return f"**{v}**" + (f" ({c['why']})" if c.get("why") else "")


def claims_markdown(claims: list[dict]) -> str:
    """A Markdown table of claim rows: the paper's words and quantifier, what was measured,
    the verdict, the deciding interval (at the claim's familywise level) and threshold, the
    units and the independent trainings behind it, and, where a study declares
    alternatives, the verdict at each."""
    rows = [
        "| id | claim | paper | measured | verdict | deciding CI (level) | threshold | n | trainings |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in claims:
        ci = c.get("ci")
        ci_text = f"[{_num(ci[0])}, {_num(ci[1])}]" if ci and None not in ci else "-"
        level = f" ({c['level']:.4g})" if c.get("level") else ""
        words = f"{c['paper']}" + (f' ({c["quantifier"]}: "{c["paper_words"]}")' if c.get("paper_words") else "")
        verdict_cell = verdict_text(c)
        if c.get("alternatives"):
            verdict_cell += "; at the alternatives: " + ", ".join(f"{k}: {v}" for k, v in c["alternatives"].items())
            verdict_cell += " (robust)" if c.get("robust") else " (not robust)"
        rows.append(
            f"| {c['id']} | {c['statement']} | {words} | {c['measured']} | "
            f"{verdict_cell} | {ci_text}{level} | {_num(c.get('threshold', '-'))} | "
            f"{c.get('n', '-')} {c.get('unit', '')} | {c.get('trainings', '-')} |"
        )
    return "\n".join(rows)


def write_results(
    run, metrics: dict[str, Any], claims: list[Claim], hyperparameters: dict[str, Any] | None = None
) -> Path:
    """Write ``results.json`` and ``results.md`` for ``run`` and return the JSON path.

    ``hyperparameters`` are the study's declared constants that are not notebook
    parameters (PGD steps of a probe, monitor sizes, ...); the seed roles are added.
    """
    data = {
        "schema_version": SCHEMA_VERSION,
        "study": run.study,
        "title": run.info.title,
        "profile": run.profile,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ipkit": __version__,
        "device": torch.cuda.get_device_name()
        if run.device.type == "cuda"
        else f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "threads": torch.get_num_threads() if run.device.type == "cpu" else None,
        "bf16_archs": bf16_archs(run.device),
        "runtime_s": round(float(time.time() - run.started), 1),
        "params": _plain(run.values),
        "seed_roles": dict(SEED_ROLES),
        "hyperparameters": _plain(hyperparameters or {}),
        "metrics": _plain(metrics),
        "claims": [claim_dict(c) for c in claims],
        "figures": list(run.figures),
        "tables": list(run.tables),
    }
    check_results(data)
    path = run.out / "results.json"
    write_json(path, data)
    write_atomic(run.out / "results.md", lambda tmp: tmp.write_text(results_markdown(data)))
    return path


def results_markdown(data: dict) -> str:
    """results.md: title, profile, date, device and run time, the claim rows and, when
    sensitivity sweeps were drawn (:mod:`ipkit.evidence.sensitivity`), their findings."""
    md = [
        f"# {data['title']}",
        "",
        f"Profile `{data['profile']}`, {data['date']}, {data['device']}, {data['runtime_s']:.0f} s.",
        "",
        claims_markdown(data["claims"]),
        "",
    ]
    if data.get("sensitivity"):
        md += ["## What would make it hold", "", findings_markdown(data["sensitivity"]), ""]
    if data.get("alternatives"):
        md += ["## At the alternatives the defaults were chosen among", "", findings_markdown(data["alternatives"]), ""]
    return "\n".join(md)


def findings_markdown(found: list[dict[str, Any]]) -> str:
    """Sensitivity findings (:func:`ipkit.evidence.sensitivity.findings`) as a Markdown
    list, each naming its table."""
    return "\n".join(f"- {f['text']} Table: `{f['table']}`." for f in found)


def schema_version(data: dict) -> int:
    """The schema version of a results.json's contents (0: written before the field)."""
    return data.get("schema_version", 0)


def upgrade(data: dict) -> dict:
    """``data`` at the current schema (:data:`SCHEMA_VERSION`), the one migration there is:
    a version-0 file gets ``threads`` from its ``device`` line (``cpu (x86_64, 1 threads)``;
    None on a GPU) unless it has the field, and its ``schema_version`` first. Current
    contents come back unchanged; no number is touched."""
    if schema_version(data) >= SCHEMA_VERSION:
        return data
    out = {"schema_version": SCHEMA_VERSION, **{k: v for k, v in data.items() if k != "schema_version"}}
    if "threads" not in out:
        found = re.fullmatch(r"cpu \(.*, (\d+) threads\)", str(data.get("device", "")))
        out["threads"] = int(found.group(1)) if found else None
    return out


def upgrade_file(path: Path) -> bool:
    """Rewrite the results.json at ``path`` at the current schema (:func:`upgrade`), atomically;
    True when it changed. ``ipkit report`` runs it over every results.json it shows."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or schema_version(data) >= SCHEMA_VERSION:
        return False
    write_json(path, upgrade(data))
    return True


def recorded_threads(data: dict) -> int | None:
    """The CPU thread count a results.json was made with (its ``threads``; None for a CUDA
    run); an older file is read through :func:`upgrade`."""
    threads = upgrade(data).get("threads")
    return None if threads is None else int(threads)


def check_results(data: dict) -> None:
    """Raise ValueError unless ``data`` follows the results.json schema."""
    if not isinstance(data, dict):
        raise ValueError(f"results.json holds a {type(data).__name__}, not a table")
    version = schema_version(data)
    if version != SCHEMA_VERSION:
        fix = "update ipkit" if isinstance(version, int) and version > SCHEMA_VERSION else "`ipkit report` upgrades it"
        raise ValueError(f"results.json schema_version {version!r} is not {SCHEMA_VERSION}: {fix}")
    if "threads" not in data:
        raise ValueError(f"results.json of schema_version {version} lacks 'threads'")
    for k, t in RESULT_KEYS.items():
        if k not in data:
            raise ValueError(f"results.json lacks '{k}'")
        if not isinstance(data[k], t) and not (t is float and isinstance(data[k], int)):
            raise ValueError(f"results.json '{k}' should be {t.__name__}")
    for c in data["claims"]:
        if not isinstance(c, dict):
            raise ValueError(f"results.json 'claims' holds a {type(c).__name__}, not a claim table")
        missing, extra = set(CLAIM_KEYS) - set(c), set(c) - set(CLAIM_KEYS) - set(OPTIONAL_CLAIM_KEYS)
        if missing or extra:
            raise ValueError(f"claim {c.get('id')}: missing keys {sorted(missing)}, unknown keys {sorted(extra)}")
        for k, t in {**CLAIM_KEYS, **OPTIONAL_CLAIM_KEYS}.items():
            if k in c and not isinstance(c[k], t) and not (t is float and isinstance(c[k], int)):
                raise ValueError(f"claim {c.get('id')}: '{k}' should be {t.__name__}")
        if c["verdict"] not in VERDICTS:
            raise ValueError(f"claim {c['id']}: verdict {c['verdict']!r} not one of {VERDICTS}")
        if c["quantifier"] not in QUANTIFIERS:
            raise ValueError(f"claim {c['id']}: quantifier {c['quantifier']!r} not one of {QUANTIFIERS}")
        if c["holds"] != (c["verdict"] == "holds"):
            raise ValueError(f"claim {c['id']}: holds must be true exactly when verdict is 'holds'")


def frame(claims: list[Claim]):
    """Claim rows as a pandas DataFrame, for display in a notebook."""
    cols = [
        "id",
        "statement",
        "quantifier",
        "measured",
        "verdict",
        "ci",
        "level",
        "threshold",
        "n",
        "unit",
        "trainings",
        "why",
    ]
    return pd.DataFrame([claim_dict(c) for c in claims]).reindex(columns=cols)
