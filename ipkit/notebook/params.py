"""Study parameters: the parameter-comment format of a notebook's ``parameters`` cell, and
the checks of a value against its declaration.

A study is one notebook ``notebooks/NN_<study>.ipynb``. Its cell tagged ``parameters``
(papermill's convention) declares every parameter with its default-profile value and a
comment that gives the allowed values and a short help text::

    dataset = "mnist5k"     # {@datasets} images the victim learns
    alpha = 1.0             # [0, 100] weight of the gradient-matching term
    wm_kind = "noise"       # {noise, ood, flipped} kind of memorized example
    seeds = [0, 1, 2]       # [0, 100000] one run per seed

``{a, b}`` lists the allowed values (``@datasets`` and ``@archs`` stand for the registries),
``[lo, hi]`` an inclusive range; for a list, each element is checked. Profiles and the study
registry are :mod:`ipkit.notebook.registry`.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass
from typing import Any

from ..core.catalog import ARCHS, DATASETS

PROFILE_NAMES = ("smoke", "default", "paper")


class ParamError(ValueError):
    """A bad study name, parameter name, type or value; the message names the fix."""


@dataclass
class Param:
    """One notebook parameter: its default, type, allowed values or range, and help."""

    name: str
    default: Any
    type: str
    choices: list[str] | None = None
    bounds: tuple[float, float] | None = None
    help: str = ""

    def describe(self) -> str:
        allowed = ""
        if self.choices:
            allowed = " one of {" + ", ".join(self.choices) + "}"
        elif self.bounds:
            allowed = f" in [{_fmt(self.bounds[0])}, {_fmt(self.bounds[1])}]"
        return f"{self.type}{allowed}"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else str(v)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, (list, tuple)) and value:
        inner = {_type_name(v) for v in value}
        if inner == {"int", "float"}:
            inner = {"float"}
        if len(inner) == 1 and not next(iter(inner)).startswith("list"):
            return f"list[{inner.pop()}]"
    raise ParamError(
        f"parameter default {quote(value)} has no supported type "
        "(bool, int, float, str or a non-empty list of one of them)"
    )


def _registry(token: str) -> list[str]:
    table = {"@datasets": list(DATASETS), "@archs": list(ARCHS), "@profiles": list(PROFILE_NAMES)}
    if token not in table:
        raise ParamError(f"unknown registry '{token}' in a parameter comment: use one of {', '.join(table)}")
    return table[token]


def _parse_spec(comment: str) -> tuple[list[str] | None, tuple[float, float] | None, str]:
    text = comment.lstrip("#").strip()
    m = re.match(r"\{([^}]*)\}\s*(.*)", text)
    if m:
        choices: list[str] = []
        for item in (s.strip() for s in m.group(1).split(",")):
            choices += _registry(item) if item.startswith("@") else [item]
        return choices, None, m.group(2)
    m = re.match(r"\[\s*([-+0-9.eE]+)\s*,\s*([-+0-9.eE]+)\s*\]\s*(.*)", text)
    if m:
        return None, (float(m.group(1)), float(m.group(2))), m.group(3)
    return None, None, text


def parse_params(source: str) -> dict[str, Param]:
    """Read the parameters (name, default, type, allowed values, help) from a cell's source."""
    comments = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string
    params: dict[str, Param] = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        default = ast.literal_eval(node.value)
        choices, bounds, help_text = _parse_spec(comments.get(node.end_lineno or node.lineno, ""))
        params[name] = Param(name, default, _type_name(default), choices, bounds, help_text)
    return params


def _check_scalar(p: Param, kind: str, value: Any) -> Any:
    ok = {
        "bool": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, (int, float)) and not isinstance(value, bool),
        "str": isinstance(value, str),
    }[kind]
    if not ok:
        raise ParamError(
            f"parameter '{p.name}' expects {p.describe()}, got {quote(value)} "
            f"({type(value).__name__}): e.g. -p {p.name}={_example(p)}"
        )
    if p.choices and str(value) not in p.choices:
        raise ParamError(f"parameter '{p.name}' must be one of {{{', '.join(p.choices)}}}, got {quote(value)}")
    if p.bounds and not p.bounds[0] <= value <= p.bounds[1]:
        raise ParamError(
            f"parameter '{p.name}' must lie in [{_fmt(p.bounds[0])}, {_fmt(p.bounds[1])}], got {quote(value)}"
        )
    return float(value) if kind == "float" else value


def _example(p: Param) -> str:
    d = p.default
    return ",".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)


#: The most values a list parameter may hold (one of choices: at most one of each choice):
#: more seeds or settings than any study can use in one run on one machine.
MAX_LIST = 20


def quote(value: Any, limit: int = 60) -> str:
    """``repr(value)``, cut to ``limit`` characters (an error line quotes what it refuses)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + "...'" if text[0] == "'" else text[: limit - 4] + "..."


def check_value(p: Param, value: Any) -> Any:
    """Return ``value`` if it has ``p``'s type and lies in its allowed set; else ParamError.

    The rules every study shares: a list is non-empty, holds each value once and at most
    :data:`MAX_LIST` values (or as many as it has choices)."""
    if p.type.startswith("list["):
        if not isinstance(value, (list, tuple)) or not value:
            raise ParamError(
                f"parameter '{p.name}' expects a non-empty {p.describe()}, got "
                f"{quote(value)}: e.g. -p {p.name}={_example(p)}"
            )
        most = len(p.choices) if p.choices else MAX_LIST
        if len(value) > most:
            raise ParamError(
                f"parameter '{p.name}' takes at most {most} values, got {len(value)}: e.g. -p {p.name}={_example(p)}"
            )
        checked = [_check_scalar(p, p.type[5:-1], v) for v in value]
        twice = next((v for i, v in enumerate(checked) if v in checked[:i]), None)
        if twice is not None:
            raise ParamError(f"parameter '{p.name}' lists {quote(twice)} twice: give each value once")
        return checked
    return _check_scalar(p, p.type, value)


_NUMERALS = {
    "int": re.compile(r"[+-]?[0-9]+", re.ASCII),
    "float": re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII),
}


def coerce(p: Param, text: str) -> Any:
    """Turn command-line text into ``p``'s type (lists: comma-separated), then check it.

    Numbers must be plain ASCII numerals (``12``, ``-0.5``, ``1e-3``): Python's own
    ``int`` and ``float`` would also take full-width or Arabic-Indic digits, ``1_000``,
    ``nan`` and ``inf``.
    """
    kind = p.type[5:-1] if p.type.startswith("list[") else p.type

    def one(item: str) -> Any:
        item = item.strip()
        try:
            if kind == "bool":
                if item.lower() in ("1", "true", "yes"):
                    return True
                if item.lower() in ("0", "false", "no"):
                    return False
                raise ValueError
            if kind in _NUMERALS:
                if not _NUMERALS[kind].fullmatch(item):
                    raise ValueError
                return int(item) if kind == "int" else float(item)
            return item.strip("'\"")
        except ValueError:
            fix = "e.g." if item.isascii() else "write it in ASCII digits, e.g."
            raise ParamError(
                f"parameter '{p.name}' expects {p.describe()}, got {quote(item)}: {fix} -p {p.name}={_example(p)}"
            ) from None

    if p.type.startswith("list["):
        value: Any = [one(s) for s in text.strip("[]").split(",") if s.strip()]
    else:
        value = one(text)
    return check_value(p, value)
