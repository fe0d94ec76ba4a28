"""The course kit (course/): every lesson is a valid otter-grader master; its solution scores
full marks and its blank student version zero under ``otter run`` (no Docker); no solution
line or hidden test reaches a student notebook."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("otter", reason="otter-grader is in the 'course' extra")

ROOT = Path(__file__).resolve().parents[1]
LESSONS = sorted((ROOT / "course" / "lessons").glob("*.ipynb"))
OTTER = [sys.executable, "-m", "otter"]


def _env():
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module", params=LESSONS, ids=lambda p: p.stem)
def assigned(request, tmp_path_factory):
    """``otter assign`` of one lesson: (master path, output folder)."""
    out = tmp_path_factory.mktemp(request.param.stem)
    done = subprocess.run(
        [*OTTER, "assign", "--no-run-tests", str(request.param), str(out / "dist")],
        capture_output=True,
        text=True,
        env=_env(),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return request.param, out / "dist"


def _cells(path):
    return json.loads(Path(path).read_text())["cells"]


def _secret_lines(master):
    """Lines a student must never see: solution lines (``# SOLUTION`` or inside a
    solution block, and every line of a markdown solution) and hidden test lines."""
    secret, block, tests = [], False, False
    for cell in _cells(master):
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw":
            block = {"# BEGIN SOLUTION": True, "# END SOLUTION": False}.get(text.strip(), block)
            tests = {"# BEGIN TESTS": True, "# END TESTS": False}.get(text.strip(), tests)
            continue
        lines = text.splitlines()
        if block and cell["cell_type"] == "markdown":
            secret += lines
        elif block:
            secret += [ln.split("# SOLUTION")[0] for ln in lines if ln.rstrip().endswith("# SOLUTION")]
        elif tests and "hidden: true" in text:
            secret += lines[3:]
    return [s.strip() for s in secret if len(s.strip()) > 12]


def test_lessons_exist():
    assert len(LESSONS) >= 1


def test_masters_committed_without_outputs():
    for path in LESSONS:
        assert not [
            c for c in _cells(path) if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count"))
        ], path.name


def test_assign_builds_student_autograder_and_zip(assigned):
    master, dist = assigned
    assert (dist / "student" / master.name).is_file()
    assert (dist / "autograder" / master.name).is_file()
    assert list((dist / "autograder").glob("*.zip"))


def test_no_solution_in_student_notebook(assigned):
    master, dist = assigned
    student = "\n".join("".join(c["source"]) for c in _cells(dist / "student" / master.name))
    secret = _secret_lines(master)
    assert secret, "the lesson marks no solution lines"
    leaked = [s for s in secret if s in student]
    assert not leaked, leaked


def _grade(dist, notebook, out):
    zipfile = next((dist / "autograder").glob("*.zip"))
    work = out / notebook.parent.name
    shutil.copytree(notebook.parent, work)
    done = subprocess.run(
        [*OTTER, "run", "--no-logo", "-a", str(zipfile), "-o", str(work), str(work / notebook.name)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    tests = json.loads((work / "results.json").read_text())["tests"]
    return {t["name"]: t for t in tests if t["name"] != "Public Tests"}


def _autograded(master):
    names = []
    for cell in _cells(master):
        text = "".join(cell["source"])
        if cell["cell_type"] == "raw" and text.startswith("# BEGIN QUESTION") and "manual: true" not in text:
            names.append(re.search(r"name:\s*(\S+)", text).group(1))
    return names


@pytest.mark.slow
def test_solution_scores_full_marks(assigned, tmp_path):
    master, dist = assigned
    scores = _grade(dist, dist / "autograder" / master.name, tmp_path)
    assert set(scores) == set(_autograded(master))
    assert {n: t["score"] for n, t in scores.items()} == {n: t["max_score"] for n, t in scores.items()}, {
        n: t["output"][-800:] for n, t in scores.items() if t["score"] != t["max_score"]
    }


@pytest.mark.slow
def test_blank_student_scores_zero(assigned, tmp_path):
    master, dist = assigned
    scores = _grade(dist, dist / "student" / master.name, tmp_path)
    assert set(scores) == set(_autograded(master))
    assert all(t["score"] == 0 for t in scores.values()), scores


def test_at_least_half_the_questions_autograded():
    for path in LESSONS:
        questions = [
            c for c in _cells(path) if c["cell_type"] == "raw" and "".join(c["source"]).startswith("# BEGIN QUESTION")
        ]
        assert 3 <= len(questions) <= 4, path.name
        assert 2 * len(_autograded(path)) >= len(questions), path.name


def test_student_code_cells_parse(assigned):
    """A student notebook's stubs (solution lines replaced by ``...``) are valid Python."""
    import ast

    master, dist = assigned
    for cell in _cells(dist / "student" / master.name):
        text = "".join(cell["source"])
        if cell["cell_type"] == "code" and not text.startswith("%"):
            ast.parse(text)
