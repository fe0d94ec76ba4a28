"""Quickstart: watermark a model, steal it through its API, test the watermark on the copy.

A tutorial study that puts three papers' findings side by side:

- Adi, Baum, Cisse, Pinkas, Keshet, "Turning Your Weakness Into a Strength: Watermarking
  Deep Neural Networks by Backdooring", USENIX Security 2018
  (https://www.usenix.org/conference/usenixsecurity18/presentation/adi): a model
  memorizes secret inputs with labels its owner chose (the watermark);
- Tramèr, Zhang, Juels, Reiter, Ristenpart, "Stealing Machine Learning Models via
  Prediction APIs", USENIX Security 2016
  (https://www.usenix.org/conference/usenixsecurity16/technical-sessions/presentation/tramer):
  a copy trained on the answers of a prediction API agrees with the victim;
- Venigalla, "Strongly-transferring memorized examples in deep neural networks", MIT
  M.Eng. thesis, 2019 (study ``memorized_transfer``): from outputs alone, the memorized
  examples do not transfer to the copy.

What is reconstructed: random-noise (or abstract) carriers with random labels mixed into
the owner's batches (:func:`ipkit.methods.watermark.embed`), output-only distillation through
:class:`ipkit.methods.steal.Victim` (:func:`ipkit.methods.recipes.stolen_model`), and an independently
trained model of the same task as the floor a watermark test must beat. Per seed: one
carrier set, one victim, one thief and one independent model; the claims are judged on
the carriers and test images of every seed (:func:`claims`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from torch import nn

from ..core import stats
from ..evidence import results
from ..evidence.results import Claim
from ..evidence.sensitivity import Sweep
from ..methods import data, recipes, watermark
from ..methods.data import Splits
from ..methods.train import Progress, agreement, evaluate, no_progress, predict
from ..methods.watermark import WatermarkSet
from ..notebook import plots, widgets
from ..notebook.params import ParamError
from . import Params

# Hidden hyper-parameters of the study (recorded in results.json).
HYPERPARAMETERS: dict[str, Any] = {
    "wm_per_batch": 16,  # carriers mixed into every owner batch while embedding
}


@dataclass(frozen=True)
class Config(Params):
    """The notebook's parameters that shape the run (``Config.from_params(run.p)``)."""

    dataset: str
    victim_arch: str
    thief_arch: str
    wm_kind: str
    wm_count: int
    epochs: int
    query_budget: int
    steal_method: str
    seeds: tuple[int, ...]
    wm_embedded: float
    min_fidelity: float
    transfer_margin: float


#: "What would make it hold" (:mod:`ipkit.evidence.sensitivity`): Q3 is decided by how much of the
#: victim's behaviour the thief copies, so the thief's query budget is swept (the default
#: seeds, so the default point is the committed row).
SENSITIVITY = (Sweep(("Q3",), {"query_budget": [250, 1000, 2000]}, "the thief's query budget"),)


def check_params(values: dict) -> None:
    """Rules the parameter ranges cannot state, checked by ``ipkit run`` before any work:
    the query budget fits the attacker pool and the seeds are distinct. Raises a one-line
    ParamError naming the fix."""
    pool = data.split_sizes(values["dataset"])["attacker"]
    if values["query_budget"] > pool:
        raise ParamError(
            f"query_budget {values['query_budget']} exceeds the attacker pool of "
            f"{values['dataset']} ({pool} images): lower query_budget"
        )


def hyperparameters(s: Splits, cfg: Config) -> dict[str, Any]:
    """Everything fixed outside the parameters cell: :data:`HYPERPARAMETERS` and the
    trainer settings every model gets."""
    return {**HYPERPARAMETERS, "fit": recipes.train_settings(s, cfg.epochs)}


# ---------------------------------------------------------------- the experiment


def build(s: Splits, cfg: Config, seed: int) -> tuple[WatermarkSet, dict[str, nn.Module]]:
    """The seed's carriers (drawn with the owner's seed) and its three models, from the
    cache when they exist: the victim that memorized them, the thief trained on the
    victim's answers to ``query_budget`` queries, and the independent model."""
    wm = watermark.memorized_set(cfg.wm_kind, cfg.wm_count, s.in_shape, s.num_classes, seed=seed)
    victim = recipes.owner_model(
        s, cfg.victim_arch, epochs=cfg.epochs, seed=seed, wm=wm, wm_per_batch=HYPERPARAMETERS["wm_per_batch"]
    )
    thief = recipes.stolen_model(
        victim, s, cfg.thief_arch, budget=cfg.query_budget, method=cfg.steal_method, epochs=cfg.epochs, seed=seed
    )
    independent = recipes.independent_model(s, cfg.thief_arch, epochs=cfg.epochs, seed=seed)
    return wm, {"victim": victim, "thief": thief, "independent": independent}


def scorecard(models: dict[str, nn.Module], s: Splits, wm: WatermarkSet) -> list[dict[str, Any]]:
    """Test accuracy, fidelity to ``models["victim"]`` (label agreement on the test set) and
    watermark accuracy of each model: one dict per model, ready for pandas."""
    victim = models["victim"]
    return [
        {
            "model": name,
            "test_acc": evaluate(m, s.test.x, s.test.y),
            "fidelity": agreement(victim, m, s.test.x),
            "wm_acc": watermark.accuracy(m, wm),
        }
        for name, m in models.items()
    ]


def carrier_hits(models: dict[str, nn.Module], wm: WatermarkSet, seed: int) -> pd.DataFrame:
    """One row per carrier: 1 where a model gives the owner's label (a column per model)."""
    frame = pd.DataFrame({name: watermark.hits(m, wm).int().numpy() for name, m in models.items()})
    return frame.assign(seed=seed, carrier=range(len(frame)))[["seed", "carrier", *models]]


def image_agreement(models: dict[str, nn.Module], s: Splits, seed: int) -> pd.DataFrame:
    """One row per test image: 1 where a model gives the victim's label (a column per
    model other than the victim)."""
    victim = predict(models["victim"], s.test.x).argmax(1)
    frame = pd.DataFrame(
        {
            name: (predict(m, s.test.x).argmax(1) == victim).int().cpu().numpy()
            for name, m in models.items()
            if name != "victim"
        }
    )
    return frame.assign(seed=seed, image=range(len(frame)))[["seed", "image", *frame.columns]]


@dataclass
class Outcome:
    """Every seed's measurements: per-model scores and the per-unit outcomes the claims
    resample (carriers, test images), one row per unit."""

    scores: pd.DataFrame
    carriers: pd.DataFrame
    agreement: pd.DataFrame
    models: dict[int, tuple[WatermarkSet, dict[str, nn.Module]]]


def run_seeds(s: Splits, cfg: Config, progress: Progress = no_progress) -> Outcome:
    """Build and score the three models of every seed in ``cfg.seeds``."""
    scores, carriers, agree, built = [], [], [], {}
    for seed in progress(cfg.seeds, desc="seeds"):
        wm, models = built[seed] = build(s, cfg, seed)
        scores += [dict(r, seed=seed) for r in scorecard(models, s, wm)]
        carriers.append(carrier_hits(models, wm, seed))
        agree.append(image_agreement(models, s, seed))
    return Outcome(
        pd.DataFrame(scores), pd.concat(carriers, ignore_index=True), pd.concat(agree, ignore_index=True), built
    )


def summary(scores: pd.DataFrame) -> pd.DataFrame:
    """Mean and spread over seeds of each model's test accuracy, fidelity and watermark
    accuracy (columns ``<metric>_mean``, ``<metric>_std``)."""
    table = scores.groupby("model", sort=False)[["test_acc", "fidelity", "wm_acc"]].agg(["mean", "std"])
    table.columns = [f"{a}_{b}" for a, b in table.columns]
    return table.reset_index()


def plot_scorecard(scores: pd.DataFrame, cfg: Config):
    """Bars of each model's metrics: mean over seeds, spread as error bars."""
    return plots.bars(
        scores.melt(id_vars=["model", "seed"], var_name="metric"),
        x="metric",
        y="value",
        hue="model",
        title=f"Output-only stealing ({cfg.steal_method}, {cfg.query_budget} queries) on {cfg.dataset}",
    )


def explore(s: Splits, cfg: Config, outcome: Outcome) -> None:
    """Widgets: the first seed's victim stolen with another budget or target. The victim's
    row is scored once and each thief's row once per setting, so returning to a setting
    only redraws."""
    seed = cfg.seeds[0]
    wm, models = outcome.models[seed]
    victim_row = scorecard({"victim": models["victim"]}, s, wm)
    thief_rows: dict[tuple[int, str], list[dict[str, Any]]] = {}

    def steal_with(queries: int = cfg.query_budget, method: str = cfg.steal_method) -> None:
        if (queries, method) not in thief_rows:
            thief = recipes.stolen_model(
                models["victim"], s, cfg.thief_arch, budget=queries, method=method, epochs=cfg.epochs, seed=seed
            )
            thief_rows[queries, method] = scorecard({"victim": models["victim"], "thief": thief}, s, wm)[1:]
        frame = pd.DataFrame(victim_row + thief_rows[queries, method])
        plots.bars(
            frame.melt(id_vars=["model"], var_name="metric"),
            x="metric",
            y="value",
            hue="model",
            title=f"{queries} queries, {method}",
        )

    widgets.explore(
        steal_with,
        queries=widgets.slider(cfg.query_budget, 10, len(s.attacker), 10, "queries"),
        method=widgets.dropdown(["probs", "labels"], cfg.steal_method, "thief learns from"),
    )


def recorded_metrics(outcome: Outcome) -> dict[str, Any]:
    """The metrics ``run.record`` stores in results.json: every model's scores per seed."""
    return {"scores": outcome.scores.to_dict("records")}


# ---------------------------------------------------------------- claims


def claims(carriers: pd.DataFrame, agreement: pd.DataFrame, cfg: Config) -> list[Claim]:
    """Q1-Q3 with their evidence.

    Resampled: the seeds, then within each seed the carriers (Q1, Q3) or the test images
    (Q2). Q3 is paired: the thief's and the independent model's hit on the same carrier
    stay in one row, so the interval is that of the paired difference.
    """
    return [
        results.claim(
            "Q1",
            f"(tutorial) Training with a memorized set embeds the watermark (victim "
            f"watermark accuracy above {cfg.wm_embedded:g})",
            "~100% watermark accuracy (Adi et al. 2018)",
            results.part(
                "victim_wm_acc",
                carriers,
                stats.mean_of("victim"),
                threshold=cfg.wm_embedded,
                holds_when="above",
                unit="carrier",
            ),
            quantifier="on average",
            paper_words="",
        ),
        results.claim(
            "Q2",
            f"(tutorial) Output-only stealing copies the task (thief fidelity above {cfg.min_fidelity:g})",
            "high fidelity from API queries (Tramer et al. 2016)",
            results.part(
                "thief_fidelity",
                agreement,
                stats.mean_of("thief"),
                threshold=cfg.min_fidelity,
                holds_when="above",
                unit="test image",
            ),
            quantifier="on average",
            paper_words="",
        ),
        results.claim(
            "Q3",
            f"(tutorial) Output-only stealing does not carry the watermark (thief's watermark "
            f"accuracy less than {cfg.transfer_margin:g} above the independent floor)",
            "memorized examples do not transfer without gradients (Venigalla 2019)",
            results.part(
                "thief_minus_floor",
                carriers,
                stats.mean_difference("thief", "independent"),
                threshold=cfg.transfer_margin,
                holds_when="below",
                unit="carrier",
            ),
            quantifier="on average",
            paper_words="",
        ),
    ]
