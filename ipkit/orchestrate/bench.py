"""Benchmarks of the trainer: against a plain torch DataLoader loop, across memory layouts,
and a deep ensemble trained together against one by one; and of the notebooks' Explore
panels: how long a redraw of a setting already drawn takes (:func:`redraw`).

Each comparison trains the same architecture from the same initial weights on the same data
for the same epochs with the same optimizer and schedule, and reports the ratio of
wall-clock times with both final test accuracies. The plain loop is the textbook one: a
``TensorDataset`` on the CPU, a shuffling ``DataLoader`` and a copy of each batch to the
device.
"""

from __future__ import annotations

import copy
import json
import statistics
import time
from pathlib import Path
from typing import Any

import nbformat
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ..core.scratch import scratch
from ..methods.data import split
from ..methods.models import build
from ..methods.train import default_device, evaluate, fit, seeded
from ..methods.uncertainty import DeepEnsemble, accuracy
from ..notebook.registry import get_study
from .parallel import Job, execute


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def plain_loop(model, x, y, epochs: int, batch_size: int, lr: float, device: torch.device) -> float:
    """Train with a CPU TensorDataset + DataLoader loop (shuffled with seed 0); return the
    seconds taken."""
    loader = DataLoader(
        TensorDataset(x.cpu(), y.cpu()), batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(loader), pct_start=0.25)
    _sync(device)
    start = time.perf_counter()
    with seeded(0, device):
        for _ in range(epochs):
            for xb, yb in loader:
                xb, yb = xb.to(device), yb.to(device)
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    _sync(device)
    model.eval()
    return time.perf_counter() - start


def run(dataset: str = "mnist5k", arch: str = "cnn", epochs: int = 5, batch_size: int = 128, lr: float = 0.05) -> dict:
    """Time both loops once and return seconds, accuracies and the speed ratio."""
    device = default_device()
    s = split(dataset, device=device)
    base = build(arch, s.num_classes, s.in_shape, seed=0).to(device)
    plain_model, kit_model = copy.deepcopy(base), copy.deepcopy(base)
    plain_s = plain_loop(plain_model, s.owner.x, s.owner.y, epochs, batch_size, lr, device)
    _sync(device)
    start = time.perf_counter()
    fit(kit_model, s.owner.x, s.owner.y, epochs=epochs, batch_size=batch_size, lr=lr, desc="ipkit")
    _sync(device)
    kit_s = time.perf_counter() - start
    return {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "dataset": dataset,
        "arch": arch,
        "epochs": epochs,
        "train_images": len(s.owner),
        "plain_s": round(plain_s, 2),
        "ipkit_s": round(kit_s, 2),
        "speedup": round(plain_s / kit_s, 2),
        "plain_acc": round(evaluate(plain_model, s.test.x, s.test.y), 4),
        "ipkit_acc": round(evaluate(kit_model, s.test.x, s.test.y), 4),
    }


def ensemble_speed(
    dataset: str = "mnist5k",
    arch: str = "mlp",
    members: int = 5,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 0.05,
) -> dict:
    """Time a deep ensemble of ``members`` networks trained together (one vmapped model
    over stacked weights, :class:`ipkit.methods.uncertainty.StackedEnsemble`) against the same
    members trained one after another, after a short warm-up of both; return seconds
    (wall and CPU), accuracies and the speed ratio one-by-one / together (above 1:
    together is faster)."""
    device = default_device()
    s = split(dataset, device=device)
    out: dict = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "dataset": dataset,
        "arch": arch,
        "members": members,
        "epochs": epochs,
        "train_images": len(s.owner),
    }
    for together in (True, False):  # warm-up: first calls pay for one-off set-up
        DeepEnsemble(
            arch,
            s.num_classes,
            s.in_shape,
            members=members,
            device=device,
            together=together,
            epochs=1,
            batch_size=batch_size,
            lr=lr,
        ).fit(s.owner.x[: 2 * batch_size], s.owner.y[: 2 * batch_size])
    for together in (True, False):
        ens = DeepEnsemble(
            arch,
            s.num_classes,
            s.in_shape,
            members=members,
            device=device,
            together=together,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
        )
        _sync(device)
        wall, cpu = time.perf_counter(), time.process_time()
        ens.fit(s.owner.x, s.owner.y)
        _sync(device)
        name = "together" if together else "one_by_one"
        out[f"{name}_s"] = round(time.perf_counter() - wall, 2)
        out[f"{name}_cpu_s"] = round(time.process_time() - cpu, 2)
        out[f"{name}_acc"] = round(accuracy(ens.predict_proba(s.test.x), s.test.y), 4)
    out["speedup"] = round(out["one_by_one_s"] / out["together_s"], 2)
    out["cpu_speedup"] = round(out["one_by_one_cpu_s"] / max(out["together_cpu_s"], 1e-9), 2)
    return out


REDRAW_CELL = """import json as _json, time as _time
from ipkit.notebook import widgets as _widgets
_panel, _seconds = _widgets.last_panel(), []
for _ in range({repeats}):
    _start = _time.perf_counter()
    _panel.draw(raise_errors=True)
    _seconds.append(_time.perf_counter() - _start)
_panel.drawn.clear()
_start = _time.perf_counter()
_panel.draw(raise_errors=True)
print("IPKIT_REDRAW " + _json.dumps({{"kept": _seconds, "recomputed": _time.perf_counter() - _start}}))"""
REDRAW_GOAL_S = 1.0


def redraw(study_ids: list[str], profile: str = "smoke", repeats: int = 3) -> list[dict]:
    """Per study: execute its notebook in ``profile`` (papermill, scratch figures folder),
    then redraw its Explore panel ``repeats`` times at the setting it first drew (a setting
    already drawn: the goal, :data:`REDRAW_GOAL_S`, applies to these), and once more with the
    panel's kept figures dropped (the figure recomputed from the notebook's cached models).
    Returns one row per study with the median and the largest kept redraw and the
    recomputed one in seconds, or the run's error."""
    rows: list[dict[str, Any]] = []
    for sid in study_ids:
        info = get_study(sid)
        with scratch("redraw", sid) as tmp:
            nb = nbformat.read(info.path, as_version=4)
            nb.cells.append(nbformat.v4.new_code_cell(REDRAW_CELL.format(repeats=repeats)))
            path = Path(tmp) / info.path.name
            nbformat.write(nb, path)
            outcome = execute(Job(sid, profile, {}, path, Path(tmp) / "figures", Path(tmp) / "executed.ipynb"))
        timed = _redraw_seconds(outcome.notebook) if not outcome.error else None
        if timed is None:
            rows.append({"study": sid, "profile": profile, "error": outcome.error or "no redraw timed"})
            continue
        kept = timed["kept"]
        rows.append(
            {
                "study": sid,
                "profile": profile,
                "median_s": round(statistics.median(kept), 3),
                "max_s": round(max(kept), 3),
                "repeats": repeats,
                "recomputed_s": round(timed["recomputed"], 3),
                "within_goal": max(kept) <= REDRAW_GOAL_S,
            }
        )
    return rows


def _redraw_seconds(notebook: bytes) -> dict | None:
    """The redraw times the appended cell printed (its ``IPKIT_REDRAW {...}`` line)."""
    try:
        cell = json.loads(notebook)["cells"][-1]
    except (ValueError, KeyError, IndexError):
        return None
    for out in cell.get("outputs", []):
        text = "".join(out.get("text", "")) if out.get("output_type") == "stream" else ""
        for line in text.splitlines():
            if line.startswith("IPKIT_REDRAW "):
                return json.loads(line.split(" ", 1)[1])
    return None
