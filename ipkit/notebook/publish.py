"""Executed notebooks a reader can open without running them.

:func:`strip` turns a notebook executed by papermill into a copy for the repository, which
GitHub, nbconvert and JupyterLab show without a kernel, trust prompt or "Error displaying
widget": the widget state goes, every widget output is replaced by its static fallback
(what :func:`ipkit.notebook.widgets.explore` puts beside its view: the controls' values as a text
line above the figure as PNG; an output with no fallback, such as a progress bar, goes), SVG
copies of PNG figures go, progress-bar text keeps only each bar's last state, and the
timestamps and machine paths papermill records go. :func:`publish` writes that copy beside
the study's figures. The documentation site renders these copies (:func:`ipkit.cli.build_site`).
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
KEPT_RUN_METADATA = ("parameters", "duration", "end_time", "version")


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
    merged: list[Any] = []
    for o in outputs:
        if o.output_type == "stream" and merged and merged[-1].output_type == "stream" and merged[-1].name == o.name:
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
        body = line[: len(line) - len(end)]
        if "\r" in body:
            body = body.rstrip("\r").rsplit("\r", 1)[-1].rstrip()
            if not body:
                continue
        shown.append(body + end)
    return "".join(shown)
