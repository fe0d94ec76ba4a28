"""The offline site: the gallery and every published notebook as self-contained HTML.

:func:`write_site` renders them with images inlined as data URIs and no script from a CDN
(no require.js, MathJax or widget manager), so the site reads offline.
"""
from __future__ import annotations

import base64
import mimetypes
import re
import shutil
from pathlib import Path

import jinja2
import nbformat
from nbconvert import HTMLExporter

from ..notebook.publish import strip

_OFFLINE_TEMPLATE = """{%- extends 'index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def to_html(nb: nbformat.NotebookNode) -> str:
    """``nb`` as one self-contained HTML page: JupyterLab's look, images inlined, no script
    loaded from elsewhere."""
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
