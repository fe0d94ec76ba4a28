"""The study registry: parameters read from a notebook's parameters cell and resolved
against a profile (ipkit.notebook.registry)."""

from ipkit.notebook.registry import get_study, resolve
from tests.helpers import QUICK


def test_parameters_read_from_the_parameters_cell():
    info = get_study(QUICK)
    p = info.params
    assert p["query_budget"].type == "int"
    assert p["query_budget"].bounds == (10, 50000)
    assert "mnist5k" in p["dataset"].choices
    assert "resnet18" in p["victim_arch"].choices
    assert p["seeds"].type == "list[int]"
    assert {"smoke", "paper"} <= set(info.profiles)


def test_resolve_profile_then_user_values():
    info = get_study(QUICK)
    smoke = resolve(info, "smoke", {})
    assert smoke["epochs"] == info.profiles["smoke"]["epochs"]
    mine = resolve(info, "smoke", {"epochs": 3})
    assert mine["epochs"] == 3
    assert mine["profile"] == "smoke"
