""" "What would make it hold": declared sensitivity sweeps of the claims a study does not settle.

A study module declares ``SENSITIVITY``, a tuple of :class:`Sweep`: for some of its claims,
the one or two reconstruction choices most likely to decide them (the parameters swept, at
the profile's scale) and the parameters held fixed for the sweep (usually fewer seeds, to
keep it affordable). ``ipkit sweep STUDY --sensitivity`` runs every declared sweep with
:mod:`ipkit.orchestrate.sweep` into ``figures/<study>/<profile>/sweeps/sensitivity-<params>/``.

A study also declares ``ALTERNATIVES`` (the same :class:`Sweep`, no ``fixed``): for each
default chosen after a trial run, the values it was chosen among, the default included
(the forking paths of Gelman & Loken 2013). ``ipkit sweep STUDY --alternatives`` runs
every alternative that is not the default, with the default seeds, into
``sweeps/alternatives-<params>/``; each claim row then carries its verdict at every
alternative (``alternatives``) and ``robust``: the same verdict at all of them.

A sweep never changes a default or a threshold: it is reported beside them. Whenever a
study folder is published (:func:`ipkit.notebook.runtime.publish_folder`), :func:`attach` names each swept
claim's summary table in its ``sensitivity`` field of ``results.json`` and stores one
generated sentence per claim (:func:`finding`) under ``sensitivity``; the notebook's
"What would make it hold" section shows those sentences (:func:`show`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ..core.files import write_atomic, write_json
from .results import findings_markdown, results_markdown

SWEEPS = "sweeps"
KINDS = {"sensitivity": "SENSITIVITY", "alternatives": "ALTERNATIVES"}


@dataclass(frozen=True)
class Sweep:
    """One declared sensitivity sweep of a study.

    ``claims``: the claim ids it speaks to; ``grid``: parameter -> values swept (their
    combinations, each one run of the notebook); ``fixed``: parameters set for every
    setting (say why in ``why``: e.g. one seed instead of three); ``why``: the
    reconstruction choice under test, in a few words.
    """

    claims: tuple[str, ...]
    grid: dict[str, list[Any]]
    why: str
    fixed: dict[str, Any] = field(default_factory=dict)
    kind: str = "sensitivity"

    @property
    def id(self) -> str:
        """The sweep's folder name: its kind (``sensitivity-``, ``alternatives-``) and the
        swept parameters."""
        return f"{self.kind}-" + "+".join(self.grid)

    @property
    def table(self) -> str:
        """The summary table, relative to the profile's figures folder."""
        return f"{SWEEPS}/{self.id}/summary.md"


def declared(module: Any, kind: str = "sensitivity") -> tuple[Sweep, ...]:
    """The study module's ``SENSITIVITY`` or (``kind="alternatives"``) ``ALTERNATIVES``,
    each sweep marked with its kind (empty when it declares none, or ``module`` is None)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
    return tuple(replace(sw, kind=kind) for sw in getattr(module, KINDS[kind], ()))


def study_id(module: Any) -> str:
    """The study id of a study module: the last part of its name (``ipkit.studies.<id>``)."""
    return module.__name__.rpartition(".")[2]


def grid_pairs(sw: Sweep) -> list[str]:
    """The sweep's grid as ``ipkit sweep -p`` arguments (list values joined by ``;``)."""

    def text(v: Any) -> str:
        return ",".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)

    return [
        f"{k}=" + (";" if isinstance(vs[0], (list, tuple)) else ",").join(map(text, vs)) for k, vs in sw.grid.items()
    ]


def _num(v: float) -> str:
    return "nan" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3g}"


def finding(summary: pd.DataFrame, claim_id: str, sw: Sweep) -> str:
    """One sentence on how ``claim_id`` moves along the sweep: each setting's deciding
    value, 95% interval and verdict, the threshold, and where (if anywhere) it holds."""
    rows = summary[summary["claim"] == claim_id]
    failed = summary[summary["verdict"] == "run failed"]["setting"].tolist()
    fixed = ", ".join(f"{k}={v}" for k, v in sw.fixed.items())
    where = f" ({fixed})" if fixed else ""
    if rows.empty:
        return f"{claim_id}: no setting of the sweep over {', '.join(sw.grid)}{where} produced this claim" + (
            f" ({', '.join(failed)} failed)." if failed else "."
        )
    steps = [f"{r.setting} {_num(r.value)} [{_num(r.ci_lo)}, {_num(r.ci_hi)}] {r.verdict}" for r in rows.itertuples()]
    holding = rows[rows["verdict"] == "holds"]["setting"].tolist()
    threshold = rows["threshold"].dropna()
    against = f" against threshold {_num(float(threshold.iloc[0]))}" if len(threshold) else ""
    outcome = f"it holds at {', '.join(holding)}" if holding else "it holds at none of these settings"
    tail = f"; {', '.join(failed)} failed" if failed else ""
    return f"{claim_id} along {sw.why}{where}: " + "; ".join(steps) + f"{against}: {outcome}{tail}."


def summary_path(profile_dir: Path, sw: Sweep) -> Path:
    """The sweep's summary table (CSV) under a profile's figures folder."""
    return profile_dir / SWEEPS / sw.id / "summary.csv"


def _summary(profile_dir: Path, sw: Sweep) -> pd.DataFrame | None:
    path = summary_path(profile_dir, sw)
    if not path.is_file():
        return None
    try:
        summary = pd.read_csv(path, keep_default_na=False, na_values=[""])
    except (OSError, ValueError, pd.errors.ParserError):
        return None
    summary["claim"] = summary["claim"].fillna("").astype(str)
    return summary


def default_point(summary: pd.DataFrame, committed: dict[str, Any] | None, claim_id: str) -> str | None:
    """Whether the sweep's default setting (column ``default``) reproduces the committed
    claim row: ``"reproduces"`` (same verdict and same measured text, every number to three
    significant digits), ``"differs"``, or None when the sweep has no default setting with
    this claim or there is no committed row."""
    if committed is None or "default" not in summary:
        return None
    rows = summary[(summary["default"].astype(str) == "True") & (summary["claim"] == claim_id)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    same = row["verdict"] == (committed.get("verdict") or "") and str(row["measured"]) == str(
        committed.get("measured", "")
    )
    return "reproduces" if same else "differs"


def _point_text(summary: pd.DataFrame, point: str | None) -> str:
    if point is None:
        return ""
    setting = summary[summary["default"].astype(str) == "True"]["setting"].iloc[0]
    return (
        f" Its default point ({setting}) reproduces the committed row."
        if point == "reproduces"
        else f" Its default point ({setting}) differs from the committed row."
    )


def findings(module: Any, profile_dir: Path, kind: str = "sensitivity") -> list[dict[str, Any]]:
    """For each declared sweep of ``kind`` drawn under ``profile_dir`` and each of its
    claims: the sweep id, its table, what it varies, the generated sentence and
    ``default_point`` (:func:`default_point` against the committed results.json)."""
    path = profile_dir / "results.json"
    try:
        committed = {c["id"]: c for c in json.loads(path.read_text()).get("claims", [])}
    except (OSError, ValueError, KeyError, TypeError):
        committed = {}
    out = []
    for sw in declared(module, kind):
        summary = _summary(profile_dir, sw)
        if summary is None:
            continue
        for cid in sw.claims:
            point = default_point(summary, committed.get(cid), cid)
            out.append(
                {
                    "claim": cid,
                    "sweep": sw.id,
                    "table": sw.table,
                    "grid": {k: list(v) for k, v in sw.grid.items()},
                    "fixed": dict(sw.fixed),
                    "default_point": point,
                    "text": finding(summary, cid, sw) + _point_text(summary, point),
                }
            )
    return out


def alternative_verdicts(module: Any, profile_dir: Path) -> dict[str, dict[str, str]]:
    """claim id -> {alternative setting: verdict} over the study's drawn alternatives
    sweeps (a setting that failed or did not produce the claim: ``run failed``)."""
    out: dict[str, dict[str, str]] = {}
    for sw in declared(module, "alternatives"):
        summary = _summary(profile_dir, sw)
        if summary is None:
            continue
        for setting in dict.fromkeys(summary["setting"]):
            rows = summary[summary["setting"] == setting]
            for cid in sw.claims:
                hit = rows[rows["claim"] == cid]["verdict"]
                out.setdefault(cid, {})[str(setting)] = str(hit.iloc[0]) if len(hit) else "run failed"
    return out


def attach(module: Any, profile_dir: Path) -> bool:
    """Make ``profile_dir``'s results.json name exactly the sweeps drawn there: each swept
    claim's summary table (``sensitivity``) and the findings under ``sensitivity``; each
    claim with drawn alternatives its verdict at each (``alternatives``) and ``robust`` (the
    same verdict at every alternative as at the default). A sweep no longer there (removed,
    or drawn under a former protocol) leaves no trace. results.md too; atomic. Returns False
    when there is nothing to update (no results.json, or nothing drawn nor named)."""
    path = profile_dir / "results.json"
    if not path.is_file():
        return False
    found = findings(module, profile_dir)
    alternatives = alternative_verdicts(module, profile_dir)
    data = json.loads(path.read_text())
    named = (
        data.get("sensitivity")
        or data.get("alternatives")
        or any(key in c for c in data.get("claims", []) for key in ("sensitivity", "alternatives"))
    )
    if not found and not alternatives and not named:
        return False
    tables: dict[str, str] = {}
    for f in found:  # a claim swept twice names its first declared sweep
        tables.setdefault(f["claim"], f["table"])
    for c in data.get("claims", []):
        for key in ("sensitivity", "alternatives", "robust"):
            c.pop(key, None)
        if c["id"] in tables:
            c["sensitivity"] = tables[c["id"]]
        if c["id"] in alternatives:
            c["alternatives"] = alternatives[c["id"]]
            c["robust"] = all(v == c["verdict"] for v in alternatives[c["id"]].values())
    data.pop("sensitivity", None)
    data.pop("alternatives", None)
    if found:
        data["sensitivity"] = found
    if alternatives:
        data["alternatives"] = findings(module, profile_dir, "alternatives")
    write_json(path, data)
    write_atomic(path.with_suffix(".md"), lambda tmp: tmp.write_text(results_markdown(data)))
    return True


def pending(module: Any, profile: str, found: list[dict[str, Any]], kind: str = "sensitivity") -> list[str]:
    """Declared sweeps of ``kind`` not drawn yet in ``profile``, each with the command that
    draws it alone (``--id``)."""
    drawn = {f["sweep"] for f in found}
    return [
        f"- {', '.join(sw.claims)} ({sw.why}): not swept in profile `{profile}` yet; "
        f"`ipkit sweep {study_id(module)} --{kind} --id {sw.id} --profile {profile}` draws it"
        for sw in declared(module, kind)
        if sw.id not in drawn
    ]


def report(module: Any, profile: str, profile_dir: Path) -> str:
    """Markdown of the study's sensitivity findings and alternatives drawn under
    ``profile_dir``, and of the declared sweeps still to run in ``profile``."""
    lines = []
    for kind in KINDS:
        found = findings(module, profile_dir, kind)
        if found and kind == "alternatives":
            lines.append("At the alternatives the defaults were chosen among:")
        lines += [findings_markdown(found)] if found else []
        lines += pending(module, profile, found, kind)
    return "\n".join(lines) or "This study declares no sensitivity sweeps."


def show(run) -> None:
    """Display :func:`report` for the run's study and profile (the sweeps drawn in its
    figures folder)."""
    from IPython.display import Markdown, display

    display(Markdown(report(run.module, run.profile, run.published)))
