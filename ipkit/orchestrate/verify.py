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
from pathlib import Path
from typing import Any

from ..core.scratch import scratch
from ..evidence.stability import Comparison
from ..notebook.registry import StudyInfo
from .parallel import Job, run_jobs
from .sweep import committed_results, rerun_params, verdict


def compare(committed: dict, rerun: dict) -> list[Comparison]:
    """Claim-by-claim comparison of two results.json documents (claims present in both)."""
    new = {c["id"]: c for c in rerun["claims"]}
    return [
        Comparison(
            c["id"], verdict(c), list(c.get("ci") or []), verdict(new[c["id"]]), list(new[c["id"]].get("ci") or [])
        )
        for c in committed["claims"]
        if c["id"] in new
    ]


def _name(seeds: list[int]) -> str:
    return "-".join(map(str, seeds))


def verify(
    info: StudyInfo,
    profile: str,
    sets: list[list[int]],
    given: dict[str, Any],
    keep: Path | None = None,
    **dispatch: Any,
) -> tuple[Path, list[tuple[list[int], list[Comparison]]]]:
    """Rerun ``info`` once per seed set, a sweep over seed sets (:func:`ipkit.orchestrate.parallel.run_jobs`,
    with ``dispatch`` its options: ``at_once``, ``cpus_per_run``, ...), each into a temporary
    folder (or under ``keep``), and compare every rerun with the committed results. Raises
    RuntimeError naming each failed rerun and its failing cell."""
    path = committed_results(info, profile)
    committed = json.loads(path.read_text())
    with scratch("verify", info.id) as tmp:
        root = keep if keep is not None else Path(tmp)
        jobs = [
            Job(
                info.id,
                profile,
                rerun_params(committed, info, seeds, given),
                info.path,
                root / _name(seeds) / info.id / profile,
                root / f"{info.path.stem}-verify-{_name(seeds)}.ipynb",
                f"seeds={_name(seeds)}",
            )
            for seeds in sets
        ]
        outcomes = run_jobs(jobs, **dispatch)
    failed = [f"{o.job.label} failed in {o.error}" for o in outcomes if not o.ok]
    if failed:
        raise RuntimeError("; ".join(failed))
    return path, [(seeds, compare(committed, json.loads(o.files["results.json"]))) for seeds, o in zip(sets, outcomes)]
