"""``ipkit verify``: does a committed verdict survive other seeds?

The study is rerun with the same profile and parameters but other seeds, into a temporary
figures folder (never over the committed one). Claim by claim, the committed verdict and
interval stand beside the new ones. A *flip* is a change between ``holds`` and ``does not
hold``; a move to or from ``inconclusive`` is reported as a change but is not a flip. With
``record=True`` the comparison is stored under ``stability`` in the committed
``results.json`` (written atomically).
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .study import ParamError, StudyInfo, figures_dir

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


def _verdict(row: dict) -> str:
    return row.get("verdict") or ("holds" if row["holds"] else "does not hold")


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
    return [Comparison(c["id"], _verdict(c), list(c.get("ci") or []), _verdict(new[c["id"]]),
                       list(new[c["id"]].get("ci") or []))
            for c in committed["claims"] if c["id"] in new]


def execute(info: StudyInfo, profile: str, params: dict[str, Any], folder: Path) -> dict:
    """Run the study's notebook (:func:`ipkit.parallel.execute`: a scratch figures folder,
    plain-text progress, corrupt-cache lines repeated here) and publish its outputs and
    executed notebook under ``folder``; return its results.json, or raise RuntimeError
    naming the failing cell."""
    from .parallel import Job, execute as run_job, publish

    job = Job(info.id, profile, params, info.path, folder / info.id / profile,
              folder / f"{info.path.stem}-verify.ipynb", "verify")
    outcome = run_job(job)
    publish(outcome)
    if not outcome.ok:
        raise RuntimeError(f"{info.id} failed in {outcome.error}")
    return json.loads(outcome.files["results.json"])


def record(path: Path, seeds: list[int], rows: list[Comparison]) -> None:
    """Store the comparison under ``stability`` in the committed results.json, atomically."""
    data = json.loads(path.read_text())
    data["stability"] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "seeds": list(seeds),
        "claims": [dict(asdict(r), flip=r.flip) for r in rows],
        "flips": sum(r.flip for r in rows)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def verify(info: StudyInfo, profile: str, seeds: list[int], given: dict[str, Any],
           keep: Path | None = None) -> tuple[Path, list[Comparison]]:
    """Rerun ``info`` with ``seeds`` and compare with the committed results; the rerun's
    outputs go to a temporary folder (or ``keep``)."""
    path = committed_results(info, profile)
    committed = json.loads(path.read_text())
    params = rerun_params(committed, info, seeds, given)
    if keep is not None:
        keep.mkdir(parents=True, exist_ok=True)
        return path, compare(committed, execute(info, profile, params, keep))
    with tempfile.TemporaryDirectory(prefix=f"ipkit-verify-{info.id}-") as tmp:
        return path, compare(committed, execute(info, profile, params, Path(tmp)))


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
    """A Markdown table of a results.json's ``stability`` record (empty when it has none)."""
    st = data.get("stability")
    if not st:
        return ""
    rows = [f"Rerun with seeds {', '.join(map(str, st['seeds']))} ({st['date']}): "
            f"{st['flips']} flip(s).", "",
            "| id | committed | rerun | flip |", "|---|---|---|---|"]
    for c in st["claims"]:
        rows.append(f"| {c['id']} | {c['committed']} {_ci(c['committed_ci'])} | "
                    f"{c['rerun']} {_ci(c['rerun_ci'])} | {'**yes**' if c['flip'] else 'no'} |")
    return "\n".join(rows)
