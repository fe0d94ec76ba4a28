"""The `ipkit` command (ipkit.cli): validation before anything runs (one-line error, exit 2),
list, cache and report; the start-up that loads no torch."""

import json

import pandas as pd
import pytest

from ipkit import cli
from ipkit.evidence import results
from tests.helpers import QUICK, _fake_run, run_cli


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["run", "nosuchstudy"], "unknown study 'nosuchstudy'"),
        (["run", QUICK, "-p", "bogus=1"], "unknown parameter 'bogus'"),
        (["run", QUICK, "-p", "query_budget=lots"], "expects int"),
        (["run", QUICK, "-p", "query_budget=3.5"], "expects int"),
        (["run", QUICK, "-p", "query_budget=5"], "must lie in [10, 50000]"),
        (["run", QUICK, "-p", "victim_arch=alexnet"], "must be one of"),
        (["run", QUICK, "-p", "seeds=0,x"], "expects list[int]"),
        (["run", QUICK, "--profile", "huge"], "unknown profile 'huge'"),
        (["run", QUICK, "-p", "epochs"], "needs a value"),
        (["run", QUICK, "-p", "epochs=１"], "in ASCII digits"),
        (["run", QUICK, "-p", "seeds=0,٣"], "in ASCII digits"),
        (["run", QUICK, "-p", "epochs=1", "-p", "epochs=2"], "'epochs' is given twice"),
        (["run", QUICK, "-p", "seeds=0", "-p", "seeds=1"], "give it once (a list is comma-separated"),
        (["run", QUICK, "-p"], "expected one argument"),
        (["run", "all", "-p", "epochs=2"], "single study"),
        (
            ["run", "ondevice_unpairing", "-p", "quant_bits=8", "-p", "unpair_sibling=q4"],
            "unpair_sibling 'q4' is not built",
        ),
        (["run", "memorized_transfer", "-p", "query_budget=50000"], "exceeds the attacker pool"),
        (["run", "distillation_ingrain", "-p", "arch=mlp", "-p", "student_arch=vgg"], "is larger than arch"),
        # each study's own size rules (check_params), against the data
        (
            ["run", QUICK, "-p", "query_budget=2001"],
            "query_budget 2001 exceeds the attacker pool of mnist5k (2000 images)",
        ),
        (["run", QUICK, "-p", "dataset=digits", "-p", "query_budget=800"], "attacker pool of digits (719 images)"),
        (["run", QUICK, "-p", "seeds=1,2,1"], "lists 1 twice"),
        (["run", "uq_stealing", "-p", "query_budget=2001"], "query_budget 2001 exceeds the attacker pool of mnist5k"),
        (["run", "uq_stealing", "-p", "budgets=250,2500"], "budgets 2500 exceeds the attacker pool"),
        (
            ["run", "uq_stealing", "-p", "dataset=digits", "-p", "budgets=100,800"],
            "budgets 800 exceeds the attacker pool of digits (719 images)",
        ),
        (["run", "uq_stealing", "-p", "uq_methods=vi,vi"], "uq_methods' lists 'vi' twice"),
        (["run", "uq_stealing", "-p", "seeds=3,3"], "seeds' lists 3 twice"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, monkeypatch, argv, fragment):
    """Bad input of every kind, generic and study-specific: exit 2, one line naming the
    problem, before any run folder exists."""
    monkeypatch.setenv("IPKIT_RUNS", str(tmp_path / "runs"))
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "variable, value, fragment",
    [
        ("IPKIT_THREADS", "many", "IPKIT_THREADS must be a positive integer"),
        ("OMP_NUM_THREADS", "0", "OMP_NUM_THREADS must be a positive integer"),
        ("IPKIT_CPU_BF16", "yes", "IPKIT_CPU_BF16 must be 0 or 1"),
    ],
)
def test_bad_environment_exits_2_with_one_line(capsys, monkeypatch, variable, value, fragment):
    monkeypatch.setenv(variable, value)
    code, _, err = run_cli(capsys, "run", QUICK)
    assert code == 2
    assert fragment in err
    assert err.count("\n") == 1


def test_missing_dataset_offline_is_caught_before_running(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_DATA", str(tmp_path / "empty"))
    monkeypatch.delenv("IPKIT_DOWNLOAD", raising=False)
    code, _, err = run_cli(capsys, "run", QUICK, "-p", "dataset=cifar10")
    assert code == 2
    assert "IPKIT_DOWNLOAD=1" in err
    code, _, err = run_cli(capsys, "run", QUICK, "--profile", "paper")
    assert code == 2
    assert "cifar10" in err


def test_list_shows_studies_and_parameters(capsys):
    code, out, _ = run_cli(capsys, "list")
    assert code == 0
    assert "quickstart" in out
    assert "query_budget = 2000" in out


def test_cache_ls_and_clear(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_CACHE", str(tmp_path))
    code, out, _ = run_cli(capsys, "cache", "ls")
    assert code == 0
    assert "0 entries" in out
    code, out, _ = run_cli(capsys, "cache", "clear")
    assert code == 0
    assert "removed 0" in out


def test_report_builds_gallery(capsys, tmp_path, monkeypatch):
    _fake_run(tmp_path, monkeypatch)
    code, _, _ = run_cli(capsys, "report")
    text = (tmp_path / "README.md").read_text()
    assert code == 0
    assert "quickstart/smoke/line.png" in text
    assert "| Q1 | a claim |" in text
    assert "**holds**" in text


def test_gallery_inlines_short_tables_and_links_long_ones(capsys, tmp_path, monkeypatch):
    run, _ = _fake_run(tmp_path, monkeypatch)
    run.table(pd.DataFrame({"k": range(cli.GALLERY_TABLE_ROWS)}), "short")
    run.table(pd.DataFrame({"k": range(cli.GALLERY_TABLE_ROWS + 1)}), "long")
    run.record({"value": 0.25}, [])
    run_cli(capsys, "report")
    text = (tmp_path / "README.md").read_text()
    assert f"|  {cli.GALLERY_TABLE_ROWS - 1} |" in text  # the short table, inline
    assert "**long**: 26 rows, [long.md](quickstart/smoke/long.md) · [long.csv](quickstart/smoke/long.csv)" in text
    assert f"|  {cli.GALLERY_TABLE_ROWS} |" not in text


def test_report_upgrades_a_version_0_results_file_and_changes_no_number(tmp_path, monkeypatch, capsys):
    run, _ = _fake_run(tmp_path, monkeypatch)
    path = run.published / "results.json"
    data = json.loads(path.read_text())
    version_0 = {k: v for k, v in data.items() if k not in ("schema_version", "threads")}
    version_0["device"] = "cpu (x86_64, 3 threads)"
    path.write_text(json.dumps(version_0))
    assert cli.main(["report"]) == 0
    upgraded = json.loads(path.read_text())
    assert next(iter(upgraded)) == "schema_version"
    assert upgraded["threads"] == 3
    assert {k: v for k, v in upgraded.items() if k not in ("schema_version", "threads")} == version_0
    results.check_results(upgraded)
    assert not results.upgrade_file(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["list"],
        ["run", "quickstart", "-p", "seeds=0,0"],
        ["sweep", "quickstart", "-p", "seeds=0,0"],
        ["nosuch"],
    ],
)
def test_help_list_and_usage_errors_answer_without_loading_torch(argv):
    """The start-up cost of a command that does no work: no torch, pandas or nbformat import,
    and at most ~3x a bare interpreter's start (measured in this test, as a ratio)."""
    import subprocess
    import sys
    import time

    code = (
        f"import sys; from ipkit import cli; code = cli.main({argv!r}); "
        "heavy = [m for m in ('torch', 'pandas', 'nbformat') if m in sys.modules]; "
        "print(heavy); sys.exit(0 if code in (0, 2) else 1)"
    )

    def timed(args):
        began = time.monotonic()
        done = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True)
        return time.monotonic() - began, done

    bare = min(timed(["pass"])[0] for _ in range(2))
    took, done = min((timed([code]) for _ in range(2)), key=lambda r: r[0])
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().endswith("[]"), done.stdout + done.stderr
    assert took < max(3 * bare, bare + 1.0), (took, bare)
