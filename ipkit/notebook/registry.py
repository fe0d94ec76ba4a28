"""The study registry: every study notebook, its parameters and profiles, its module, and
the parameter values a run resolves to.

A notebook's ``parameters`` cell declares the parameters (:mod:`ipkit.notebook.params`). A
later cell defines ``PROFILES = {"smoke": {...}, "paper": {...}}``: the values each profile
changes. The ``default`` profile is the notebook's own values. A value the user sets (in
the notebook, with ``ipkit run -p`` or papermill) always wins over the profile's. A rule
that ties several parameters together, or a parameter to the data (a budget against the
attacker pool), is ``check_params(values)`` in the study's module
``ipkit.studies.<study_id>``.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from ..core.catalog import ARCHS, fits
from ..core.paths import notebooks_dir
from .params import PROFILE_NAMES, Param, ParamError, check_value, parse_params, quote


@dataclass
class StudyInfo:
    """A study notebook: id, path, title, one-line summary, parameters and profiles."""

    id: str
    path: Path
    title: str
    summary: str
    params: dict[str, Param] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(cast(ast.AST, k)): _literal(v) for k, v in zip(node.keys, node.values)}
    return ast.literal_eval(node)


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def read_study(path: Path) -> StudyInfo:
    """Parse a study notebook: title and summary (first markdown cell), parameters, profiles."""
    cells = _cells(path)
    study_id = re.sub(r"^\d+_", "", path.stem)
    title, summary = study_id, ""
    for cell in cells:
        if cell["cell_type"] == "markdown":
            lines = [ln.strip() for ln in _source(cell).splitlines() if ln.strip()]
            title = lines[0].lstrip("# ").strip() if lines else study_id
            summary = next((ln for ln in lines[1:] if not ln.startswith("#")), "")
            break
    params: dict[str, Param] = {}
    profiles: dict[str, dict[str, Any]] = {}
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        src = _source(cell)
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            params = parse_params(src)
        for node in ast.parse(src).body:
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "PROFILES"
            ):
                profiles = _literal(node.value)
    return StudyInfo(study_id, path, title, summary.split(". ")[0].rstrip("."), params, profiles)


def studies() -> dict[str, StudyInfo]:
    """Every study notebook in :func:`notebooks_dir`, by id, in file order."""
    return {info.id: info for info in (read_study(p) for p in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")))}


def get_study(study_id: str) -> StudyInfo:
    """The study ``study_id``, or a :class:`ParamError` listing the known ones."""
    found = studies()
    if study_id not in found:
        raise ParamError(f"unknown study '{study_id}': choose one of {', '.join(found)} (see `ipkit list`)")
    return found[study_id]


def lookup(info: StudyInfo, name: str) -> Param:
    """The parameter ``name`` of ``info`` (not ``profile``, which has its own option), or a
    :class:`ParamError` listing the parameters there are."""
    if name not in info.params or name == "profile":
        hint = " (use --profile)" if name == "profile" else ""
        raise ParamError(unknown_parameter(info, name, hint))
    return info.params[name]


def unknown_parameter(info: StudyInfo, name: str, hint: str = "") -> str:
    """The one line refusing parameter ``name``: the closest declared names, or all of them
    when there are few, and where to see them all."""
    names = [n for n in info.params if n != "profile"]
    close = difflib.get_close_matches(name.lower(), names, n=3, cutoff=0.6)
    if close:
        choose = f"did you mean {' or '.join(close)}? (`ipkit list` shows all {len(names)})"
    elif len(", ".join(names)) <= 160:
        choose = f"choose one of {', '.join(names)}"
    else:
        choose = f"`ipkit list` shows its {len(names)} parameters"
    return f"unknown parameter {quote(name)} for study '{info.id}'{hint}: {choose}"


def resolve(info: StudyInfo, profile: str, given: dict[str, Any]) -> dict[str, Any]:
    """Parameter values in effect: notebook defaults, then the profile's, then ``given``.

    Raises ParamError (one line) for an unknown profile or parameter, a bad value, a
    broken rule of the study's ``check_params``, and when the resolved dataset is not
    available here.
    """
    if profile not in PROFILE_NAMES:
        raise ParamError(f"unknown profile '{profile}': choose one of {', '.join(PROFILE_NAMES)}")
    if profile != "default" and profile not in info.profiles:
        raise ParamError(
            f"study '{info.id}' defines no '{profile}' profile: choose one of default, {', '.join(info.profiles)}"
        )
    for name in given:
        if name not in info.params:
            raise ParamError(unknown_parameter(info, name))
    values = {n: p.default for n, p in info.params.items()}
    values.update(info.profiles.get(profile, {}))
    values.update(given)
    values["profile"] = profile
    out = {n: check_value(info.params[n], v) if n in info.params else v for n, v in values.items()}
    if "dataset" in out:
        check_archs(out)
        from ..methods.data import DataError, available  # torch: only once the values are sound

        try:
            available(out["dataset"])
        except DataError as err:
            raise ParamError(str(err)) from None
    check = study_check(info.id)
    if check is not None:
        check(out)
    return out


def check_archs(values: dict[str, Any]) -> None:
    """Raise ParamError unless every architecture parameter (a name with ``arch`` in it,
    one value or a list) fits the dataset's images (:func:`ipkit.core.catalog.fits`)."""
    for name, value in values.items():
        if "arch" not in name:
            continue
        for arch in value if isinstance(value, list) else [value]:
            if arch in ARCHS and (why := fits(arch, values["dataset"])):
                raise ParamError(f"parameter '{name}': {why}: choose another architecture (e.g. cnn) or dataset")


def study_module(study_id: str) -> ModuleType | None:
    """The module ``ipkit.studies.<study_id>``, or None while a study has none."""
    try:
        return importlib.import_module(f"ipkit.studies.{study_id}")
    except ModuleNotFoundError as err:
        if err.name != f"ipkit.studies.{study_id}":
            raise
        return None


def study_check(study_id: str) -> Callable[[dict[str, Any]], None] | None:
    """The study's ``check_params(values)``: rules across parameters and against the data."""
    module = study_module(study_id)
    return None if module is None else getattr(module, "check_params", None)
