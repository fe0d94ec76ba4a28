"""Claim rows and results files of a study run.

A claim row states one of the paper's claims, quotes the paper's value or direction,
gives the value this run measured and whether the claim ``holds``: a boolean computed in
the notebook from the measured numbers, never typed in. :func:`write_results` writes
``results.json`` (schema checked by :func:`check_results`) and ``results.md``.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESULT_KEYS = {"study": str, "title": str, "profile": str, "date": str, "ipkit": str,
               "device": str, "torch": str, "runtime_s": float, "params": dict,
               "metrics": dict, "claims": list, "figures": list, "tables": list}
CLAIM_KEYS = {"id": str, "statement": str, "paper": str, "measured": str, "holds": bool}


@dataclass
class Claim:
    """One checkable claim: what the paper says and what this run measured."""

    id: str
    statement: str
    paper: str
    measured: str
    holds: bool


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, (np.floating, float)):
        return None if math.isnan(float(v)) else round(float(v), 6)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    if hasattr(v, "item") and callable(v.item):
        return _plain(v.item())
    return v


def claim(id: str, statement: str, paper: str, measured: dict[str, float] | float | str,
          holds: bool | np.bool_) -> Claim:
    """Make a claim row; ``measured`` numbers are formatted, ``holds`` must be a boolean."""
    if not isinstance(holds, (bool, np.bool_)):
        raise TypeError(f"claim {id}: holds must be a boolean computed from measurements")
    if isinstance(measured, dict):
        text = ", ".join(f"{k} = {_num(v)}" for k, v in measured.items())
    else:
        text = _num(measured)
    return Claim(id, statement, paper, text, bool(holds))


def _num(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.3g}"
    return str(v)


def write_table(df, path: Path) -> Path:
    """Write a pandas DataFrame as ``path.csv`` and ``path.md``; return the .md path."""
    df.to_csv(path.with_suffix(".csv"), index=False)
    md = path.with_suffix(".md")
    md.write_text(df.to_markdown(index=False, floatfmt=".3f") + "\n")
    return md


def claims_markdown(claims: list[dict]) -> str:
    """A Markdown table of claim rows."""
    rows = ["| id | claim | paper | measured | holds |", "|---|---|---|---|---|"]
    for c in claims:
        rows.append(f"| {c['id']} | {c['statement']} | {c['paper']} | {c['measured']} | "
                    f"{'yes' if c['holds'] else 'no'} |")
    return "\n".join(rows)


def write_results(run, metrics: dict[str, Any], claims: list[Claim]) -> Path:
    """Write ``results.json`` and ``results.md`` for ``run`` and return the JSON path."""
    import torch

    data = {
        "study": run.study, "title": run.info.title, "profile": run.profile,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "ipkit": __import__("ipkit").__version__,
        "device": torch.cuda.get_device_name() if run.device.type == "cuda" else
        f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)",
        "torch": torch.__version__,
        "runtime_s": round(float(__import__("time").time() - run.started), 1),
        "params": _plain(run.values), "metrics": _plain(metrics),
        "claims": [asdict(c) for c in claims], "figures": list(run.figures),
        "tables": list(run.tables),
    }
    check_results(data)
    path = run.out / "results.json"
    path.write_text(json.dumps(data, indent=2) + "\n")
    md = [f"# {data['title']}", "",
          f"Profile `{data['profile']}`, {data['date']}, {data['device']}, "
          f"{data['runtime_s']:.0f} s.", "", claims_markdown(data["claims"]), ""]
    (run.out / "results.md").write_text("\n".join(md))
    return path


def check_results(data: dict) -> None:
    """Raise ValueError unless ``data`` follows the results.json schema."""
    for k, t in RESULT_KEYS.items():
        if k not in data:
            raise ValueError(f"results.json lacks '{k}'")
        if not isinstance(data[k], t) and not (t is float and isinstance(data[k], int)):
            raise ValueError(f"results.json '{k}' should be {t.__name__}")
    for c in data["claims"]:
        if set(c) != set(CLAIM_KEYS):
            raise ValueError(f"claim row keys {sorted(c)} differ from {sorted(CLAIM_KEYS)}")
        for k, t in CLAIM_KEYS.items():
            if not isinstance(c[k], t):
                raise ValueError(f"claim {c.get('id')}: '{k}' should be {t.__name__}")


def frame(claims: list[Claim]):
    """Claim rows as a pandas DataFrame, for display in a notebook."""
    import pandas as pd

    return pd.DataFrame([asdict(c) for c in claims])
