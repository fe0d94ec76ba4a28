"""Generate the site's study pages and CLI reference before Sphinx reads the sources.

Each study page is the gallery's section of that study (:func:`ipkit.cli.profile_section`,
the code that writes ``figures/README.md``) with every linked figure, table and executed
notebook copied under ``docs/_generated/`` so the site is self-contained; the CLI reference
is the ``ipkit`` argparse parser's own help.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from ipkit import cli
from ipkit.core.paths import figures_dir
from ipkit.notebook.params import PROFILE_NAMES
from ipkit.notebook.registry import studies

GENERATED = "_generated"
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")


def _localize(markdown: str, figures: Path, out: Path) -> tuple[str, list[str]]:
    """Copy every local file ``markdown`` links to from ``figures`` to ``out``; a Markdown
    table links to its CSV instead (a download); returns the text and the notebooks linked."""
    notebooks = []

    def swap(m: re.Match) -> str:
        bang, text, target = m.groups()
        if re.match(r"[a-z]+:", target):
            return m.group(0)
        if target.endswith(".md"):
            target, text = target[:-3] + ".csv", text.replace(".md", ".csv")
        src, dst = figures / target, out / target
        if not src.is_file():
            return text
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        if target.endswith(".ipynb"):
            _ensure_title(dst, f"{Path(target).stem} (executed, profile {Path(target).parent.name})")
            notebooks.append(target)
        return f"{bang}[{text}]({target})"

    return LINK.sub(swap, markdown), notebooks


def _ensure_title(notebook: Path, title: str) -> None:
    """Give a notebook copy without a level-1 heading in its first markdown cell one (a
    page needs a title in the site's navigation)."""
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    first = next((c for c in nb.get("cells", []) if c.get("cell_type") == "markdown"), None)
    source = "".join(first["source"]) if first else ""
    if not source.lstrip().startswith("# "):
        nb["cells"].insert(0, {"cell_type": "markdown", "metadata": {}, "source": f"# {title}"})
        notebook.write_text(json.dumps(nb), encoding="utf-8")


def study_page(study_id: str, title: str, notebook: str, out: Path) -> str | None:
    """The Markdown page of one study (every profile with a results.json), its files copied
    under ``out``; None when the study has no results."""
    figures = figures_dir()
    runs = [figures / study_id / p / "results.json" for p in PROFILE_NAMES]
    runs = [r for r in runs if r.is_file()]
    if not runs:
        return None
    lines = [
        f"# {title}",
        "",
        f"Notebook: `notebooks/{notebook}` · run it with "
        f"`ipkit run {study_id}`; the rules behind each verdict: [](../guides/verdicts.md).",
        "",
    ]
    for path in runs:
        lines += cli.profile_section(figures, path, notebook)
    text, notebooks = _localize("\n".join(lines), figures, out)
    if notebooks:
        entries = [f"Executed notebook, profile {Path(nb).parent.name} <{nb}>" for nb in notebooks]
        text += "\n\n```{toctree}\n:hidden:\n\n" + "\n".join(entries) + "\n```\n"
    return text


def cli_reference() -> str:
    """The ``ipkit`` command's reference: the help of the parser and of each subcommand."""
    ap = cli.parser()
    lines = [
        "# The `ipkit` command",
        "",
        "Generated from the command's own argparse parser.",
        "",
        "```text",
        ap.format_help().rstrip(),
        "```",
        "",
    ]
    sub = next(a for a in ap._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, sp in sub.choices.items():
        lines += [f"## `ipkit {name}`", "", "```text", sp.format_help().rstrip(), "```", ""]
    return "\n".join(lines)


def results_keys() -> str:
    """The results.json keys and their types, from :mod:`ipkit.evidence.results`'s declarations."""
    from ipkit.evidence import results

    def rows(keys: dict, where: str, required: str) -> list[str]:
        return [f"| {where} | `{k}` | {t.__name__} | {required} |" for k, t in keys.items()]

    return (
        "\n".join(
            [
                "| where | key | type | |",
                "|---|---|---|---|",
                *rows(results.RESULT_KEYS, "file", "required"),
                *rows(results.CLAIM_KEYS, "claim", "required"),
                *rows(results.OPTIONAL_CLAIM_KEYS, "claim", "where it applies"),
            ]
        )
        + "\n"
    )


def generate(srcdir: Path) -> list[Path]:
    """Write ``srcdir/_generated`` afresh: ``studies/index.md`` and one page per study with
    results, ``reference/cli.md`` and ``reference/results-keys.md``. Returns the pages written."""
    out = srcdir / GENERATED
    shutil.rmtree(out, ignore_errors=True)
    (out / "studies").mkdir(parents=True)
    (out / "reference").mkdir(parents=True)
    pages, rows = [], []
    for info in studies().values():
        text = study_page(info.id, info.title, info.path.name, out / "studies")
        if text is None:
            continue
        page = out / "studies" / f"{info.id}.md"
        page.write_text(text, encoding="utf-8")
        pages.append(page)
        rows.append(f"| [{info.title}]({info.id}.md) | `{info.id}` | {info.summary} |")
    index = [
        "# Studies",
        "",
        "Each page shows the claims of a study's committed runs with their verdicts,",
        "intervals and stability, its tables and figures, and its executed notebook.",
        "",
        "| study | id | what it reruns |",
        "|---|---|---|",
        *rows,
        "",
        "```{toctree}",
        ":hidden:",
        "",
        *[p.name for p in pages],
        "```",
        "",
    ]
    (out / "studies" / "index.md").write_text("\n".join(index), encoding="utf-8")
    (out / "reference" / "cli.md").write_text(cli_reference(), encoding="utf-8")
    (out / "reference" / "results-keys.md").write_text(results_keys(), encoding="utf-8")
    return pages


def setup(app):
    """Sphinx hook: generate the pages when the builder starts."""
    app.connect("builder-inited", lambda app: generate(Path(app.srcdir)))
    return {"parallel_read_safe": True, "version": "1"}
