"""Parameter sweeps: a grid of settings of one study, and how its claims move across them.

``ipkit sweep STUDY -p name=a,b,c -p other=x,y`` runs every combination (a list-valued
parameter takes its sets separated by ``;``: ``-p seeds="0,1,2;101,102,103"``). Each
setting runs into ``figures/<study>/<profile>/sweeps/<sweep-id>/<setting>/``; the summary
beside them gives, for each claim and setting, the deciding quantity with its interval and
the verdict, read from the settings' ``results.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.paths import figures_dir
from ..notebook.params import ParamError, coerce
from ..notebook.registry import StudyInfo, lookup, resolve

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Setting:
    """One point of a grid: the swept parameters' values, its folder name, and the
    parameters every setting of the sweep shares (``fixed``)."""

    name: str
    values: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def params(self) -> dict[str, Any]:
        """The parameters this setting runs with: the fixed ones and the swept values."""
        return {**self.fixed, **self.values}


def parse_grid(info: StudyInfo, pairs: list[str]) -> dict[str, list[Any]]:
    """``["name=a,b", "seeds=0,1;2,3"]`` -> ``{"name": ["a", "b"], "seeds": [[0, 1], [2, 3]]}``,
    each value coerced and checked against the parameter's type and allowed values."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ParamError(f"sweep parameter '{pair}' needs values: write -p name=a,b,c")
        name, text = (s.strip() for s in pair.split("=", 1))
        p = lookup(info, name)
        if name in grid:
            raise ParamError(f"parameter '{name}' is swept twice: give all its values in one -p")
        items = text.split(";") if p.type.startswith("list[") else text.split(",")
        grid[name] = [coerce(p, item) for item in items if item.strip()]
        if not grid[name]:
            raise ParamError(f"parameter '{name}' has no values: write -p {name}=a,b,c")
    if not grid:
        raise ParamError("a sweep needs at least one parameter: -p name=a,b,c")
    return grid


def _text(value: Any) -> str:
    text = "-".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)
    return re.sub(r"[^A-Za-z0-9._-]", "-", text)


def settings(grid: dict[str, list[Any]], fixed: dict[str, Any] | None = None) -> list[Setting]:
    """Every combination of the grid's values, in order, each named ``a=1__b=x``; every
    setting also runs with the ``fixed`` parameters."""
    out = []
    for combo in itertools.product(*grid.values()):
        values = dict(zip(grid, combo))
        out.append(Setting("__".join(f"{k}={_text(v)}" for k, v in values.items()), values, dict(fixed or {})))
    names = [s.name for s in out]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ParamError(f"setting {repeated[0]} appears twice in the grid: give each value once")
    return out


def sweep_id(grid: dict[str, list[Any]]) -> str:
    """A name for the sweep: the swept parameters and a short hash of their values."""
    digest = hashlib.sha1(json.dumps(grid, sort_keys=True).encode()).hexdigest()[:6]
    return f"{'+'.join(grid)}-{digest}"


def validate(info: StudyInfo, profile: str, grid: list[Setting]) -> None:
    """Resolve every setting before anything runs; a bad one raises ParamError naming it."""
    for s in grid:
        try:
            resolve(info, profile, s.params)
        except ParamError as err:
            raise ParamError(f"setting {s.name}: {err}") from None


def deciding_value(claim: dict) -> float:
    """The claim's deciding quantity: the part whose interval is the claim's, else its first
    part, else (rows written before claims carried intervals) the first number measured;
    NaN for a part that was not measured (its value is null in results.json)."""
    parts = claim.get("parts") or []
    for part in parts:
        if claim.get("ci") is not None and part.get("ci") == claim.get("ci"):
            return math.nan if part.get("value") is None else float(part["value"])
    if parts and parts[0].get("value") is not None:
        return float(parts[0]["value"])
    found = NUMBER.search(claim.get("measured", "").split("=", 1)[-1])
    return float(found.group(0)) if found else math.nan


def verdict(claim: dict) -> str:
    """A results.json claim's verdict; rows written before verdicts existed: from ``holds``."""
    return claim.get("verdict") or ("holds" if claim["holds"] else "does not hold")


def claim_row(claim: dict) -> dict[str, Any]:
    """A claim of results.json as a summary row: verdict, value, interval and threshold
    (rows without ``verdict`` or ``ci`` fall back to ``holds`` and no interval)."""
    ci = claim.get("ci") or [math.nan, math.nan]
    threshold = claim.get("threshold")
    return {
        "claim": claim["id"],
        "verdict": verdict(claim),
        "value": deciding_value(claim),
        "ci_lo": ci[0],
        "ci_hi": ci[1],
        "threshold": math.nan if threshold is None else threshold,
        "measured": claim.get("measured", ""),
    }


def summary(
    grid: list[Setting], folders: dict[str, Path], errors: dict[str, str], defaults: dict[str, Any] | None = None
):
    """One row per setting and claim (a failed setting: one row saying how it failed);
    with the profile's ``defaults``, column ``default`` marks the setting whose swept values
    are all the profile's own (the point that should reproduce the committed run)."""
    import pandas as pd

    rows = []
    for s in grid:
        base: dict[str, Any] = {"setting": s.name, **{k: _text(v) for k, v in s.values.items()}}
        if defaults is not None:
            base["default"] = all(k in defaults and _text(defaults[k]) == _text(v) for k, v in s.values.items())
        path = folders[s.name] / "results.json"
        if s.name in errors or not path.exists():
            rows.append(
                {**base, "claim": "", "verdict": "run failed", "measured": errors.get(s.name, "no results.json")}
            )
            continue
        rows += [{**base, **claim_row(c)} for c in json.loads(path.read_text())["claims"]]
    return pd.DataFrame(rows)


# Reruns of a committed profile (``ipkit verify``: a sweep over seed sets), checked before
# the run machinery loads.


def committed_results(info: StudyInfo, profile: str) -> Path:
    """The committed results.json of ``info`` in ``profile``, or a ParamError naming the fix."""
    path = figures_dir() / info.id / profile / "results.json"
    if not path.is_file():
        raise ParamError(
            f"no committed results for {info.id} (profile {profile}) at {path}: "
            f"run `ipkit run {info.id} --profile {profile}` first"
        )
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ParamError(
            f"committed results {path} are unreadable ({err}): rerun `ipkit run {info.id} --profile {profile}`"
        ) from None
    return path


def rerun_params(committed: dict, info: StudyInfo, seeds: list[int], given: dict[str, Any]) -> dict[str, Any]:
    """The committed run's parameters (those the notebook declares), with ``seeds`` and
    ``given`` replacing theirs."""
    params = {k: v for k, v in committed["params"].items() if k in info.params and k != "profile"}
    return {**params, **given, "seeds": list(seeds)}


def seed_sets(info: StudyInfo, text: str) -> list[list[int]]:
    """``"101,102,103;201,202,203"`` -> one seed list per rerun, each checked as the study's
    ``seeds`` parameter (a ParamError names a bad one)."""
    sets = [coerce(info.params["seeds"], part) for part in text.split(";") if part.strip()]
    if not sets:
        raise ParamError("--seeds needs at least one seed set, e.g. --seeds 101,102,103")
    if len({tuple(s) for s in sets}) != len(sets):
        raise ParamError("--seeds lists a seed set twice: give each once")
    return sets
