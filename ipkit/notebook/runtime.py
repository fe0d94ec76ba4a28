"""The notebook runtime: the context one study run works in, and publishing its folder.

A notebook calls :func:`start` right after its parameters cell; the :class:`Run` it returns
holds the resolved parameters (:mod:`ipkit.notebook.registry`) and writes the run's
figures, tables and results into its own folder, which :meth:`Run.record` publishes to
``figures/<study>/<profile>/`` as a whole (:func:`publish_folder`).
"""

from __future__ import annotations

import ast
import errno
import json
import os
import shutil
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from ..core import timings
from ..core.files import write_table
from ..core.paths import figures_dir, runs_dir
from ..core.scratch import mark_run_folder, sweep_orphans
from ..evidence.results import write_results
from ..evidence.sensitivity import SWEEPS, attach
from ..evidence.stability import carry_over
from ..methods.cache import sweep_temp
from ..methods.data import split
from ..methods.train import default_device, progress
from .params import ParamError
from .plots import savefig, theme
from .registry import StudyInfo, get_study, resolve, study_module


def new_run_id() -> str:
    """A run id unique across processes: UTC time, pid and a random part."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def run_folder(study_id: str, profile: str, run_id: str) -> Path:
    """The private folder of one run: ``runs/<study>-<profile>-<run id>/``."""
    return runs_dir() / f"{study_id}-{profile}-{run_id}"


def publish_folder(folder: Path, target: Path) -> Path:
    """Make a copy of the finished run ``folder`` the content of ``target``, as a whole.

    The copy is staged beside ``target``, then swapped in by two renames, so a reader
    never sees files of two runs mixed; when runs publish at once, the last one wins.
    The sweeps drawn in ``target`` (``sweeps/``, :mod:`ipkit.orchestrate.sweep`) are kept, and the
    staged results.json names the sensitivity sweeps among them
    (:func:`ipkit.evidence.sensitivity.attach`); ``target``'s ``ipkit verify`` record is kept when
    the new run reproduced the verdicts and intervals it checked
    (:func:`ipkit.evidence.stability.carry_over`).
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    staged, old = (target.with_name(f".{target.name}.{kind}-{tag}") for kind in ("new", "old"))
    try:
        shutil.copytree(folder, staged)
        if (target / SWEEPS).is_dir():
            shutil.rmtree(staged / SWEEPS, ignore_errors=True)
            shutil.copytree(target / SWEEPS, staged / SWEEPS)
        if (staged / SWEEPS).is_dir() and (staged / "results.json").is_file():
            study = json.loads((staged / "results.json").read_text()).get("study", "")
            attach(study_module(study) if study.isidentifier() else None, staged)
        if (target / "results.json").is_file() and (staged / "results.json").is_file():
            carry_over(target / "results.json", staged / "results.json")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    while True:
        try:
            os.rename(target, old)
        except FileNotFoundError:
            pass
        try:
            os.rename(staged, target)
            break
        except OSError as err:  # another run published between the two renames: go again
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    return target


class Run:
    """The context of one study run: resolved parameters and where its outputs go.

    ``run.p`` holds the parameters; :meth:`savefig`, :meth:`table` and :meth:`record` write
    into the run's private folder ``run.out`` (:func:`run_folder`, under a new run id).
    :meth:`record` writes
    results last and then publishes the folder as a whole to ``run.published``,
    ``figures/<study>/<profile>/`` (:func:`publish_folder`), so concurrent runs never mix files.
    """

    def __init__(self, info: StudyInfo, values: dict[str, Any]):
        self.info = info
        self.study = info.id
        self.module = study_module(info.id)
        self.profile = values["profile"]
        self.values = values
        self.p = SimpleNamespace(**values)
        self.device = default_device()
        self.run_id = new_run_id()
        self.out = run_folder(self.study, self.profile, self.run_id)
        self.out.mkdir(parents=True, exist_ok=True)
        mark_run_folder(self.out)
        self.published = figures_dir() / self.study / self.profile
        self.figures: list[str] = []
        self.tables: list[str] = []
        self.started = time.time()
        timings.reset()

    def splits(self, seed: int = 0):
        """The dataset's owner / attacker / test splits (``data.split(p.dataset, seed)``),
        with a one-line summary of the run printed."""
        s = split(self.p.dataset, seed=seed)
        print(
            f"{self.study}, profile {self.profile} on {self.device}: owner {len(s.owner)}, "
            f"attacker pool {len(s.attacker)}, test {len(s.test)} images of "
            f"{s.num_classes} classes ({s.name})"
        )
        return s

    def progress(self, iterable, **kwargs):
        """A progress bar over ``iterable`` (silent in CI)."""
        return progress(iterable, **kwargs)

    def savefig(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<name>.png`` and ``<name>.svg`` in this run's folder."""
        path = savefig(fig, self.out / name)
        if name not in self.figures:
            self.figures.append(name)
        return path

    def table(self, df, name: str) -> Path:
        """Save a pandas table as ``<name>.csv`` and ``<name>.md`` in this run's folder."""
        path = write_table(df, self.out / name)
        if name not in self.tables:
            self.tables.append(name)
        return path

    def record(self, metrics: dict[str, Any], claims: list, hyperparameters: dict[str, Any] | None = None) -> Path:
        """Write results.json and results.md (parameters, the study's declared
        hyper-parameters and seed roles, metrics and claim rows) and timings.json /
        timings.md (seconds per kind of work so far); then publish the run's folder to
        ``figures/<study>/<profile>/``. Returns this run's own results.json."""
        timings.write_kinds(self.out, self.study, self.profile)
        path = write_results(self, metrics, claims, hyperparameters)
        publish_folder(self.out, self.published)
        return path


def injected_names(namespace: dict[str, Any]) -> list[str]:
    """Names papermill assigned in its ``injected-parameters`` cell, in order.

    Papermill runs that cell (its source starts with ``# Parameters``) right after the
    notebook's ``parameters`` cell; IPython keeps the source of every executed cell in
    the namespace's ``In`` list. Outside papermill (Jupyter, nbmake) there is none.
    """
    names: list[str] = []
    for source in namespace.get("In") or []:
        if not (isinstance(source, str) and source.startswith("# Parameters\n")):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign):
                names += [
                    t.id
                    for t in node.targets
                    if isinstance(t, ast.Name) and not t.id.startswith("PAPERMILL_") and t.id not in names
                ]
    return names


def start(study_id: str, namespace: dict[str, Any], profiles: dict[str, dict] | None = None) -> Run:
    """Resolve a notebook's parameters and return its :class:`Run`.

    Called from the notebook right after its parameters cell with ``globals()``. The
    profile is ``IPKIT_PROFILE`` if set, else the notebook's ``profile`` variable. The
    profile's values replace only parameters still at the notebook's default. The
    resolved values are written back into ``namespace`` (so the notebook's variables hold
    them) and kept in ``run.p``. The plot theme is applied, so figures look alike; the
    cache's stale temp files and the folders killed runs left are swept. A
    parameter papermill injected that the notebook does not declare (see
    :func:`injected_names`) stops the run with a :class:`ParamError`.
    """
    info = get_study(study_id)
    unknown = [n for n in injected_names(namespace) if n not in info.params]
    if unknown:
        raise ParamError(
            f"unknown parameter {', '.join(map(repr, unknown))} given to study "
            f"'{info.id}': it declares {', '.join(info.params)}"
        )
    if profiles is not None:
        info.profiles = profiles
    profile = os.environ.get("IPKIT_PROFILE") or namespace.get("profile", "default")
    given = {
        n: namespace[n]
        for n, p in info.params.items()
        if n != "profile" and n in namespace and namespace[n] != p.default
    }
    values = resolve(info, profile, given)
    namespace.update(values)
    theme()
    sweep_temp()
    sweep_orphans()
    return Run(info, values)
