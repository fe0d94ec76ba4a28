"""Executed notebooks for reading without a kernel (ipkit.notebook.publish), the gallery's links to
them and the offline HTML site."""

import base64
import json
import re

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from ipkit import cli
from ipkit.notebook import publish

WIDGET_VIEW = publish.WIDGET_VIEW
PNG = base64.b64encode(b"\x89PNG fake").decode()


def _executed():
    view = {WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": "abc"}}
    nb = new_notebook(
        metadata={
            "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {}}},
            "papermill": {
                "parameters": {"profile": "smoke"},
                "duration": 3.0,
                "input_path": "/home/me/nb.ipynb",
                "start_time": "t",
            },
        }
    )
    cell = new_code_cell(
        "x",
        outputs=[
            new_output("stream", name="stderr", text="work:   0%|   | 0/3\rwork: 100%|###| 3/3\n"),
            new_output("stream", name="stderr", text="epochs 1/2\r          \r"),
            new_output("display_data", data={**view, "text/plain": "HBox(children=(HTML(value='')...)"}),
            new_output("display_data", data={**view, "image/png": PNG, "text/plain": "Explore: k = 2"}),
            new_output("display_data", data={"image/png": PNG, "image/svg+xml": "<svg/>", "text/plain": "<Figure>"}),
        ],
    )
    cell.metadata = {"papermill": {"duration": 1.0}, "execution": {"iopub.status.busy": "t"}, "tags": ["x"]}
    nb.cells = [cell]
    return nb


def test_strip_keeps_what_a_reader_sees():
    nb = publish.strip(_executed())
    assert "widgets" not in nb.metadata
    assert nb.metadata.papermill == {
        "parameters": {"profile": "smoke"},
        "duration": 3.0,
    }
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


@pytest.mark.slow
def test_report_html_builds_the_site_with_a_page_per_study(tmp_path, monkeypatch, capsys):
    """`ipkit report --html DIR` builds the Sphinx site: the study's page carries its claim
    row, figure and long table (as a download), and links its executed notebook's page."""
    import pandas as pd

    from tests.helpers import _fake_run

    run, _ = _fake_run(tmp_path, monkeypatch)
    run.table(pd.DataFrame({"k": range(cli.GALLERY_TABLE_ROWS + 5)}), "units")
    run.record({"value": 0.25}, [])
    nb = publish.strip(_executed())
    nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
    nbformat.write(nb, run.published / run.info.path.name)
    site = tmp_path / "site"
    assert cli.main(["report", "--html", str(site)]) == 0
    assert f"]({f'quickstart/smoke/{run.info.path.name}'})" in (tmp_path / "README.md").read_text()
    page = (site / "_generated" / "studies" / "quickstart.html").read_text()
    notebook = site / "_generated" / "studies" / "quickstart" / "smoke" / run.info.path.name.replace(".ipynb", ".html")
    assert notebook.is_file()
    assert f'href="quickstart/smoke/{notebook.name}"' in page
    assert re.search(r'href="[^"]*_downloads/[^"]*/units\.csv"', page)
    assert re.search(r'<img [^>]*src="[^"]*line\.png"', page)
    for html in (page, (site / "index.html").read_text()):
        assert not re.search(r'<(script|link|img)[^>]*(src|href)="https?://', html)


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
    assert "\x1b[" not in out.getvalue()
    assert "epochs" not in out.getvalue()
    lines = publish._terminal_text(out.getvalue()).splitlines()
    assert [line.split(":")[0] for line in lines] == ["lambda", "lambda", "seeds"]
    assert all("100%" in line for line in lines)
