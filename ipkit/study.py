"""Studies, their parameters and profiles, and the run context a notebook works in.

A study is one notebook ``notebooks/NN_<study>.ipynb``. Its cell tagged ``parameters``
(papermill's convention) declares every parameter with its default-profile value and a
comment that gives the allowed values and a short help text::

    dataset = "mnist5k"     # {@datasets} images the victim learns
    alpha = 1.0             # [0, 100] weight of the gradient-matching term
    wm_kind = "noise"       # {noise, ood, flipped} kind of memorized example
    seeds = [0, 1, 2]       # [0, 100000] one run per seed

``{a, b}`` lists the allowed values (``@datasets`` and ``@archs`` stand for the registries),
``[lo, hi]`` an inclusive range; for a list, each element is checked. A later cell defines
``PROFILES = {"smoke": {...}, "paper": {...}}``: the values each profile changes. The
``default`` profile is the notebook's own values. A value the user sets (in the notebook,
with ``ipkit run -p`` or papermill) always wins over the profile's. A rule that ties
several parameters together, or a parameter to the data (a budget against the attacker
pool), is ``check_params(values)`` in the study's module ``ipkit.studies.<study_id>``.
"""
from __future__ import annotations

import ast
import errno
import importlib
import io
import json
import os
import re
import shutil
import time
import tokenize
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from . import timings

PROFILE_NAMES = ("smoke", "default", "paper")


class ParamError(ValueError):
    """A bad study name, parameter name, type or value; the message names the fix."""


def repo_root() -> Path:
    """The checkout this package lives in (holds notebooks/ and figures/)."""
    return Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    """Folder of study notebooks: ``IPKIT_NOTEBOOKS``, else ``<repo>/notebooks``."""
    return Path(os.environ.get("IPKIT_NOTEBOOKS") or repo_root() / "notebooks")


def figures_dir() -> Path:
    """Folder figures and results go to: ``IPKIT_FIGURES``, else ``<repo>/figures``."""
    return Path(os.environ.get("IPKIT_FIGURES") or repo_root() / "figures")


def runs_dir() -> Path:
    """Folder executed notebooks go to: ``IPKIT_RUNS``, else ``<repo>/runs`` (git-ignored)."""
    return Path(os.environ.get("IPKIT_RUNS") or repo_root() / "runs")


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


@dataclass
class StudyInfo:
    """A study notebook: id, path, title, one-line summary, parameters and profiles."""

    id: str
    path: Path
    title: str
    summary: str
    params: dict[str, Param] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)


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
    raise ParamError(f"parameter default {value!r} has no supported type "
                     "(bool, int, float, str or a non-empty list of one of them)")


def _registry(token: str) -> list[str]:
    from .data import DATASETS
    from .models import ARCHS

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
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)):
            continue
        name = node.targets[0].id
        default = ast.literal_eval(node.value)
        choices, bounds, help_text = _parse_spec(comments.get(node.end_lineno, ""))
        params[name] = Param(name, default, _type_name(default), choices, bounds, help_text)
    return params


def _literal(node: ast.AST) -> Any:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return {kw.arg: _literal(kw.value) for kw in node.keywords}
    if isinstance(node, ast.Dict):
        return {_literal(k): _literal(v) for k, v in zip(node.keys, node.values)}
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
            if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id == "PROFILES"):
                profiles = _literal(node.value)
    return StudyInfo(study_id, path, title, summary.split(". ")[0].rstrip("."), params, profiles)


def studies() -> dict[str, StudyInfo]:
    """Every study notebook in :func:`notebooks_dir`, by id, in file order."""
    return {info.id: info for info in
            (read_study(p) for p in sorted(notebooks_dir().glob("[0-9][0-9]_*.ipynb")))}


def get_study(study_id: str) -> StudyInfo:
    """The study ``study_id``, or a :class:`ParamError` listing the known ones."""
    found = studies()
    if study_id not in found:
        raise ParamError(f"unknown study '{study_id}': choose one of {', '.join(found)} "
                         "(see `ipkit list`)")
    return found[study_id]


def lookup(info: StudyInfo, name: str) -> Param:
    """The parameter ``name`` of ``info`` (not ``profile``, which has its own option), or a
    :class:`ParamError` listing the parameters there are."""
    if name not in info.params or name == "profile":
        hint = " (use --profile)" if name == "profile" else ""
        raise ParamError(f"unknown parameter {name!r} for study '{info.id}'{hint}: choose one of "
                         f"{', '.join(n for n in info.params if n != 'profile')}")
    return info.params[name]


def _check_scalar(p: Param, kind: str, value: Any) -> Any:
    ok = {"bool": isinstance(value, bool),
          "int": isinstance(value, int) and not isinstance(value, bool),
          "float": isinstance(value, (int, float)) and not isinstance(value, bool),
          "str": isinstance(value, str)}[kind]
    if not ok:
        raise ParamError(f"parameter '{p.name}' expects {p.describe()}, got {value!r} "
                         f"({type(value).__name__}): e.g. -p {p.name}={_example(p)}")
    if p.choices and str(value) not in p.choices:
        raise ParamError(f"parameter '{p.name}' must be one of {{{', '.join(p.choices)}}}, "
                         f"got {value!r}")
    if p.bounds and not p.bounds[0] <= value <= p.bounds[1]:
        raise ParamError(f"parameter '{p.name}' must lie in [{_fmt(p.bounds[0])}, "
                         f"{_fmt(p.bounds[1])}], got {value!r}")
    return float(value) if kind == "float" else value


def _example(p: Param) -> str:
    d = p.default
    return ",".join(map(str, d)) if isinstance(d, (list, tuple)) else str(d)


def check_value(p: Param, value: Any) -> Any:
    """Return ``value`` if it has ``p``'s type and lies in its allowed set; else ParamError."""
    if p.type.startswith("list["):
        if not isinstance(value, (list, tuple)) or not value:
            raise ParamError(f"parameter '{p.name}' expects a non-empty {p.describe()}, got "
                             f"{value!r}: e.g. -p {p.name}={_example(p)}")
        return [_check_scalar(p, p.type[5:-1], v) for v in value]
    return _check_scalar(p, p.type, value)


_NUMERALS = {"int": re.compile(r"[+-]?[0-9]+", re.ASCII),
             "float": re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", re.ASCII)}


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
            raise ParamError(f"parameter '{p.name}' expects {p.describe()}, got {item!r}: "
                             f"{fix} -p {p.name}={_example(p)}") from None

    if p.type.startswith("list["):
        value: Any = [one(s) for s in text.strip("[]").split(",") if s.strip()]
    else:
        value = one(text)
    return check_value(p, value)


def resolve(info: StudyInfo, profile: str, given: dict[str, Any]) -> dict[str, Any]:
    """Parameter values in effect: notebook defaults, then the profile's, then ``given``.

    Raises ParamError (one line) for an unknown profile or parameter, a bad value, a
    broken rule of the study's ``check_params``, and when the resolved dataset is not
    available here.
    """
    if profile not in PROFILE_NAMES:
        raise ParamError(f"unknown profile '{profile}': choose one of {', '.join(PROFILE_NAMES)}")
    if profile != "default" and profile not in info.profiles:
        raise ParamError(f"study '{info.id}' defines no '{profile}' profile: choose one of "
                         f"default, {', '.join(info.profiles)}")
    for name in given:
        if name not in info.params:
            raise ParamError(f"unknown parameter '{name}' for study '{info.id}': choose one of "
                             f"{', '.join(n for n in info.params if n != 'profile')}")
    values = {n: p.default for n, p in info.params.items()}
    values.update(info.profiles.get(profile, {}))
    values.update(given)
    values["profile"] = profile
    out = {n: check_value(info.params[n], v) if n in info.params else v for n, v in values.items()}
    if "dataset" in out:
        from .data import DataError, available

        try:
            available(out["dataset"])
        except DataError as err:
            raise ParamError(str(err)) from None
    check = study_check(info.id)
    if check is not None:
        check(out)
    return out


def study_module(study_id: str):
    """The module ``ipkit.studies.<study_id>``, or None while a study has none."""
    try:
        return importlib.import_module(f"ipkit.studies.{study_id}")
    except ModuleNotFoundError as err:
        if err.name != f"ipkit.studies.{study_id}":
            raise
        return None


def study_check(study_id: str):
    """The study's ``check_params(values)``: rules across parameters and against the data."""
    module = study_module(study_id)
    return None if module is None else getattr(module, "check_params", None)


def new_run_id() -> str:
    """A run id unique across processes: UTC time, pid and a random part."""
    return f"{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def run_folder(study_id: str, profile: str, run_id: str) -> Path:
    """The private folder of one run: ``runs/<study>-<profile>-<run id>/``."""
    return runs_dir() / f"{study_id}-{profile}-{run_id}"


def publish(folder: Path, target: Path) -> Path:
    """Make a copy of the finished run ``folder`` the content of ``target``, as a whole.

    The copy is staged beside ``target``, then swapped in by two renames, so a reader
    never sees files of two runs mixed; when runs publish at once, the last one wins.
    The sweeps drawn in ``target`` (``sweeps/``, :mod:`ipkit.sweep`) are kept, and the
    staged results.json names the sensitivity sweeps among them
    (:func:`ipkit.sensitivity.attach`); ``target``'s ``ipkit verify`` record is kept when
    the new run reproduced the verdicts and intervals it checked
    (:func:`ipkit.verify.carry_over`).
    """
    from .sensitivity import SWEEPS, attach
    from .verify import carry_over

    target.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    staged, old = (target.with_name(f".{target.name}.{kind}-{tag}") for kind in ("new", "old"))
    try:
        shutil.copytree(folder, staged)
        if (target / SWEEPS).is_dir():
            shutil.rmtree(staged / SWEEPS, ignore_errors=True)
            shutil.copytree(target / SWEEPS, staged / SWEEPS)
        if (staged / SWEEPS).is_dir() and (staged / "results.json").is_file():
            attach(json.loads((staged / "results.json").read_text()).get("study", ""), staged)
        if (target / "results.json").is_file() and (staged / "results.json").is_file():
            carry_over(target / "results.json", staged / "results.json")
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    while True:
        try:
            os.rename(target, old)
        except FileNotFoundError:
            pass
        try:
            os.rename(staged, target)
            break
        except OSError as err:  # another run published between the two renames: go again
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
        finally:
            shutil.rmtree(old, ignore_errors=True)
    return target


class Run:
    """The context of one study run: resolved parameters and where its outputs go.

    ``run.p`` holds the parameters; :meth:`savefig`, :meth:`table` and :meth:`record` write
    into the run's private folder ``run.out`` (:func:`run_folder`, under a new run id).
    :meth:`record` writes
    results last and then publishes the folder as a whole to ``run.published``,
    ``figures/<study>/<profile>/`` (:func:`publish`), so concurrent runs never mix files.
    """

    def __init__(self, info: StudyInfo, values: dict[str, Any]):
        from .train import default_device

        self.info = info
        self.study = info.id
        self.profile = values["profile"]
        self.values = values
        self.p = SimpleNamespace(**values)
        self.device = default_device()
        self.run_id = new_run_id()
        self.out = run_folder(self.study, self.profile, self.run_id)
        self.out.mkdir(parents=True, exist_ok=True)
        self.published = figures_dir() / self.study / self.profile
        self.figures: list[str] = []
        self.tables: list[str] = []
        self.started = time.time()
        timings.reset()

    def splits(self, seed: int = 0):
        """The dataset's owner / attacker / test splits (``data.split(p.dataset, seed)``),
        with a one-line summary of the run printed."""
        from .data import split

        s = split(self.p.dataset, seed=seed)
        print(f"{self.study}, profile {self.profile} on {self.device}: owner {len(s.owner)}, "
              f"attacker pool {len(s.attacker)}, test {len(s.test)} images of "
              f"{s.num_classes} classes ({s.name})")
        return s

    def progress(self, iterable, **kwargs):
        """A progress bar over ``iterable`` (silent in CI)."""
        from .train import progress

        return progress(iterable, **kwargs)

    def savefig(self, fig, name: str) -> Path:
        """Save ``fig`` as ``<name>.png`` and ``<name>.svg`` in this run's folder."""
        from .plots import savefig

        path = savefig(fig, self.out / name)
        if name not in self.figures:
            self.figures.append(name)
        return path

    def table(self, df, name: str) -> Path:
        """Save a pandas table as ``<name>.csv`` and ``<name>.md`` in this run's folder."""
        from .results import write_table

        path = write_table(df, self.out / name)
        if name not in self.tables:
            self.tables.append(name)
        return path

    def record(self, metrics: dict[str, Any], claims: list,
               hyperparameters: dict[str, Any] | None = None) -> Path:
        """Write results.json and results.md (parameters, the study's declared
        hyper-parameters and seed roles, metrics and claim rows) and timings.json /
        timings.md (seconds per kind of work so far); then publish the run's folder to
        ``figures/<study>/<profile>/``. Returns this run's own results.json."""
        from .results import write_results

        timings.write_kinds(self.out, self.study, self.profile)
        path = write_results(self, metrics, claims, hyperparameters)
        publish(self.out, self.published)
        return path


def injected_names(namespace: dict[str, Any]) -> list[str]:
    """Names papermill assigned in its ``injected-parameters`` cell, in order.

    Papermill runs that cell (its source starts with ``# Parameters``) right after the
    notebook's ``parameters`` cell; IPython keeps the source of every executed cell in
    the namespace's ``In`` list. Outside papermill (Jupyter, nbmake) there is none.
    """
    names: list[str] = []
    for source in namespace.get("In") or []:
        if not (isinstance(source, str) and source.startswith("# Parameters\n")):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign):
                names += [t.id for t in node.targets if isinstance(t, ast.Name)
                          and not t.id.startswith("PAPERMILL_") and t.id not in names]
    return names


def start(study_id: str, namespace: dict[str, Any], profiles: dict[str, dict] | None = None) -> Run:
    """Resolve a notebook's parameters and return its :class:`Run`.

    Called from the notebook right after its parameters cell with ``globals()``. The
    profile is ``IPKIT_PROFILE`` if set, else the notebook's ``profile`` variable. The
    profile's values replace only parameters still at the notebook's default. The
    resolved values are written back into ``namespace`` (so the notebook's variables hold
    them) and kept in ``run.p``. The plot theme is applied, so figures look alike. A
    parameter papermill injected that the notebook does not declare (see
    :func:`injected_names`) stops the run with a :class:`ParamError`.
    """
    from .cache import sweep_temp
    from .plots import theme

    info = get_study(study_id)
    unknown = [n for n in injected_names(namespace) if n not in info.params]
    if unknown:
        raise ParamError(f"unknown parameter {', '.join(map(repr, unknown))} given to study "
                         f"'{info.id}': it declares {', '.join(info.params)}")
    if profiles is not None:
        info.profiles = profiles
    profile = os.environ.get("IPKIT_PROFILE") or namespace.get("profile", "default")
    given = {n: namespace[n] for n, p in info.params.items()
             if n != "profile" and n in namespace and namespace[n] != p.default}
    values = resolve(info, profile, given)
    namespace.update(values)
    theme()
    sweep_temp()
    return Run(info, values)
