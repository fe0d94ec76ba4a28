"""Small builders shared by several test files: the CLI runner, a fake quickstart run,
and tiny models and data."""

import pandas as pd
import torch
from torch import nn

from ipkit import cli
from ipkit.core import stats
from ipkit.evidence import results
from ipkit.methods import models
from ipkit.notebook.registry import get_study, resolve
from ipkit.notebook.runtime import Run

QUICK = "quickstart"


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def _fake_run(tmp_path, monkeypatch):
    monkeypatch.setenv("IPKIT_FIGURES", str(tmp_path))
    info = get_study(QUICK)
    run = Run(info, resolve(info, "smoke", {}))
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    run.savefig(fig, "line")
    units = pd.DataFrame({"seed": [0] * 40 + [1] * 40 + [2] * 40, "hit": [1, 0, 1, 1] * 30})
    part = results.part("rate", units, stats.mean_of("hit"), threshold=0.2, holds_when="above", unit="carrier")
    claim = results.claim("Q1", "a claim", "paper says", part, quantifier="direction", paper_words="")
    return run, run.record({"value": 0.25}, [claim])


def _pool(n: int = 300, classes: int = 4, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % classes
    x = 0.1 * torch.rand(n, 1, 12, 12, generator=g)
    for c in range(classes):  # class c lights up one quadrant
        r, q = divmod(c, 2)
        x[y == c, :, r * 6 : (r + 1) * 6, q * 6 : (q + 1) * 6] += 0.8
    return x.clamp(0, 1), y


def _model(seed: int = 0):
    return models.build("mlp", 4, (1, 12, 12), seed=seed)


def _mlp(seed: int) -> nn.Module:
    return models.build("mlp", 5, (1, 8, 8), seed=seed).eval()


def _seeds(n: int = 16) -> torch.Tensor:
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(0))
