"""Fixtures shared by the unit tests."""

import pytest

from ipkit.methods import attacks, data, models, train


@pytest.fixture(scope="session")
def digits():
    """sklearn's 8x8 digits split into owner / attacker / test, on the CPU: small and fast."""
    return data.split("digits", seed=0, device="cpu")


EXPLORE_SETUP = """import os
os.environ.pop("IPKIT_QUIET", None)
os.environ.pop("CI", None)
import matplotlib.pyplot as plt
from ipkit.methods import train
from ipkit.notebook import widgets"""

EXPLORE_CELL = """def draw(bars: int = 2):
    for _ in train.progress(range(3), desc="work"):
        pass
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.bar(range(bars), range(1, bars + 1), color="C0")
    ax.set_title(f"{bars} bars")


widgets.explore(draw, bars=widgets.slider(2, 1, 9, 1, "bars"))"""


@pytest.fixture
def explore_notebook():
    """A two-cell notebook whose Explore panel draws as many bars as its slider says, with a
    progress bar inside the callback (progress bars on, as for a person)."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(EXPLORE_SETUP), nbformat.v4.new_code_cell(EXPLORE_CELL)]
    return nb


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    """Write a test-only study ``tiny`` (notebook ``99_tiny.ipynb``: a title, the given
    parameters cell and body) and point IPKIT_NOTEBOOKS / FIGURES / RUNS under tmp_path."""
    import nbformat

    def write(parameters: str, body: str):
        nb = nbformat.v4.new_notebook(
            cells=[
                nbformat.v4.new_markdown_cell("# Tiny\n\nA test-only study."),
                nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body),
            ]
        )
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        (tmp_path / "notebooks").mkdir()
        nbformat.write(nb, tmp_path / "notebooks" / "99_tiny.ipynb")
        for name in ("IPKIT_NOTEBOOKS", "IPKIT_FIGURES", "IPKIT_RUNS"):
            monkeypatch.setenv(name, str(tmp_path / name.lower()[6:]))
        return tmp_path

    return write


@pytest.fixture(scope="module")
def trained(digits):
    out = []
    for seed in (0, 1):
        m = models.build("mlp", digits.num_classes, digits.in_shape, seed=seed)
        train.fit(m, digits.owner.x, digits.owner.y, epochs=15, seed=seed)
        out.append(m.eval())
    x, y = attacks.attack_set(out[0], digits.test.x, digits.test.y, 60)
    return out[0], out[1], x, y
