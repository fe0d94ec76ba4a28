"""Executed notebooks for reading without a kernel (ipkit.notebook.publish), the gallery's links to
them and the offline HTML site."""
import base64
import json
import re

import nbformat
from nbformat.v4 import new_code_cell, new_notebook, new_output

from ipkit import cli
from ipkit.notebook import publish

WIDGET_VIEW = publish.WIDGET_VIEW
PNG = base64.b64encode(b"\x89PNG fake").decode()


def _executed():
    view = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "abc"}}
    nb = new_notebook(metadata={"widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
                                "papermill": {"parameters": {"profile": "smoke"}, "duration": 3.0,
                                              "input_path": "/home/me/nb.ipynb", "start_time": "t"}})
    cell = new_code_cell("x", outputs=[
        new_output("stream", name="stderr", text="work:   0%|   | 0/3\rwork: 100%|###| 3/3\n"),
        new_output("stream", name="stderr", text="epochs 1/2\r          \r"),
        new_output("display_data", data={**view, "text/plain": "HBox(children=(HTML(value='')...)"}),
        new_output("display_data", data={**view, "image/png": PNG, "text/plain": "Explore: k = 2"}),
        new_output("display_data", data={"image/png": PNG, "image/svg+xml": "<svg/>", "text/plain": "<Figure>"}),
    ])
    cell.metadata = {"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "t"}, "tags": ["x"]}
    nb.cells = [cell]
    return nb


def test_strip_keeps_what_a_reader_sees():
    nb = publish.strip(_executed())
    assert "widgets" not in nb.metadata and nb.metadata.papermill == {"parameters": {"profile": "smoke"},
                                                                       "duration": 3.0}
    cell = nb.cells[0]
    assert cell.metadata == {"tags": ["x"]}
    stream, values, explore, figure = cell.outputs
    assert stream.text == "work: 100%|###| 3/3\n"
    assert values.data == {"text/plain": "Explore: k = 2"}
    assert explore.data == {"image/png": PNG, "text/plain": "Explore: k = 2"}
    assert set(figure.data) == {"image/png", "text/plain"}
    assert WIDGET_VIEW not in json.dumps(nbformat.writes(nb))


def test_publish_writes_a_valid_notebook(tmp_path):
    src = tmp_path / "run.ipynb"
    nbformat.write(_executed(), src)
    dest = publish.publish(src, tmp_path / "figures" / "s" / "smoke" / "00_s.ipynb")
    nbformat.validate(nbformat.read(dest, as_version=4))
    assert [p.name for p in dest.parent.iterdir()] == ["00_s.ipynb"]


def test_report_links_notebooks_and_writes_an_offline_site(tmp_path, monkeypatch, capsys):
    from test_cli import _fake_run

    run, _ = _fake_run(tmp_path, monkeypatch)
    nbformat.write(publish.strip(_executed()), run.published / run.info.path.name)
    site = tmp_path / "site"
    assert cli.main(["report", "--html", str(site)]) == 0
    gallery = (tmp_path / "README.md").read_text()
    link = f"quickstart/smoke/{run.info.path.name}"
    assert f"]({link})" in gallery
    index = (site / "index.html").read_text()
    page = site / link.replace(".ipynb", ".html")
    assert page.exists() and f'href="{link[:-6]}.html"' in index
    assert "data:image/png;base64," in index and "line.png" not in re.sub(r'alt="[^"]*"', "", index)
    for html in (index, page.read_text()):
        assert not re.search(r"<script[^>]*\bsrc=", html) and "require.js" not in html


def test_offline_site_carries_the_tables_the_gallery_links(tmp_path, monkeypatch, capsys):
    import pandas as pd
    from test_cli import _fake_run

    run, _ = _fake_run(tmp_path, monkeypatch)
    run.table(pd.DataFrame({"k": range(cli.GALLERY_TABLE_ROWS + 5)}), "units")
    run.record({"value": 0.25}, [])
    site = tmp_path / "site"
    assert cli.main(["report", "--html", str(site)]) == 0
    index = (site / "index.html").read_text()
    for name in ("units.md", "units.csv"):
        assert f'href="quickstart/smoke/{name}"' in index
        assert (site / "quickstart/smoke" / name).read_text() == (tmp_path / "quickstart/smoke" / name).read_text()


def test_text_progress_for_executed_notebooks_reads_as_lines(monkeypatch):
    import io

    from ipkit.methods.train import progress

    monkeypatch.setenv("IPKIT_PROGRESS", "text")
    monkeypatch.delenv("IPKIT_QUIET", raising=False)
    monkeypatch.delenv("CI", raising=False)
    out = io.StringIO()
    for _ in progress(range(2), desc="seeds", file=out, mininterval=0):
        for _ in progress(range(3), desc="lambda", file=out, mininterval=0):
            for _ in progress(range(2), desc="epochs", leave=False, file=out, mininterval=0):
                pass
    assert "\x1b[" not in out.getvalue() and "epochs" not in out.getvalue()
    lines = publish._terminal_text(out.getvalue()).splitlines()
    assert [line.split(":")[0] for line in lines] == ["lambda", "lambda", "seeds"]
    assert all("100%" in line for line in lines)
