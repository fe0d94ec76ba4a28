"""``ipkit verify``: does a committed verdict survive other seeds?

The study is rerun with the same profile and parameters but other seeds, once per seed set
(a sweep over seed sets, run side by side on Ray with ``--jobs``), each into a temporary
figures folder (never over the committed one). Claim by claim, the committed verdict and
interval stand beside the new ones. A *flip* is a change between ``holds`` and ``does not
hold``; a move to or from ``inconclusive`` is reported as a change but is not a flip. With
``record=True`` the comparison is stored under ``stability`` in the committed
``results.json`` (written atomically).
"""
from __future__ import annotations

import datetime as dt
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .results import write_json
from .study import ParamError, StudyInfo, figures_dir
from .sweep import verdict

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


def committed_results(info: StudyInfo, profile: str) -> Path:
    """The committed results.json of ``info`` in ``profile``, or a ParamError naming the fix."""
    path = figures_dir() / info.id / profile / "results.json"
    if not path.is_file():
        raise ParamError(f"no committed results for {info.id} (profile {profile}) at {path}: "
                         f"run `ipkit run {info.id} --profile {profile}` first")
    try:
        json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ParamError(f"committed results {path} are unreadable ({err}): rerun "
                         f"`ipkit run {info.id} --profile {profile}`") from None
    return path


def rerun_params(committed: dict, info: StudyInfo, seeds: list[int],
                 given: dict[str, Any]) -> dict[str, Any]:
    """The committed run's parameters (those the notebook declares), with ``seeds`` and
    ``given`` replacing theirs."""
    params = {k: v for k, v in committed["params"].items() if k in info.params and k != "profile"}
    return {**params, **given, "seeds": list(seeds)}


def compare(committed: dict, rerun: dict) -> list[Comparison]:
    """Claim-by-claim comparison of two results.json documents (claims present in both)."""
    new = {c["id"]: c for c in rerun["claims"]}
    return [Comparison(c["id"], verdict(c), list(c.get("ci") or []), verdict(new[c["id"]]),
                       list(new[c["id"]].get("ci") or []))
            for c in committed["claims"] if c["id"] in new]


def seed_sets(info: StudyInfo, text: str) -> list[list[int]]:
    """``"101,102,103;201,202,203"`` -> one seed list per rerun, each checked as the study's
    ``seeds`` parameter (a ParamError names a bad one)."""
    from .study import coerce

    sets = [coerce(info.params["seeds"], part) for part in text.split(";") if part.strip()]
    if not sets:
        raise ParamError("--seeds needs at least one seed set, e.g. --seeds 101,102,103")
    if len({tuple(s) for s in sets}) != len(sets):
        raise ParamError("--seeds lists a seed set twice: give each once")
    return sets


def _name(seeds: list[int]) -> str:
    return "-".join(map(str, seeds))


def verify(info: StudyInfo, profile: str, sets: list[list[int]], given: dict[str, Any],
           keep: Path | None = None, **dispatch: Any) -> tuple[Path, list[tuple[list[int], list[Comparison]]]]:
    """Rerun ``info`` once per seed set, a sweep over seed sets (:func:`ipkit.parallel.run_jobs`,
    with ``dispatch`` its options: ``at_once``, ``cpus_per_run``, ...), each into a temporary
    folder (or under ``keep``), and compare every rerun with the committed results. Raises
    RuntimeError naming each failed rerun and its failing cell."""
    from .parallel import Job, run_jobs

    path = committed_results(info, profile)
    committed = json.loads(path.read_text())
    with tempfile.TemporaryDirectory(prefix=f"ipkit-verify-{info.id}-") as tmp:
        root = keep if keep is not None else Path(tmp)
        jobs = [Job(info.id, profile, rerun_params(committed, info, seeds, given), info.path,
                    root / _name(seeds) / info.id / profile,
                    root / f"{info.path.stem}-verify-{_name(seeds)}.ipynb", f"seeds={_name(seeds)}")
                for seeds in sets]
        outcomes = run_jobs(jobs, **dispatch)
    failed = [f"{o.job.label} failed in {o.error}" for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError("; ".join(failed))
    return path, [(seeds, compare(committed, json.loads(o.files["results.json"])))
                  for seeds, o in zip(sets, outcomes)]


def record(path: Path, runs: list[tuple[list[int], list[Comparison]]]) -> None:
    """Store the comparisons under ``stability`` in the committed results.json, atomically:
    one entry per rerun (its seeds, claims and flips) and the flips of all reruns."""
    data = json.loads(path.read_text())
    entries = [{"seeds": list(seeds), "claims": [dict(asdict(r), flip=r.flip) for r in rows],
                "flips": sum(r.flip for r in rows)} for seeds, rows in runs]
    data["stability"] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "runs": entries, "flips": sum(e["flips"] for e in entries)}
    write_json(path, data)


def still_valid(stability: dict, data: dict) -> bool:
    """True when a ``stability`` record's committed verdicts and intervals are those of
    ``data``'s claims (a rerun that reproduced the committed results keeps its record)."""
    now = {c["id"]: (c.get("verdict"), list(c.get("ci") or [])) for c in data.get("claims", [])}
    return all(now.get(c["id"]) == (c["committed"], list(c["committed_ci"]))
               for run in stability.get("runs", []) for c in run["claims"])


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
        lines.append(f"  {r.id:5s} {mark:8s} committed {r.committed} {_ci(r.committed_ci)}"
                     f"  ->  rerun {r.rerun} {_ci(r.rerun_ci)}")
    return lines


def stability_markdown(data: dict) -> str:
    """A Markdown table per rerun of a results.json's ``stability`` record (empty when it
    has none)."""
    st = data.get("stability")
    if not st:
        return ""
    rows = []
    for run in st["runs"]:
        rows += [f"Rerun with seeds {', '.join(map(str, run['seeds']))} ({st['date']}): "
                 f"{run['flips']} flip(s).", "",
                 "| id | committed | rerun | flip |", "|---|---|---|---|"]
        rows += [f"| {c['id']} | {c['committed']} {_ci(c['committed_ci'])} | "
                 f"{c['rerun']} {_ci(c['rerun_ci'])} | {'**yes**' if c['flip'] else 'no'} |"
                 for c in run["claims"]] + [""]
    return "\n".join(rows).rstrip()
