"""The package's layers, read from its imports (docs/architecture.md).

Each module of ``ipkit`` belongs to a layer; a module imports only from its own layer and
those below, the imports between modules form no circle, and an import inside a function is
either a heavy or optional third-party package (:data:`LAZY_PACKAGES`) or one of the few
start-up-speed imports of the command line (:data:`LAZY_IMPORTS`), each with its reason.
``python tests/test_layers.py`` prints the layers and what each imports from.

The tests mirror the layers: ``tests/<layer>/test_<module>.py`` tests ``ipkit/<layer>/<module>.py``,
``tests/test_cli.py`` tests ``ipkit/cli.py``, and the few other files are declared with their
reason (:data:`TEST_FILES_APART`).
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ipkit"

# Lowest first. The package root (``ipkit/__init__.py``: the version) sits below them all.
LAYERS = ("core", "methods", "evidence", "notebook", "studies", "orchestrate", "cli")

# Third-party packages a function may import, and why not at the top of its module.
LAZY_PACKAGES = {
    "matplotlib": "the plotting stack loads only when a figure is drawn",
    "seaborn": "the plotting stack loads only when a figure is drawn",
    "ipywidgets": "exists only where a notebook front end is installed; loaded when a panel is drawn",
    "IPython": "display only inside a kernel",
    "sklearn": "optional: only the embedded digits and sample images need it",
    "torchvision": "optional and heavy: only the torchvision datasets and conv models need it",
    "PIL": "optional: only image files read from disk need it",
    "safetensors": "only the dataset converter writes safetensors files",
    "tqdm": "the console or notebook progress bar is chosen when a bar starts",
    "papermill": "heavy: loaded when a notebook is executed, not when the CLI starts",
    "ray": "optional extra ipkit[ray]: only runs sent to Ray need it",
    "pandas": "heavy: the sweep summary alone needs it in the orchestration layer",
    "scipy": "one rank statistic of memorized_transfer needs it",
    "sphinx": "optional extra ipkit[docs]: only `ipkit report --html` builds the site",
    "torch.ao.quantization": "deprecated API: loaded only when a model is quantized, its warnings silenced there",
}

# ipkit imports a function may make: (importer, imported module) -> reason.
_START_UP = "`ipkit --help`, `list` and every usage error answer without loading torch (issue 29)"
LAZY_IMPORTS = {
    ("ipkit.cli", "ipkit.orchestrate.bench"): "the benchmarks load only for `ipkit bench`",
    **{
        ("ipkit.cli", m): _START_UP
        for m in (
            "ipkit.orchestrate.parallel",
            "ipkit.orchestrate.verify",
            "ipkit.methods.train",
            "ipkit.methods.cache",
            "ipkit.evidence.results",
            "ipkit.evidence.sensitivity",
            "ipkit.evidence.stability",
            "ipkit.notebook.runtime",
            "ipkit.notebook.plots",
        )
    },
    ("ipkit.notebook.registry", "ipkit.methods.data"): "the data check loads torch only once the values are sound",
}


@dataclass(frozen=True)
class Import:
    """One import statement's target module, its line, and whether it sits in a function."""

    target: str
    line: int
    in_function: bool


def layer_of(module: str) -> int:
    """The layer index of an ``ipkit`` module (-1 for the package root)."""
    parts = module.split(".")
    if parts == ["ipkit"]:
        return -1
    if parts[1] not in LAYERS:
        raise ValueError(f"{module} belongs to no layer: put it in one of {', '.join(LAYERS)}")
    return LAYERS.index(parts[1])


def _module_name(path: Path, root: Path) -> str:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool, known: set[str]) -> list[str]:
    """The modules ``from ... import ...`` reaches: a named submodule where it is one, else
    the module imported from."""
    if node.level:
        base = module.split(".") if is_package else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        source = ".".join(base + ([node.module] if node.module else []))
    else:
        source = node.module or ""
    return [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]


def module_imports(root: Path = PACKAGE) -> dict[str, list[Import]]:
    """Every module under the package folder ``root``, with its imports (of any package)."""
    paths = sorted(root.rglob("*.py"))
    known = {_module_name(p, root) for p in paths}
    graph: dict[str, list[Import]] = {}
    for path in paths:
        module = _module_name(path, root)
        graph[module] = _imports(ast.parse(path.read_text(), str(path)), module, path.name == "__init__.py", known)
    return graph


def _imports(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> list[Import]:
    """Every import in ``tree`` (module ``module``), marked when it sits inside a function."""
    found: list[Import] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend(Import(a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module != "__future__":
                found.extend(Import(t, child.lineno, in_function) for t in _resolve(child, module, is_package, known))
            visit(child, inside)

    visit(tree, False)
    return found


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The import circles: strongly connected groups of more than one module, or a module
    importing itself (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                group.append(w)
                if w == v:
                    break
            if len(group) > 1 or v in edges.get(v, ()):
                out.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def problems(graph: dict[str, list[Import]]) -> list[str]:
    """Every upward import, import circle and function-level import not allowed, one line each."""
    found = []
    edges: dict[str, set[str]] = {}
    for module, imports in sorted(graph.items()):
        for imp in imports:
            top = imp.target.split(".")[0]
            if top == "ipkit":
                if layer_of(imp.target) > layer_of(module):
                    found.append(f"{module}:{imp.line} imports {imp.target} from a layer above")
                if imp.target in graph and imp.target != module.rpartition(".")[0]:
                    edges.setdefault(module, set()).add(imp.target)
                if imp.in_function and (module, imp.target) not in LAZY_IMPORTS:
                    found.append(f"{module}:{imp.line} imports {imp.target} inside a function")
            elif imp.in_function and not any(imp.target == p or imp.target.startswith(p + ".") for p in LAZY_PACKAGES):
                found.append(f"{module}:{imp.line} imports {imp.target} inside a function")
    found += [f"import circle: {' -> '.join(group)}" for group in _cycles(edges)]
    return found


def describe(graph: dict[str, list[Import]]) -> str:
    """Each layer's modules and the layers they import from."""
    lines = []
    for i, name in enumerate(LAYERS):
        modules = sorted(m for m in graph if m != "ipkit" and layer_of(m) == i)
        below = sorted(
            {
                LAYERS[layer_of(t.target)]
                for m in modules
                for t in graph[m]
                if t.target.startswith("ipkit.") and layer_of(t.target) < i
            }
        )
        lines.append(
            f"{i} {name}: {', '.join(m.rpartition('.')[2] for m in modules)}"
            f"  (imports {', '.join(below) or 'no other layer'})"
        )
    return "\n".join(lines)


def test_every_module_has_a_layer():
    assert all(layer_of(m) >= -1 for m in module_imports())


def test_no_upward_import_no_circle_no_stray_function_import():
    assert problems(module_imports()) == []


def test_every_allowance_is_used():
    """An allow-list entry no import needs any more goes."""
    lazy = [(m, i.target) for m, imports in module_imports().items() for i in imports if i.in_function]
    assert {k for k in LAZY_IMPORTS if k not in lazy} == set()
    assert {p for p in LAZY_PACKAGES if not any(t == p or t.startswith(p + ".") for _, t in lazy)} == set()


def test_the_package_root_imports_nothing():
    assert module_imports()["ipkit"] == []


def test_the_checker_finds_an_upward_import():
    graph = {"ipkit.core.paths": [Import("ipkit.notebook.runtime", 3, False)], "ipkit.notebook.runtime": []}
    assert problems(graph) == ["ipkit.core.paths:3 imports ipkit.notebook.runtime from a layer above"]


def test_the_checker_finds_a_circle_within_a_layer():
    graph = {
        "ipkit.methods.a": [Import("ipkit.methods.b", 1, False)],
        "ipkit.methods.b": [Import("ipkit.methods.c", 1, False)],
        "ipkit.methods.c": [Import("ipkit.methods.a", 1, False)],
    }
    assert problems(graph) == ["import circle: ipkit.methods.a -> ipkit.methods.b -> ipkit.methods.c"]


def test_the_checker_finds_an_import_inside_a_function():
    graph = {
        "ipkit.evidence.results": [
            Import("ipkit.methods.train", 9, True),
            Import("json", 10, True),
            Import("matplotlib.pyplot", 11, True),
        ],
        "ipkit.methods.train": [],
    }
    assert problems(graph) == [
        "ipkit.evidence.results:9 imports ipkit.methods.train inside a function",
        "ipkit.evidence.results:10 imports json inside a function",
    ]


def test_the_checker_reads_relative_imports_from_files(tmp_path):
    """A planted package: a core module importing the notebook layer inside a function."""
    root = tmp_path / "ipkit"
    for rel, text in {
        "__init__.py": "",
        "core/__init__.py": "",
        "notebook/__init__.py": "",
        "notebook/run.py": "from ..core import paths\n",
        "core/paths.py": "def f():\n    from ..notebook import run\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    assert problems(module_imports(root)) == [
        "ipkit.core.paths:2 imports ipkit.notebook.run from a layer above",
        "ipkit.core.paths:2 imports ipkit.notebook.run inside a function",
        "import circle: ipkit.core.paths -> ipkit.notebook.run",
    ]


def test_an_unknown_layer_is_named():
    with pytest.raises(ValueError, match="belongs to no layer"):
        layer_of("ipkit.helpers")


TESTS = PACKAGE.parent / "tests"

# Test files that mirror no single module: path under tests/ -> reason.
TEST_FILES_APART = {
    "studies/test_contract.py": "one parametrized test checks every study module against the study contract",
    "methods/test_reference.py": "several methods against maintained libraries; needs the `reference` extra",
    "test_layers.py": "the layering and this mirror, read from the package's imports and the tests' tree",
    "test_repo.py": "repository rules: notebooks, dependencies, CI and the committed results",
    "test_params_fuzz.py": "every study's parameters through the command line's input battery",
    "test_course.py": "the course kit under course/",
    "test_browser.py": "JupyterLab and the documentation site in a real browser",
    "test_dashboard.py": "the course's Voila app in a real browser",
    "test_device_check.py": "scripts/device-check, as a dry run on the CPU",
}


def misplaced_tests(tests: Path = TESTS, package: Path = PACKAGE) -> list[str]:
    """Test files under ``tests`` that name no module of ``package`` and are not declared apart."""
    found = []
    for path in sorted(tests.rglob("test_*.py")):
        rel = path.relative_to(tests)
        if rel.as_posix() in TEST_FILES_APART:
            continue
        module = package.joinpath(*rel.parts[:-1], rel.name.removeprefix("test_"))
        if len(rel.parts) > 2 or rel.parts[0] not in (*LAYERS, rel.name) or not module.is_file():
            found.append(f"tests/{rel.as_posix()} names no module ipkit/{module.relative_to(package).as_posix()}")
    return found


def test_every_test_file_mirrors_a_module_or_is_declared_apart(tmp_path):
    assert misplaced_tests() == []
    assert [rel for rel in TEST_FILES_APART if not (TESTS / rel).is_file()] == []
    (tmp_path / "methods").mkdir()
    (tmp_path / "methods" / "test_ondevice_unpairing.py").write_text("")
    assert misplaced_tests(tmp_path) == [
        "tests/methods/test_ondevice_unpairing.py names no module ipkit/methods/ondevice_unpairing.py"
    ]


if __name__ == "__main__":
    print(describe(module_imports()))
    sys.exit(1 if problems(module_imports()) else 0)
