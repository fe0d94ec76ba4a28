"""The study contract (``ipkit/studies/__init__.py``), checked for every study module: a
frozen, hashable ``Config`` built from the resolved parameters, ``check_params``,
``SENSITIVITY`` (and ``ALTERNATIVES`` where declared: tuples of sweeps), ``claims``,
``hyperparameters(s, cfg)``, ``recorded_metrics`` (what ``run.record`` stores) and ``explore`` (the
notebook's Explore panel)."""

import ast
import dataclasses
import importlib.util
import inspect
import json
from pathlib import Path

import pytest

from ipkit.evidence.sensitivity import Sweep
from ipkit.notebook.registry import get_study, resolve, studies, study_module
from ipkit.studies import Params

ROOT = Path(__file__).resolve().parents[2]

STUDIES = sorted(studies())


@pytest.fixture(params=STUDIES)
def sid(request) -> str:
    return request.param


def test_config_is_frozen_and_hashable(sid):
    module = study_module(sid)
    assert issubclass(module.Config, Params)
    assert module.Config.__dataclass_params__.frozen
    cfg = module.Config.from_params(resolve(get_study(sid), "default", {}))
    assert hash(cfg) == hash(dataclasses.replace(cfg))


def test_check_params_claims_and_sweeps_are_declared(sid):
    module = study_module(sid)
    for name in ("check_params", "hyperparameters", "claims", "recorded_metrics", "explore"):
        assert callable(getattr(module, name, None)), name
    for name in ("SENSITIVITY", "ALTERNATIVES"):  # ALTERNATIVES only where defaults were chosen
        sweeps = getattr(module, name) if name == "SENSITIVITY" else getattr(module, name, ())
        assert isinstance(sweeps, tuple), name
        assert all(isinstance(sw, Sweep) for sw in sweeps), name


def test_hyperparameters_take_the_splits_and_the_config(sid):
    names = list(inspect.signature(study_module(sid).hyperparameters).parameters)
    assert names == ["s", "cfg"]


def test_hyperparameters_are_plain_values_with_the_trainer_settings(sid, digits):
    module = study_module(sid)
    values = resolve(get_study(sid), "default", {})
    hyper = module.hyperparameters(digits, module.Config.from_params(values))
    json.dumps(hyper)  # plain values: results.json stores them as they are
    assert hyper["fit"]["epochs"] == values["epochs"]


def _explore_cell(sid: str) -> str:
    """The notebook's Explore cell as the course apps read it (course/apps/explore_cell.py)."""
    spec = importlib.util.spec_from_file_location("explore_cell", ROOT / "course" / "apps" / "explore_cell.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.explore_cell(sid)


def test_each_course_app_defines_the_names_its_explore_cell_reads(sid):
    cell = ast.parse(_explore_cell(sid))
    app = json.loads((ROOT / "course" / "apps" / f"{sid}.ipynb").read_text())
    setup = ast.parse(
        "\n".join(line for line in "".join(app["cells"][1]["source"]).splitlines() if not line.startswith("%"))
    )
    defined = {
        a.asname or a.name for n in ast.walk(setup) if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names
    }
    defined |= {n.id for n in ast.walk(setup) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    read = {n.id for n in ast.walk(cell) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert read <= defined, f"course/apps/{sid}.ipynb lacks {sorted(read - defined)}"
