"""A study run (ipkit.notebook.runtime): `start` applies the profile and refuses undeclared
parameters; runs of one study at the same time: each writes into its own folder, reports its own
claims and executed notebook, and publishes its figures folder as a whole (the last run to
finish wins); results files are written atomically and `ipkit report` survives a torn one."""

import json
import os
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import papermill
import pytest

from ipkit import cli
from ipkit.core import files, stats
from ipkit.evidence import results
from ipkit.notebook.params import ParamError
from ipkit.notebook.registry import get_study, resolve
from ipkit.notebook.runtime import Run, publish_folder, start

QUICK = "quickstart"


@pytest.fixture(autouse=True)
def folders(tmp_path, monkeypatch):
    for name in ("IPKIT_FIGURES", "IPKIT_RUNS", "IPKIT_CACHE"):
        monkeypatch.setenv(name, str(tmp_path / name))
    return tmp_path


def _claim(rate: float):
    hits = round(rate * 20)
    units = pd.DataFrame({"seed": [0] * 20 + [1] * 20 + [2] * 20, "hit": ([1] * hits + [0] * (20 - hits)) * 3})
    part = results.part("rate", units, stats.mean_of("hit"), threshold=0.5, holds_when="above", unit="carrier")
    return results.claim("Q1", "a claim", "paper says", part, quantifier="direction", paper_words="")


def _kernel(epochs: int, figure: str, rate: float) -> Run:
    """What a study notebook does: start a run, save a figure, record a claim."""
    info = get_study(QUICK)
    run = Run(info, resolve(info, "smoke", {"epochs": epochs}))
    fig, ax = plt.subplots()
    ax.plot([0, epochs], [0, rate])
    run.savefig(fig, figure)
    plt.close(fig)
    run.record({"rate": rate}, [_claim(rate)])
    return run


def test_each_run_keeps_its_own_results_and_the_last_publishes_whole(folders):
    a = _kernel(1, "only_in_a", 0.9)
    b = _kernel(2, "only_in_b", 0.1)
    assert a.out != b.out
    assert a.published == b.published
    own_a = json.loads((a.out / "results.json").read_text())
    assert own_a["params"]["epochs"] == 1
    assert (a.out / "only_in_a.png").exists()
    published = json.loads((b.published / "results.json").read_text())
    assert published["params"]["epochs"] == 2
    assert sorted(p.name for p in b.published.iterdir()) == sorted(p.name for p in b.out.iterdir())
    assert not (b.published / "only_in_a.png").exists()
    assert not [p for p in b.published.parent.iterdir() if p.name.startswith(".")]


def test_cli_reports_its_own_claims_while_another_run_finishes(folders, monkeypatch, capsys):
    from ipkit.orchestrate import parallel

    notebooks = []

    def fake_execute(source, output, parameters, **kwargs):
        """This run's kernel: records its claim and prints a corrupt-cache line."""
        _kernel(parameters["epochs"], "scorecard", 0.9)
        notebooks.append(output)
        cell = {
            "cell_type": "code",
            "outputs": [
                {
                    "output_type": "stream",
                    "name": "stderr",
                    "text": ["loading\n", "corrupt cache entry abc123 (checksum mismatch): rebuilt\n"],
                }
            ],
        }
        with open(output, "w") as f:
            json.dump({"cells": [cell]}, f)

    def publish_then_another_run(folder, target):
        """Right after this run publishes, a concurrent run of the same study does."""
        publish_folder(folder, target)
        monkeypatch.setenv("IPKIT_FIGURES", str(folders / "other"))
        other = _kernel(7, "scorecard", 0.1)
        publish_folder(other.published, target)

    monkeypatch.setattr(papermill, "execute_notebook", fake_execute)
    monkeypatch.setattr(parallel, "publish_folder", publish_then_another_run)
    assert cli.main(["run", QUICK, "--profile", "smoke", "-p", "epochs=1"]) == 0
    out, err = capsys.readouterr()
    assert "Q1 holds" in out
    assert "does not hold" not in out
    assert "ipkit: corrupt cache entry abc123 (checksum mismatch): rebuilt" in err
    published = json.loads((folders / "IPKIT_FIGURES" / QUICK / "smoke" / "results.json").read_text())
    assert published["params"]["epochs"] == 7
    monkeypatch.setenv("IPKIT_FIGURES", str(folders / "IPKIT_FIGURES"))
    assert cli.main(["run", QUICK, "--profile", "smoke", "-p", "epochs=1"]) == 0
    assert len({os.path.basename(n) for n in notebooks}) == 2


def test_results_and_figures_are_written_atomically(folders, monkeypatch):
    run = _kernel(1, "line", 0.9)
    written = []
    real = files.os.replace
    monkeypatch.setattr(files.os, "replace", lambda src, dst: (written.append(dst), real(src, dst)))
    run.record({"rate": 0.9}, [_claim(0.9)])
    fig, ax = plt.subplots()
    run.savefig(fig, "again")
    run.table(pd.DataFrame({"a": [1]}), "tab")
    names = {Path(p).name for p in written}
    assert {"results.json", "results.md", "again.png", "again.svg", "tab.csv", "tab.md"} <= names
    assert not list(run.out.glob(".*.tmp"))


def test_report_names_a_torn_results_file_and_goes_on(folders, capsys):
    good = _kernel(1, "line", 0.9)
    torn = folders / "IPKIT_FIGURES" / "modeldiff" / "smoke" / "results.json"
    torn.parent.mkdir(parents=True)
    torn.write_text((good.out / "results.json").read_text()[:200])
    assert cli.main(["report"]) == 0
    err = capsys.readouterr().err
    text = (folders / "IPKIT_FIGURES" / "README.md").read_text()
    assert "modeldiff/smoke/results.json is unreadable (JSONDecodeError" in err
    assert "results.json unreadable" in text
    assert "quickstart/smoke/line.png" in text


@pytest.mark.parametrize("content", ['{"claims": [1, 2]}', '"a string"', "[" * 200_000 + "]" * 200_000, None])
def test_report_names_a_results_file_of_the_wrong_shape_and_goes_on(folders, capsys, content):
    """Claims that are numbers, a bare string, JSON nested 200,000 deep, or a committed file
    with its claims replaced by a string: listed as unreadable in one line, the gallery written."""
    good = _kernel(1, "line", 0.9)
    bad = folders / "IPKIT_FIGURES" / "modeldiff" / "smoke" / "results.json"
    bad.parent.mkdir(parents=True)
    if content is None:
        content = json.dumps({**json.loads((good.out / "results.json").read_text()), "claims": "Q1"})
    bad.write_text(content)
    assert cli.main(["report"]) == 0
    (line,) = [ln for ln in capsys.readouterr().err.splitlines() if "modeldiff" in ln]
    assert "modeldiff/smoke/results.json is unreadable (" in line
    assert len(line) < 400
    text = (folders / "IPKIT_FIGURES" / "README.md").read_text()
    assert "results.json unreadable" in text
    assert "quickstart/smoke/line.png" in text


PUBLISHER = """
import sys
from pathlib import Path
from ipkit.notebook.runtime import publish_folder
src, target = Path(sys.argv[1]), Path(sys.argv[2])
src.mkdir()
for i in range(5):
    (src / f"{src.name}{i}.txt").write_text(src.name * 1000)
for _ in range(40):
    publish_folder(src, target)
"""


def test_two_processes_publishing_at_once_never_mix(tmp_path):
    import subprocess
    import sys

    target = tmp_path / "figures" / QUICK / "smoke"
    procs = [subprocess.Popen([sys.executable, "-c", PUBLISHER, str(tmp_path / tag), str(target)]) for tag in "ab"]
    assert [p.wait(120) for p in procs] == [0, 0]
    names = sorted(p.name for p in target.iterdir())
    assert names in ([f"a{i}.txt" for i in range(5)], [f"b{i}.txt" for i in range(5)])
    assert [p.name for p in target.parent.iterdir()] == ["smoke"]


def test_start_applies_profile_only_to_untouched_parameters(monkeypatch):
    monkeypatch.setenv("IPKIT_PROFILE", "smoke")
    info = get_study(QUICK)
    ns = {n: p.default for n, p in info.params.items()}
    ns["query_budget"] = 777
    run = start(QUICK, ns, info.profiles)
    assert run.profile == "smoke"
    assert ns["query_budget"] == 777
    assert ns["epochs"] == info.profiles["smoke"]["epochs"] == run.p.epochs
    ns["epochs"] = "ten"
    with pytest.raises(ParamError, match="expects int"):
        start(QUICK, ns, info.profiles)


def test_start_refuses_a_parameter_papermill_injected_but_the_notebook_lacks(monkeypatch):
    monkeypatch.setenv("IPKIT_PROFILE", "smoke")
    info = get_study(QUICK)
    ns = {n: p.default for n, p in info.params.items()}
    ns["In"] = ["", "profile = 'default'\n", "# Parameters\nepochs = 1\nbogus = 3\n", "run = ..."]
    with pytest.raises(ParamError, match=r"unknown parameter 'bogus' .* declares profile, dataset"):
        start(QUICK, ns, info.profiles)
    ns["In"][2] = "# Parameters\nepochs = 1\nPAPERMILL_INPUT_PATH = 'x'\n"
    assert start(QUICK, ns, info.profiles).profile == "smoke"


def test_papermill_run_with_an_undeclared_parameter_stops_at_set_up(tmp_path):
    import papermill as pm

    info = get_study(QUICK)
    with pytest.raises(pm.PapermillExecutionError) as err:
        pm.execute_notebook(
            str(info.path),
            str(tmp_path / "out.ipynb"),
            parameters={"bogus": 1},
            kernel_name="python3",
            cwd=str(info.path.parent),
            progress_bar=False,
        )
    assert err.value.ename == "ParamError"
    assert "'bogus'" in err.value.evalue
    assert "query_budget" in err.value.evalue
