"""Parallel runs and sweeps (ipkit.orchestrate.parallel, `ipkit run --jobs`, `ipkit sweep`):
grid validation before dispatch, Ray dispatch, and, on a local Ray with
2 CPUs, parallel smoke runs of the quickstart against sequential ones and a failing setting."""

import json
import sys

import pytest

from ipkit import cli
from ipkit.notebook.params import ParamError
from ipkit.notebook.registry import get_study
from ipkit.orchestrate import parallel
from tests.helpers import QUICK, run_cli


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["sweep", QUICK, "-p", "query_budget=300,5"], "must lie in [10, 50000]"),
        (["sweep", QUICK, "-p", "bogus=1,2"], "unknown parameter 'bogus'"),
        (["sweep", QUICK, "-p", "query_budget=300,300"], "appears twice"),
        (["sweep", QUICK, "-p", "epochs=1", "-p", "epochs=2"], "swept twice"),
        (["sweep", QUICK, "--seeds-sets", "0,1;2,x"], "expects list[int]"),
        (["sweep", QUICK], "at least one parameter"),
        (["sweep", QUICK, "-p", "epochs=1", "--jobs", "0"], "is not a positive whole number"),
        (
            ["sweep", "memorized_transfer", "-p", "query_budget=100,50000"],
            "setting query_budget=50000: query_budget 50000 exceeds the attacker pool",
        ),
    ],
)
def test_bad_grids_exit_2_before_dispatch(capsys, tmp_path, monkeypatch, argv, fragment):
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.setattr(parallel, "run_jobs", lambda *a, **k: pytest.fail("dispatched"))
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1


def test_jobs_without_ray_says_how_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setattr(parallel, "run_jobs", lambda *a, **k: pytest.fail("dispatched"))
    code, _, err = run_cli(capsys, "run", QUICK, "--jobs", "2")
    assert code == 2
    assert "pip install 'ipkit[ray]'" in err
    assert err.count("\n") == 1
    parallel.check_ray(1, None)  # one at a time runs here without Ray


def test_remote_address_with_local_cache_warns(monkeypatch, tmp_path):
    assert not parallel.is_remote(None)
    assert not parallel.is_remote("auto")
    assert not parallel.is_remote("127.0.0.1:6379")
    assert parallel.is_remote("ray://head.cluster:10001")
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    monkeypatch.setattr(parallel, "filesystem_type", lambda path: "ext4")
    assert "IPKIT_CACHE" in parallel.cache_warning("ray://head.cluster:10001")
    assert parallel.cache_warning("127.0.0.1:6379") is None
    monkeypatch.setattr(parallel, "filesystem_type", lambda path: "nfs4")
    assert parallel.cache_warning("ray://head.cluster:10001") is None


class FakeRay:
    """Enough of Ray's API to follow run_jobs' dispatch: tasks finish in submission order;
    with ``interrupt_at`` the n-th wait raises KeyboardInterrupt (Ctrl-C)."""

    def __init__(self, interrupt_at=None):
        self.interrupt_at, self.waits, self.cancelled, self.results = interrupt_at, 0, [], {}
        self.in_flight = self.most_in_flight = 0

    def is_initialized(self):
        return True

    def cluster_resources(self):
        return {"CPU": 2.0}

    def remote(self, fn):
        fake = self

        class Task:
            def options(self, **kwargs):
                fake.options = kwargs
                return self

            def remote(self, *args):
                ref = object()
                fake.results[ref] = fn(*args)
                fake.in_flight += 1
                fake.most_in_flight = max(fake.most_in_flight, fake.in_flight)
                return ref

        return Task()

    def wait(self, refs, num_returns):
        self.waits += 1
        if self.waits == self.interrupt_at:
            raise KeyboardInterrupt
        self.in_flight -= 1
        return refs[:1], refs[1:]

    def get(self, ref):
        return self.results[ref]

    def cancel(self, ref, force):
        self.cancelled.append(ref)


@pytest.fixture
def fake_ray(monkeypatch, tmp_path):
    calls = []

    def execute(job, threads=None, env=None):
        calls.append((job.study, threads, env))
        return parallel.Outcome(job, "", 0.0, {"results.json": b"{}"})

    monkeypatch.setattr(parallel, "execute", execute)
    monkeypatch.setenv("IPKIT_FIGURES", str(tmp_path / "figures"))
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    return calls


def test_ray_dispatch_keeps_jobs_in_flight_and_threads_per_run(fake_ray, monkeypatch, tmp_path):
    ray = FakeRay()
    monkeypatch.setattr(parallel, "import_ray", lambda: ray)
    jobs = [
        parallel.Job(
            QUICK,
            "smoke",
            {"epochs": e},
            tmp_path / "nb.ipynb",
            tmp_path / str(e),
            tmp_path / f"{e}.ipynb",
            f"epochs={e}",
        )
        for e in (1, 2, 3)
    ]
    outcomes = parallel.run_jobs(jobs, at_once=2)
    assert [o.job for o in outcomes] == jobs
    assert ray.most_in_flight == 2
    assert ray.options == {"num_cpus": 1, "num_gpus": 0, "max_retries": 0}
    assert all(threads == 1 and env["IPKIT_FIGURES"] == str(tmp_path / "figures") for _, threads, env in fake_ray)
    assert (tmp_path / "3" / "results.json").read_bytes() == b"{}"
    with pytest.raises(ParamError, match="lower --cpus-per-run"):
        parallel.run_jobs(jobs, at_once=2, cpus_per_run=4)


def test_ray_that_does_not_start_is_one_line_and_exit_1(fake_ray, monkeypatch, capsys):
    class Unstartable(FakeRay):
        def is_initialized(self):
            return False

        def init(self, **kwargs):
            raise Exception("The current node timed out during startup.\nmore detail")

    monkeypatch.setattr(parallel, "import_ray", Unstartable)
    code, _, err = run_cli(capsys, "run", QUICK, "--profile", "smoke", "--jobs", "2")
    assert code == 1
    assert "could not start a local Ray (The current node timed out" in err
    assert err.count("\n") == 1
    assert not fake_ray


def test_ctrl_c_cancels_the_runs_not_yet_done(fake_ray, monkeypatch, capsys):
    ray = FakeRay(interrupt_at=1)
    monkeypatch.setattr(parallel, "import_ray", lambda: ray)
    code, _, err = run_cli(capsys, "run", QUICK, "modeldiff", "memorized_transfer", "--profile", "smoke", "--jobs", "2")
    assert code == 130
    assert len(ray.cancelled) == 2
    assert "cancelled 3 runs not yet done" in err


# ---- runs on a local Ray with 2 CPUs ------------------------------------------------------


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def quick_sweep(local_ray, tmp_path_factory):
    """`ipkit sweep quickstart --profile smoke --seeds-sets "0;1" --jobs 2`, its own cache."""
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("IPKIT_FIGURES", "IPKIT_CACHE", "IPKIT_RUNS"):
            mp.setenv(name, str(root / name))
        code = cli.main(["sweep", QUICK, "--profile", "smoke", "--seeds-sets", "0;1", "--jobs", "2", "--id", "seeds"])
    return code, root / "IPKIT_FIGURES" / QUICK / "smoke" / "sweeps" / "seeds"


def _claims_and_metrics(path):
    data = json.loads(path.read_text())
    return data["claims"], data["metrics"]


@pytest.mark.slow
def test_sweep_writes_every_setting_and_the_summary(quick_sweep):
    code, root = quick_sweep
    assert code == 0
    for setting in ("seeds=0", "seeds=1"):
        assert json.loads((root / setting / "results.json").read_text())["params"]["seeds"] == [int(setting[-1])]
        assert (root / setting / "scorecard.png").exists()
    table = (root / "summary.csv").read_text()
    assert table.count("seeds=0,") == 3 and table.count("seeds=1,") == 3  # Q1-Q3 per setting
    assert (root / "summary.md").exists()
    assert (root / "summary.png").exists()


@pytest.mark.slow
def test_parallel_runs_give_the_sequential_results(quick_sweep, tmp_path, monkeypatch):
    _, root = quick_sweep
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path / "cache"))
    for name in parallel.THREAD_VARIABLES:  # the Ray runs had one thread each
        monkeypatch.setenv(name, "1")
    info = get_study(QUICK)
    jobs = [
        parallel.Job(QUICK, "smoke", {"seeds": [seed]}, info.path, tmp_path / str(seed), tmp_path / f"{seed}.ipynb")
        for seed in (0, 1)
    ]
    outcomes = parallel.run_jobs(jobs, at_once=1)
    assert all(o.ok for o in outcomes)
    for seed in (0, 1):
        assert _claims_and_metrics(tmp_path / str(seed) / "results.json") == _claims_and_metrics(
            root / f"seeds={seed}" / "results.json"
        )


TINY_PARAMETERS = (
    'profile = "default"  # {@profiles} run size\n'
    "fail = False  # {True, False} raise inside the notebook\nvalue = 1.0  # [0, 10] measured\n"
)
TINY_BODY = """import pandas as pd
from ipkit.evidence import results
from ipkit.notebook.runtime import start
PROFILES = {"smoke": {}}
run = start("tiny", globals(), PROFILES)
if fail:
    raise ValueError("planted failure")
part = results.part("value", pd.DataFrame({"seed": [0, 1, 2], "x": [value] * 3}), lambda f: f.x.mean(),
                        threshold=0.5, holds_when="above", unit="seed")
claim = results.claim("T1", "value above 0.5", "-", part, quantifier="direction", paper_words="")
run.record({"value": value}, [claim])
"""


@pytest.mark.slow
def test_a_failing_setting_is_reported_and_the_other_completes(local_ray, capsys, tiny_study):
    tmp_path = tiny_study(TINY_PARAMETERS, TINY_BODY)
    code, out, err = run_cli(
        capsys, "sweep", "tiny", "--profile", "smoke", "-p", "fail=false,true", "--jobs", "2", "--id", "f"
    )
    root = tmp_path / "figures" / "tiny" / "smoke" / "sweeps" / "f"
    assert code == 1
    assert "tiny [fail=True] failed in cell" in err
    assert "ValueError: planted failure" in err
    assert "1 of 2 runs failed: tiny [fail=True]" in err
    assert json.loads((root / "fail=False" / "results.json").read_text())["claims"][0]["holds"] is True
    assert not (root / "fail=True").exists()
    assert (tmp_path / "runs" / "sweeps" / "f" / "99_tiny-fail=True.ipynb").exists()
    table = (root / "summary.csv").read_text()
    assert "fail=False,False,True,T1,holds" in table
    assert "run failed" in table
