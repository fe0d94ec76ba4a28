"""Atomic file writing: a reader sees the old file or the whole new one, never a torn one.
Results, tables, figures and records are all written this way."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it to ``path``, so a
    reader sees the old file or the whole new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json(path: Path, data: dict) -> Path:
    """Write ``data`` as indented JSON to ``path`` (atomically: :func:`write_atomic`)."""
    return write_atomic(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2) + "\n"))


def write_table(df: Any, path: Path) -> Path:
    """Write a pandas DataFrame as ``path.csv`` and ``path.md`` (atomically); return the .md path."""
    write_atomic(path.with_suffix(".csv"), lambda tmp: df.to_csv(tmp, index=False))
    text = df.to_markdown(index=False, floatfmt=".3f") + "\n"
    return write_atomic(path.with_suffix(".md"), lambda tmp: tmp.write_text(text))
