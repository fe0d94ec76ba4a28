"""Where things live: the checkout (its notebooks/, figures/ and runs/ folders, each
overridable by an environment variable) and the per-user cache folders."""

from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The checkout this package lives in (holds notebooks/ and figures/)."""
    return Path(__file__).resolve().parents[2]


def notebooks_dir() -> Path:
    """Folder of study notebooks: ``IPKIT_NOTEBOOKS``, else ``<repo>/notebooks``."""
    return Path(os.environ.get("IPKIT_NOTEBOOKS") or repo_root() / "notebooks")


def figures_dir() -> Path:
    """Folder figures and results go to: ``IPKIT_FIGURES``, else ``<repo>/figures``."""
    return Path(os.environ.get("IPKIT_FIGURES") or repo_root() / "figures")


def runs_dir() -> Path:
    """Folder executed notebooks go to: ``IPKIT_RUNS``, else ``<repo>/runs`` (git-ignored)."""
    return Path(os.environ.get("IPKIT_RUNS") or repo_root() / "runs")


def user_folder(env: str, sub: str) -> Path:
    """The folder named by environment variable ``env``, else ``~/.cache/ipkit/<sub>``."""
    if os.environ.get(env):
        return Path(os.environ[env]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ipkit" / sub
