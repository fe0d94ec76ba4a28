"""Repository rules: notebooks committed without outputs, every study declares its
parameters and three profiles, dependencies agree between pyproject and
environment.yml, and CI runs the README's test command."""

import json
import re
from pathlib import Path

import pytest
import tomllib

from ipkit.evidence import results, sensitivity
from ipkit.notebook.params import check_value
from ipkit.notebook.registry import read_study, study_module

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_without_outputs(path):
    cells = json.loads(path.read_text())["cells"]
    assert not [c for c in cells if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_study_declares_parameters_and_profiles(path):
    info = read_study(path)
    assert info.params["profile"].default == "default"
    assert {"smoke", "paper"} <= set(info.profiles)
    for profile in info.profiles.values():
        assert set(profile) <= set(info.params), "a profile sets an unknown parameter"
        for name, value in profile.items():
            check_value(info.params[name], value)
    assert info.summary, "the first markdown cell needs a one-sentence summary"


def _names(specs):
    """Package names of requirement specs, normalised as PyPI does (PEP 503)."""
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ]", s.strip(), maxsplit=1)[0]).lower() for s in specs}


def test_environment_yml_matches_pyproject():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = set(meta["dependencies"]).union(*meta["optional-dependencies"].values())
    env = (ROOT / "environment.yml").read_text()
    pip_lines = [ln.strip()[2:] for ln in env.split("- pip:")[1].splitlines() if ln.strip().startswith("- ")]
    assert set(pip_lines) - {"-e ."} == declared


def test_constraints_pin_every_dependency():
    pinned = _names(ln.split("==")[0] for ln in (ROOT / "constraints.txt").read_text().splitlines() if "==" in ln)
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = _names(set(meta["dependencies"]).union(*meta["optional-dependencies"].values()))
    assert wanted <= pinned


def test_ci_runs_the_readme_test_command():
    command = re.search(r"^make \S+", (ROOT / ".ci" / "run").read_text(), re.M).group(0)
    assert command == "make test"
    assert command in (ROOT / "README.md").read_text()


@pytest.mark.parametrize(
    "path", sorted((ROOT / "figures").glob("*/default/results.json")), ids=lambda p: p.parent.parent.name
)
def test_committed_default_claims_carry_the_evidence_rules(path):
    """Every claim of a committed default run states its paper words, quantifier, familywise
    level and trainings (at least 3, or a capped verdict saying why), follows the results
    schema, and, where its study's alternatives are drawn in the committed folder, its
    verdict at each and `robust` (alternatives not drawn yet are listed as pending, with
    the command that draws them, by `ipkit.evidence.sensitivity.report`)."""
    data = json.loads(path.read_text())
    results.check_results(data)
    alternated = {
        c
        for sw in sensitivity.declared(study_module(data["study"]), "alternatives")
        for c in sw.claims
        if sensitivity.summary_path(path.parent, sw).is_file()
    }
    for c in data["claims"]:
        assert c["level"] == pytest.approx(1 - 0.05 / len(c["parts"])), c["id"]
        not_measured = c["n"] == 0 and "nan [nan, nan]" in c["measured"]  # the part names why
        assert c["trainings"] >= results.MIN_TRAININGS or (
            c["verdict"] in ("inconclusive", "untestable here") and (c.get("why") or not_measured)
        ), c["id"]
        assert c["paper_words"] or "beyond the paper" in c["statement"] or "tutorial" in c["statement"], c["id"]
        if c["id"] in alternated:
            assert "alternatives" in c, c["id"]
            assert isinstance(c["robust"], bool), c["id"]
