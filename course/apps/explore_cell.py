"""The Explore cell of a study notebook, read from notebooks/ so the apps keep no copy of it."""

import json
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def explore_cell(study: str) -> str:
    """Source of the first code cell after the notebook's "## Explore" heading."""
    path = next(NOTEBOOKS.glob(f"*_{study}.ipynb"))
    cells = json.loads(path.read_text())["cells"]
    start = next(
        i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "".join(c["source"]).startswith("## Explore")
    )
    return "".join(next(c for c in cells[start:] if c["cell_type"] == "code")["source"])
