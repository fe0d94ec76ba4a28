"""Run many study notebooks: one after another in this process, or side by side as Ray tasks.

A :class:`Job` is one papermill execution of a study notebook with its profile and
parameters. :func:`execute` runs it in a scratch folder (``IPKIT_FIGURES`` pointed there)
and returns its figures, tables and results as bytes, so a run on another node of a
cluster comes home through Ray; :func:`run_jobs` publishes each to the job's own folder as
it finishes. A failing run is reported with its study, setting and failing cell while the
others go on. Ray (the optional extra ``ipkit[ray]``) is imported only when runs go to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager

from ..core import timings
from ..core.scratch import scratch, sweep_orphans
from ..evidence.sensitivity import SWEEPS
from ..methods.cache import CORRUPT_LINE, UNWRITTEN_LINE, cache_dir
from ..methods.train import progress
from ..notebook.params import ParamError
from ..notebook.publish import publish as publish_notebook
from ..notebook.runtime import publish_folder

THREAD_VARIABLES = ("IPKIT_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
NETWORK_FILESYSTEMS = {
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "lustre",
    "gpfs",
    "beegfs",
    "ceph",
    "glusterfs",
    "fuse.sshfs",
    "fuse.s3fs",
    "fuse.gcsfuse",
    "fuse.juicefs",
}
RAY_MISSING = (
    "running several notebooks at once needs Ray: pip install 'ipkit[ray]' (make setup installs it), or use --jobs 1"
)


class RayError(RuntimeError):
    """Ray could not be started or joined; the message says what to try."""


@dataclass(frozen=True)
class Job:
    """One notebook run: ``params`` are the values set on top of ``profile``; the run's
    figures go to ``dest`` and its executed notebook to ``executed``."""

    study: str
    profile: str
    params: dict[str, Any]
    notebook: Path
    dest: Path
    executed: Path
    setting: str = ""

    @property
    def label(self) -> str:
        return f"{self.study} [{self.setting}]" if self.setting else self.study


@dataclass
class Outcome:
    """What one run left: ``error`` is empty when it completed; ``files`` are its figures,
    tables and results by path relative to ``figures/<study>/<profile>/``."""

    job: Job
    error: str
    seconds: float
    files: dict[str, bytes] = field(default_factory=dict, repr=False)
    notebook: bytes = field(default=b"", repr=False)

    @property
    def ok(self) -> bool:
        return not self.error


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def kernel_manager_in(folder: Path) -> type[AsyncKernelManager]:
    """A kernel manager class (papermill's ``kernel_manager_class``) whose kernel writes its
    connection file into ``folder``, a run's scratch folder, instead of a loose file in
    ``$TMPDIR``: a killed run's file then goes with its folder
    (:func:`ipkit.core.scratch.sweep_orphans`)."""

    class ScratchKernelManager(AsyncKernelManager):
        def __init__(self, **kwargs: Any):
            super().__init__(**kwargs)
            self.connection_file = str(folder / f"kernel-{uuid.uuid4().hex[:8]}.json")

    return ScratchKernelManager


def execute(job: Job, threads: int | None = None, env: dict[str, str] | None = None) -> Outcome:
    """Execute ``job``'s notebook with papermill into a scratch folder and collect its output.

    The notebook's kernel sees ``env`` (on a Ray worker: the driver's ``IPKIT_*`` settings)
    and, when ``threads`` is given, ``IPKIT_THREADS``, ``OMP_NUM_THREADS`` and
    ``MKL_NUM_THREADS`` set to it. Never raises for a failing notebook: the error names
    the failing cell.
    """
    import papermill as pm

    started = time.time()
    with scratch("run") as tmp:
        env = {
            **(env or {}),
            "IPKIT_PROFILE": job.profile,
            "IPKIT_FIGURES": str(Path(tmp) / "figures"),
            "IPKIT_PROGRESS": "text",
        }
        if threads is not None:
            env.update({name: str(threads) for name in THREAD_VARIABLES})
        executed = Path(tmp) / job.executed.name
        out = Path(tmp) / "figures" / job.study / job.profile
        if (job.dest / SWEEPS).is_dir():  # the notebook's sensitivity section reads them
            shutil.copytree(job.dest / SWEEPS, out / SWEEPS)
        error = ""
        with _environ(env):
            try:
                pm.execute_notebook(
                    str(job.notebook),
                    str(executed),
                    parameters={**job.params, "profile": job.profile},
                    kernel_name="python3",
                    cwd=str(job.notebook.parent),
                    progress_bar=False,
                    kernel_manager_class=kernel_manager_in(Path(tmp)),
                )
            except pm.PapermillExecutionError as err:
                error = f"cell {err.cell_index}: {err.ename}: {err.evalue}"
            except Exception as err:  # a dead kernel, a missing notebook: report, don't stop the others
                error = f"{type(err).__name__}: {err}"
        if not error and out.exists() and executed.exists():
            timings.add_sections(out, job.study, job.profile, executed, since=started)
            publish_notebook(executed, out / job.notebook.name)
        files = (
            {}
            if error or not out.exists()
            else {
                p.relative_to(out).as_posix(): p.read_bytes()
                for p in sorted(out.rglob("*"))
                if p.is_file() and p.relative_to(out).parts[0] != SWEEPS
            }
        )
        notebook = executed.read_bytes() if executed.exists() else b""
    return Outcome(job, error, round(time.time() - started, 1), files, notebook)


def publish(outcome: Outcome) -> None:
    """Write a run's executed notebook to ``job.executed`` and, if it completed, make its
    figures, tables and results the content of ``job.dest`` as a whole (staged, then
    swapped in: :func:`ipkit.notebook.runtime.publish_folder`; when runs publish at once, the last wins).
    Corrupt-cache lines the notebook printed are repeated on this terminal."""
    job = outcome.job
    if outcome.notebook:
        job.executed.parent.mkdir(parents=True, exist_ok=True)
        job.executed.write_bytes(outcome.notebook)
        for line in cache_warnings(outcome.notebook):
            print(f"ipkit: {line}", file=sys.stderr)
    if not outcome.files:
        return
    with scratch("publish") as tmp:
        for rel, data in outcome.files.items():
            path = Path(tmp) / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        publish_folder(Path(tmp), job.dest)


def cache_warnings(notebook: bytes) -> list[str]:
    """The cache's lines an executed notebook wrote to its stderr: ``corrupt cache entry
    <key> (<reason>): rebuilt`` and ``cache not written <key> (...)``."""
    try:
        cells = json.loads(notebook)["cells"]
    except (ValueError, KeyError):
        return []
    found = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = out.get("text", "")
                for line in ("".join(text) if isinstance(text, list) else text).splitlines():
                    if m := CORRUPT_LINE.search(line) or UNWRITTEN_LINE.search(line):
                        found.append(m.group(0))
    return found


def describe(outcome: Outcome) -> str:
    """One line (two for a failure) saying how a run ended and where its output is."""
    job = outcome.job
    if outcome.ok:
        return f"ipkit: {job.label} done in {outcome.seconds:.0f} s -> {job.dest}"
    where = f"\n  executed notebook: {job.executed}" if outcome.notebook else ""
    return f"ipkit: {job.label} failed in {outcome.error}{where}"


def ray_address(address: str | None) -> str | None:
    """The Ray cluster to join: ``address``, else ``RAY_ADDRESS``, else None (start one here)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def is_remote(address: str | None) -> bool:
    """Whether a Ray address points at another machine (not this host, 'local' or 'auto')."""
    if not address or address in ("local", "auto"):
        return False
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host not in ("localhost", "127.0.0.1", "0.0.0.0", socket.gethostname())


def filesystem_type(path: Path) -> str | None:
    """The filesystem type of the mount holding ``path`` (from /proc/mounts), None if unknown."""
    try:
        mounts = [line.split()[1:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return None
    path = Path(os.path.realpath(path))
    best, kind = "", None
    for point, fstype in mounts:
        if (str(path) == point or str(path).startswith(point.rstrip("/") + "/")) and len(point) >= len(best):
            best, kind = point, fstype
    return kind


def cache_warning(address: str | None) -> str | None:
    """A warning when runs go to a remote cluster but ``IPKIT_CACHE`` is on a local disk:
    then every node trains its own copy of each model."""
    kind = filesystem_type(cache_dir())
    if not is_remote(address) or kind is None or kind in NETWORK_FILESYSTEMS:
        return None
    return (
        f"ipkit: warning: the Ray cluster {address} is remote but IPKIT_CACHE ({cache_dir()}) "
        f"is on a local {kind} disk: set IPKIT_CACHE to a folder every node shares"
    )


def import_ray() -> Any:
    """The ``ray`` module, or a ParamError saying how to install it (the optional extra)."""
    try:
        import ray
    except ImportError:
        raise ParamError(RAY_MISSING) from None
    return ray


def uses_ray(jobs: int, address: str | None) -> bool:
    """Whether runs go to Ray: more than one at a time, or a cluster address given."""
    return jobs > 1 or ray_address(address) is not None


def check_ray(jobs: int, address: str | None) -> None:
    """Raise ParamError (one line) when these runs need Ray and it is not installed."""
    if uses_ray(jobs, address):
        import_ray()


def run_jobs(
    jobs: list[Job],
    *,
    at_once: int = 1,
    cpus_per_run: float | None = None,
    gpus_per_run: float | None = None,
    address: str | None = None,
    threads: int | None = None,
) -> list[Outcome]:
    """Run every job and publish each as it finishes; return the outcomes in job order.

    With ``at_once == 1`` and no cluster address the runs go one after another in this
    process. Otherwise they are Ray tasks, at most ``at_once`` in flight, each with
    ``cpus_per_run`` CPUs (default: the cluster's CPUs shared among ``at_once``; also its
    thread count) and ``gpus_per_run`` GPUs (default: one when the cluster has GPUs). A
    local Ray is started sized to this machine unless one is running in this process or
    ``address`` / ``RAY_ADDRESS`` names a cluster. ``threads`` sets each run's CPU threads
    (:func:`execute`); by default a run in this process inherits this process's settings
    and a Ray run uses as many threads as it has CPUs. Ctrl-C cancels the runs not yet done.
    Scratch and partial run folders that killed runs left are swept first
    (:func:`ipkit.core.scratch.sweep_orphans`).
    """
    sweep_orphans()
    bar = progress(total=len(jobs), desc="runs", unit="run", file=sys.stderr)
    try:
        if not uses_ray(at_once, address):
            outcomes = []
            for job in jobs:
                outcomes.append(_finish(execute(job, threads), bar))
            return outcomes
        return _run_on_ray(jobs, at_once, cpus_per_run, gpus_per_run, ray_address(address), bar, threads)
    finally:
        bar.close()


def _finish(outcome: Outcome, bar) -> Outcome:
    publish(outcome)
    bar.write(describe(outcome), file=sys.stderr if not outcome.ok else sys.stdout)
    bar.update(1)
    return outcome


def _run_on_ray(jobs, at_once, cpus_per_run, gpus_per_run, address, bar, threads=None) -> list[Outcome]:
    ray = import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        options = {"address": address} if address else {"include_dashboard": False}
        try:
            ray.init(log_to_driver=False, logging_level="ERROR", **options)
        except Exception as err:  # Ray's own start-up errors have no common type
            where = f"join the Ray cluster at {address}" if address else "start a local Ray"
            raise RayError(f"could not {where} ({str(err).splitlines()[0]}): try again, or use --jobs 1") from None
    try:
        warning = cache_warning(address)
        if warning:
            bar.write(warning, file=sys.stderr)
        resources = ray.cluster_resources()
        cpus = cpus_per_run or max(1, int(resources.get("CPU", 1) // at_once))
        gpus = (1 if resources.get("GPU", 0) else 0) if gpus_per_run is None else gpus_per_run
        if cpus > resources.get("CPU", 0) or gpus > resources.get("GPU", 0):
            raise ParamError(
                f"a run needs {cpus} CPUs and {gpus} GPUs but the Ray cluster has "
                f"{resources.get('CPU', 0):g} and {resources.get('GPU', 0):g}: "
                "lower --cpus-per-run / --gpus-per-run"
            )
        task = ray.remote(execute).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
        threads = threads or max(1, int(cpus))
        env = {k: v for k, v in os.environ.items() if k.startswith("IPKIT_")}
        results: dict[int, Outcome] = {}
        pending: dict[Any, int] = {}
        queue = list(enumerate(jobs))
        try:
            while queue or pending:
                while queue and len(pending) < at_once:
                    i, job = queue.pop(0)
                    pending[task.remote(job, threads, env)] = i
                done, _ = ray.wait(list(pending), num_returns=1)
                i = pending.pop(done[0])
                try:
                    outcome = ray.get(done[0])
                except Exception as err:  # the worker died (out of memory, node lost)
                    outcome = Outcome(jobs[i], f"{type(err).__name__}: {str(err).splitlines()[0]}", 0.0)
                results[i] = _finish(outcome, bar)
        except KeyboardInterrupt:
            for ref in pending:
                ray.cancel(ref, force=True)
            bar.write(f"ipkit: interrupted: cancelled {len(pending) + len(queue)} runs not yet done", file=sys.stderr)
            raise
        return [results[i] for i in range(len(jobs))]
    finally:
        if started_here:
            ray.shutdown()
