"""Executed notebooks a reader can open without running them, and an offline HTML site.

:func:`strip` turns a notebook executed by papermill into a copy for the repository, which
GitHub, nbconvert and JupyterLab show without a kernel, trust prompt or "Error displaying
widget": the widget state goes, every widget output is replaced by its static fallback
(what :func:`ipkit.widgets.explore` puts beside its view: the controls' values as a text
line above the figure as PNG; an output with no fallback, such as a progress bar, goes), SVG
copies of PNG figures go, progress-bar text keeps only each bar's last state, and the
timestamps and machine paths papermill records go. :func:`publish` writes that copy beside
the study's figures. :func:`write_site` renders the gallery and every published notebook
as self-contained HTML: images inlined as data URIs, no script from a CDN (no require.js,
MathJax or widget manager), so it reads offline.
"""
from __future__ import annotations

import base64
import copy
import mimetypes
import os
import re
import shutil
from pathlib import Path

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KEPT_RUN_METADATA = ("parameters", "duration", "end_time", "version")

_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def strip(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of the executed notebook ``nb`` without widget state, widget views (replaced
    by their static fallback), SVG copies of PNG figures, overwritten progress-bar text,
    or per-cell timing metadata."""
    nb = copy.deepcopy(nb)
    nb.metadata.pop("widgets", None)
    if "papermill" in nb.metadata:
        run = nb.metadata["papermill"]
        nb.metadata["papermill"] = {k: run[k] for k in KEPT_RUN_METADATA if k in run}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if cell.cell_type == "code":
            cell.outputs = _merge_streams([s for o in cell.outputs for s in _static(o)])
    return nb


def publish(executed: Path, dest: Path) -> Path:
    """Write :func:`strip` of the executed notebook at ``executed`` to ``dest`` (atomically:
    a temporary file renamed into place); return ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    nb = strip(nbformat.read(executed, as_version=4))
    tmp = dest.with_name(f".{dest.name}.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, dest)
    return dest


def _static(output: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """``output`` as a reader without a kernel sees it. A widget view becomes its fallback:
    the text line (the controls' values) and then the figure as two outputs, since a reader
    shows only one kind of data per output; nothing when it has no fallback but its text
    repr. A PNG figure loses its SVG copy."""
    data = output.get("data")
    if not data:
        return [output]
    if WIDGET_VIEW in data:
        del data[WIDGET_VIEW]
        output.get("metadata", {}).pop(WIDGET_VIEW, None)
        if set(data) <= {"text/plain"}:
            return []
        if "text/plain" in data:
            line = nbformat.v4.new_output("display_data", data={"text/plain": data["text/plain"]})
            return [line, output]
    if "image/png" in data:
        data.pop("image/svg+xml", None)
    return [output]


def _merge_streams(outputs: list) -> list:
    """Join consecutive stream outputs of one name and keep each line as a terminal shows it
    after carriage returns (a progress bar's last state; a bar that erased itself goes)."""
    merged = []
    for o in outputs:
        if o.output_type == "stream" and merged and merged[-1].output_type == "stream" \
                and merged[-1].name == o.name:
            merged[-1].text += o.text
        else:
            merged.append(o)
    for o in merged:
        if o.output_type == "stream" and "\r" in o.text:
            o.text = _terminal_text(o.text)
    return [o for o in merged if o.output_type != "stream" or o.text]


def _terminal_text(text: str) -> str:
    shown = []
    for line in re.findall(r"[^\n]*\n|[^\n]+$", text):
        end = "\n" if line.endswith("\n") else ""
        body = line[:len(line) - len(end)]
        if "\r" in body:
            body = body.rstrip("\r").rsplit("\r", 1)[-1].rstrip()
            if not body:
                continue
        shown.append(body + end)
    return "".join(shown)


def to_html(nb: nbformat.NotebookNode) -> str:
    """``nb`` as one self-contained HTML page: JupyterLab's look, images inlined, no script
    loaded from elsewhere."""
    import jinja2
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", template_file="ipkit-offline.html.j2",
                            extra_loaders=[jinja2.DictLoader({"ipkit-offline.html.j2": _OFFLINE_TEMPLATE})],
                            embed_images=True)
    body, _ = exporter.from_notebook_node(strip(nb))
    return body


def write_site(figures: Path, site: Path, gallery: str) -> list[Path]:
    """Write an offline site under ``site``: ``index.html`` from the ``gallery`` markdown
    (paths relative to ``figures``; its images inlined, its links to notebooks pointing at
    their HTML) and every published notebook under ``figures`` as HTML at the same relative
    path. Return the pages written."""
    figures, site = Path(figures), Path(site)
    site.mkdir(parents=True, exist_ok=True)
    pages = []
    for path in sorted(figures.glob("*/*/*.ipynb")):
        page = site / path.relative_to(figures).with_suffix(".html")
        page.parent.mkdir(parents=True, exist_ok=True)
        page.write_text(to_html(nbformat.read(path, as_version=4)), encoding="utf-8")
        pages.append(page)
    index = nbformat.v4.new_notebook(metadata={"title": "ipkit figures"})
    index.cells = [nbformat.v4.new_markdown_cell(_inline_links(gallery, figures))]
    (site / "index.html").write_text(to_html(index), encoding="utf-8")
    _copy_linked_tables(gallery, figures, site)
    return [site / "index.html", *pages]


def _copy_linked_tables(markdown: str, root: Path, site: Path) -> None:
    """Copy each table the gallery links to (``[..](path.md)`` or ``.csv``, relative to
    ``root``) to the same relative path under ``site``, so the site's links work offline."""
    for rel in dict.fromkeys(re.findall(r"(?<!!)\[[^\]]*\]\((?!https?:)([^)\s]+\.(?:md|csv))\)", markdown)):
        src = root / rel
        if src.is_file():
            dest = site / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


def _inline_links(markdown: str, root: Path) -> str:
    """``markdown`` with each local image ``![alt](path)`` inlined as a data URI and each
    link to a ``.ipynb`` pointing at the ``.html`` page beside it."""
    def image(m: re.Match) -> str:
        path = root / m.group(2)
        if not path.is_file():
            return m.group(0)
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"![{m.group(1)}](data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')})"

    markdown = re.sub(r"!\[([^\]]*)\]\((?!data:|https?:)([^)\s]+)\)", image, markdown)
    return re.sub(r"\]\((?!https?:)([^)\s]+)\.ipynb\)", r"](\1.html)", markdown)
