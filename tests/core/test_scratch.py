"""Nothing left behind: the scratch and partial run folders a killed run leaves are found
and swept (ipkit.core.scratch), and a kill test shows no orphan survives the next run."""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ipkit.core import scratch


def _dead_pid() -> int:
    """The pid of a process that has exited (reaped, so no process has it now)."""
    done = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    return int(done.stdout)


def _age(path: Path, seconds: float) -> Path:
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


@pytest.fixture
def places(tmp_path, monkeypatch):
    tmp, runs = tmp_path / "tmp", tmp_path / "runs"
    tmp.mkdir(), runs.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.setenv("IPKIT_RUNS", str(runs))
    return tmp, runs


def test_scratch_folders_are_orphans_when_their_maker_is_gone(places):
    tmp, _ = places
    dead = _dead_pid()
    gone = tmp / f"ipkit-run-{dead}-abc"
    live = tmp / f"ipkit-run-{os.getpid()}-abc"
    old_unnamed = tmp / "ipkit-verify-quickstart-xyz"
    young_unnamed = tmp / "ipkit-publish-xyz"
    other = tmp / f"someone-else-{dead}"
    for d in (gone, live, old_unnamed, young_unnamed, other):
        d.mkdir(exist_ok=True)
    _age(old_unnamed, 2 * scratch.MAX_AGE_S)
    assert {o.path.name for o in scratch.orphans()} == {gone.name, old_unnamed.name}
    assert {o.path.name for o in scratch.sweep_orphans()} == {gone.name, old_unnamed.name}
    assert sorted(p.name for p in tmp.iterdir()) == sorted([live.name, young_unnamed.name, other.name])


def test_a_partial_run_folder_is_an_orphan_when_its_kernel_is_gone(places):
    _, runs = places
    dead = _dead_pid()

    def run_folder(pid: int, host: str | None = None, finished: bool = False) -> Path:
        folder = runs / f"quickstart-smoke-20261207T010203Z-{pid}-{os.urandom(3).hex()}"
        folder.mkdir()
        if host is not None:
            (folder / scratch.HOST_FILE).write_text(host)
        if finished:
            (folder / "results.json").write_text("{}")
        return folder

    partial = run_folder(dead, socket.gethostname())
    legacy = run_folder(dead)  # written before .host files
    finished = run_folder(dead, socket.gethostname(), finished=True)
    running = run_folder(os.getpid(), socket.gethostname())
    elsewhere = run_folder(dead, "another-node")  # its pid means nothing here
    stale_elsewhere = _age(run_folder(dead, "another-node"), 2 * scratch.OTHER_HOST_MAX_AGE_S)
    found = {o.path for o in scratch.orphans()}
    assert found == {partial, legacy, stale_elsewhere}
    assert all(o.kind == "partial run" and o.pid == dead for o in scratch.orphans())
    scratch.sweep_orphans()
    assert {p for p in runs.iterdir()} == {finished, running, elsewhere}


def test_scratch_names_the_process_and_refuses_an_unknown_kind(places):
    tmp, _ = places
    with scratch.scratch("verify", "quickstart") as folder:
        assert Path(folder).parent == tmp
        assert Path(folder).name.startswith(f"ipkit-verify-{os.getpid()}-quickstart-")
        assert scratch.orphans() == []
    with pytest.raises(ValueError, match="scratch kind"):
        scratch.scratch("nosuch")


KILL_PARAMETERS = (
    'profile = "default"  # {@profiles} run size\nwait = 0.0  # [0, 600] seconds to sleep before recording\n'
)
KILL_BODY = """import time
import pandas as pd
from ipkit.evidence import results
from ipkit.notebook.runtime import start
PROFILES = {"smoke": {}}
run = start("tiny", globals(), PROFILES)
time.sleep(wait)
part = results.part("value", pd.DataFrame({"seed": [0, 1, 2], "x": [1.0] * 3}), lambda f: f.x.mean(),
                        threshold=0.5, holds_when="above", unit="seed")
run.record({}, [results.claim("T1", "value above 0.5", "-", part, quantifier="direction", paper_words="")])
"""


def _leftovers(tmp: Path, runs: Path) -> list[str]:
    loose = [p.name for p in tmp.iterdir() if p.name.startswith(("ipkit-", "tmp")) or p.suffix == ".json"]
    partial = [
        p.name for p in runs.iterdir() if p.is_dir() and p.name != "sweeps" and not (p / "results.json").exists()
    ]
    return loose + partial


@pytest.mark.slow
def test_a_killed_run_leaves_no_orphan_once_the_next_run_starts(tiny_study, tmp_path, monkeypatch):
    root = tiny_study(KILL_PARAMETERS, KILL_BODY)
    tmp, runs = root / "tmp", root / "runs"
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp), "IPKIT_QUIET": "1"}
    cli = [sys.executable, "-m", "ipkit.cli", "run", "tiny", "--profile", "smoke"]
    proc = subprocess.Popen(
        cli + ["-p", "wait=300"],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (runs.is_dir() and any(p.is_dir() for p in runs.iterdir())):
        assert proc.poll() is None, proc.stderr.read() if proc.poll() else ""
        assert time.monotonic() < deadline, proc.stderr.read() if proc.poll() else ""
        time.sleep(0.5)
    folder = next(p for p in runs.iterdir() if p.is_dir())
    kernel_pid = int(folder.name.split("-")[-2])
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    while scratch.alive(kernel_pid) and time.monotonic() < deadline:  # the kernel sees its parent go
        time.sleep(0.5)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    kinds = sorted(o.kind for o in scratch.orphans())
    assert kinds == ["partial run", "scratch"], _leftovers(tmp, runs)
    left = next(o.path for o in scratch.orphans() if o.kind == "scratch")
    assert list(left.glob("kernel-*.json")), "the kernel's connection file lives in the scratch folder"
    assert not list(tmp.glob("*.json"))

    done = subprocess.run(cli, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert _leftovers(tmp, runs) == []
    assert (root / "figures" / "tiny" / "smoke" / "results.json").is_file()
