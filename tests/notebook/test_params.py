"""The parameter-comment format: types, bounds and choices read from a parameters cell
(ipkit.notebook.params)."""

from ipkit.notebook.params import coerce, parse_params


def test_parse_params_types_and_specs():
    src = 'a = 1.5  # [0, 2] weight\nb = ["x"]  # {x, y} names\nc = True  # flag\n'
    p = parse_params(src)
    assert (p["a"].type, p["a"].bounds, p["a"].help) == ("float", (0.0, 2.0), "weight")
    assert p["b"].type == "list[str]"
    assert p["b"].choices == ["x", "y"]
    assert p["c"].type == "bool"
    assert coerce(p["c"], "false") is False
