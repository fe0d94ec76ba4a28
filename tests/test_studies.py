"""The study contract (``ipkit/studies/__init__.py``), checked for every study module: a
frozen, hashable ``Config`` built from the resolved parameters, ``check_params``,
``SENSITIVITY`` (and ``ALTERNATIVES`` where declared: tuples of sweeps), ``claims`` and
``hyperparameters(s, cfg)``."""
import dataclasses
import json
import inspect

import pytest

from ipkit.evidence.sensitivity import Sweep
from ipkit.notebook.registry import get_study, resolve, studies, study_module
from ipkit.studies import Params

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
    assert callable(module.check_params) and callable(module.claims)
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
