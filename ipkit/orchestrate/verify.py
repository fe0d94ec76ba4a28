"""``ipkit verify``: does a committed verdict survive other seeds?

The study is rerun with the same profile and parameters but other seeds, once per seed set
(a sweep over seed sets, run side by side on Ray with ``--jobs``), each into a temporary
figures folder (never over the committed one). Claim by claim, the committed verdict and
interval stand beside the new ones. A *flip* is a change between ``holds`` and ``does not
hold``; a move to or from ``inconclusive`` is reported as a change but is not a flip. With
``ipkit verify --record`` the comparison is stored under ``stability`` in the committed
``results.json`` (:func:`ipkit.evidence.stability.record`).
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..core.paths import figures_dir
from ..evidence.stability import Comparison
from ..notebook.params import ParamError, coerce
from ..notebook.registry import StudyInfo
from .parallel import Job, run_jobs
from .sweep import verdict


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
    """Rerun ``info`` once per seed set, a sweep over seed sets (:func:`ipkit.orchestrate.parallel.run_jobs`,
    with ``dispatch`` its options: ``at_once``, ``cpus_per_run``, ...), each into a temporary
    folder (or under ``keep``), and compare every rerun with the committed results. Raises
    RuntimeError naming each failed rerun and its failing cell."""
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
