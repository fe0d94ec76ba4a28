"""Memorized examples that transfer to stolen models (Venigalla, MIT M.Eng. thesis, 2019).

The owner memorizes a few secret carriers with chosen wrong labels (:mod:`ipkit.watermark`);
an attacker who never sees them steals a copy through the black-box victim
(:mod:`ipkit.steal`) from hard labels, from logits (KD at a temperature), or from logits
and input gradients (Jacobian matching, Srinivas & Fleuret 2018). The transfer rate is
the share of the victim's memorized carriers on which the copy gives the owner's label,
always shown beside its floor: the same rate for an independently trained model.

:class:`Setup` builds every model through the cache; the ``*_rows`` functions run the
study's experiments and return tidy rows; the ``plot_*`` functions draw its figures.
Only the thesis abstract is public: the boost (memorizing Gaussian neighbours of each
carrier) and the geometry statistics are this reconstruction's choices.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from . import cache, data, plots, recipes, steal, watermark
from .data import Splits
from .study import ParamError
from .train import agreement, evaluate

METHODS = ("labels", "kd", "jacobian")
LABELS = {"labels": "hard labels", "kd": "logits (KD)", "jacobian": "logits +\ninput gradients",
          "independent": "independent\n(floor)"}


def check_params(values: dict) -> None:
    """Rules the parameter ranges cannot state (see :data:`ipkit.study.CHECKS`): the query
    budget fits the attacker pool, projections fit the classes, the out-of-distribution
    source is available when used, and flipped carriers fit the owner's images. Raises a
    one-line ParamError naming the fix."""
    s = data.split(values["dataset"], seed=0, device="cpu")
    if values["query_budget"] > len(s.attacker):
        raise ParamError(f"query_budget {values['query_budget']} exceeds the attacker pool "
                         f"({len(s.attacker)} images): lower query_budget")
    if values["projections"] > s.num_classes:
        raise ParamError(f"projections {values['projections']} exceeds the {s.num_classes} classes: "
                         "lower projections")
    if values["ood_source"] != "abstract" and ("ood" in values["query_perturbation"] or values["wm_kind"] == "ood"):
        try:
            data.available(values["ood_source"])
        except data.DataError as err:
            raise ParamError(f"ood_source: {err}") from None
    if values["wm_kind"] == "flipped" and values["wm_count"] > len(s.owner):
        raise ParamError(f"wm_count {values['wm_count']} exceeds the owner's {len(s.owner)} images: "
                         "lower wm_count")


@dataclass
class Setup:
    """Everything a run fixes: the split and the owner's and attacker's settings.

    ``method``, ``alpha``, ``budget`` and the architectures are defaults that each
    experiment may override; models come from the cache (trained once per setting).
    """

    s: Splits
    victim_arch: str
    thief_arch: str
    wm_kind: str
    wm_count: int
    wm_per_batch: int
    epochs: int
    method: str
    alpha: float
    temperature: float
    budget: int
    projections: int
    projection: str
    ood_source: str
    neighbours: int
    neighbour_std: float

    @classmethod
    def from_params(cls, s: Splits, p: Any) -> "Setup":
        """A Setup from a notebook's parameters (``run.p``), already checked by
        :func:`check_params`."""
        return cls(s, p.victim_arch, p.thief_arch, p.wm_kind, p.wm_count, p.wm_per_batch, p.epochs,
                   p.steal_method, p.alpha, p.temperature, p.query_budget, p.projections, p.projection,
                   p.ood_source, p.neighbours, p.neighbour_std)

    def carriers(self, seed: int, kind: str | None = None) -> watermark.WatermarkSet:
        """The owner's memorized set for ``seed``: ``wm_count`` carriers of ``kind``.

        ``flipped`` carriers are owner images with a wrong label; ``ood`` carriers come
        from ``ood_source`` images the attacker's out-of-distribution pool never holds.
        """
        kind = kind or self.wm_kind
        pool = None
        if kind == "flipped":
            pool = (self.s.owner.x, self.s.owner.y)
        elif kind == "ood":
            x = steal.ood_pool(self.ood_source, self.wm_count, self.s.in_shape, seed, part="carriers")
            pool = (x, torch.zeros(len(x), dtype=torch.long))
        return watermark.memorized_set(kind, self.wm_count, self.s.in_shape, self.s.num_classes,
                                       seed=seed, pool=pool)

    def victim(self, seed: int, arch: str | None = None, boost: bool = False,
               kind: str | None = None) -> tuple[nn.Module, watermark.WatermarkSet]:
        """The owner's model (cached) and its carriers. ``boost``: the owner memorizes each
        carrier's ``neighbours`` Gaussian neighbours (std ``neighbour_std``) as well, with
        the carrier's label (:func:`ipkit.watermark.neighbourhood`)."""
        wm = self.carriers(seed, kind)
        train_set = watermark.neighbourhood(wm, self.neighbours, self.neighbour_std, seed) if boost else wm
        model = recipes.owner_model(self.s, arch or self.victim_arch, epochs=self.epochs, seed=seed,
                                    wm=train_set, wm_per_batch=self.wm_per_batch)
        return model, wm

    def floor(self, seed: int, arch: str | None = None) -> nn.Module:
        """An independently trained model of the thief's architecture (the floor)."""
        return recipes.independent_model(self.s, arch or self.thief_arch, epochs=self.epochs, seed=seed)

    def queries(self, seed: int, perturbation: str = "none", strength: float = 0.0,
                budget: int | None = None) -> Tensor:
        """The attacker's ``budget`` queries: from its pool (perturbed) or out of distribution."""
        budget = budget or self.budget
        if perturbation == "ood":
            return steal.ood_pool(self.ood_source, budget, self.s.in_shape, seed, device=self.s.attacker.x.device)
        x = steal.query_set(self.s.attacker.x, budget, seed=seed)
        return steal.perturb(x, perturbation, strength, seed=seed)

    def thief(self, victim: nn.Module, seed: int, method: str | None = None, arch: str | None = None,
              alpha: float | None = None, budget: int | None = None, perturbation: str = "none",
              strength: float = 0.0) -> nn.Module:
        """A copy of ``victim`` stolen with ``method`` (cached).

        ``labels``: cross-entropy on the victim's labels; ``kd``: KD at ``temperature`` on
        its logits; ``jacobian``: KD plus ``alpha`` x Jacobian matching on ``projections``
        projected input gradients per query (:func:`ipkit.steal.jacobian_distill`).
        """
        method, arch = method or self.method, arch or self.thief_arch
        alpha = self.alpha if alpha is None else alpha
        budget = budget or self.budget
        if method not in METHODS:
            raise ValueError(f"unknown stealing method '{method}': choose one of {', '.join(METHODS)}")
        settings = recipes.train_settings(self.s, self.epochs)
        params = dict(victim=victim.ipkit_key, split=self.s.fingerprint, arch=arch, method=method,
                      budget=budget, temperature=self.temperature, perturbation=perturbation,
                      strength=strength, seed=seed, fit=settings,
                      ood=self.ood_source if perturbation == "ood" else None,
                      jacobian=dict(alpha=alpha, k=self.projections, projection=self.projection)
                      if method == "jacobian" else None)

        def train(model: nn.Module) -> dict:
            x = self.queries(seed, perturbation, strength, budget)
            if method == "jacobian":
                oracle = steal.GradientVictim(victim, output="logits", budget=budget)
                steal.jacobian_distill(oracle, x, model, alpha=alpha, temperature=self.temperature,
                                       k=self.projections, projection=self.projection, seed=seed,
                                       desc=f"steal jacobian -> {arch}", **settings)
            else:
                oracle = steal.Victim(victim, output="labels" if method == "labels" else "logits", budget=budget)
                steal.distill(oracle, x, model, method="labels" if method == "labels" else "probs",
                              temperature=self.temperature, seed=seed, desc=f"steal {method} -> {arch}",
                              **settings)
            return {"test_acc": evaluate(model, self.s.test.x, self.s.test.y), "queries": oracle.queries}

        return cache.cached_model("memorized-thief", params,
                                  lambda: recipes.fresh_model(self.s, arch, 2000 + seed), train)

    def score(self, victim: nn.Module, wm: watermark.WatermarkSet, model: nn.Module) -> dict[str, float]:
        """Transfer rate (over the carriers the victim memorized), test accuracy and
        fidelity to the victim of ``model``; the victim's accuracy and memorization."""
        memorized = watermark.hits(victim, wm)
        return {"transfer": watermark.transfer_rate(model, wm, memorized),
                "test_acc": evaluate(model, self.s.test.x, self.s.test.y),
                "fidelity": agreement(victim, model, self.s.test.x),
                "victim_acc": evaluate(victim, self.s.test.x, self.s.test.y),
                "victim_memorized": float(memorized.float().mean())}


def method_rows(st: Setup, seeds: list[int], methods: list[str], boost: bool = False) -> list[dict]:
    """Per seed: the victim, one thief per method and the independent floor, scored."""
    rows = []
    for seed in seeds:
        victim, wm = st.victim(seed, boost=boost)
        for method in methods:
            rows.append({"seed": seed, "method": method, "boost": boost,
                         **st.score(victim, wm, st.thief(victim, seed, method))})
        rows.append({"seed": seed, "method": "independent", "boost": boost,
                     **st.score(victim, wm, st.floor(seed))})
    return rows


def alpha_rows(st: Setup, seeds: list[int], alphas: list[float]) -> list[dict]:
    """Transfer of Jacobian-matching thieves for each weight ``alpha`` of the gradient term."""
    rows = []
    for seed in seeds:
        victim, wm = st.victim(seed)
        for alpha in alphas:
            rows.append({"seed": seed, "alpha": alpha,
                         **st.score(victim, wm, st.thief(victim, seed, "jacobian", alpha=alpha))})
    return rows


def grid_rows(st: Setup, seeds: list[int], archs: list[str], method: str | None = None) -> list[dict]:
    """Transfer for every victim x thief architecture pair, with each thief
    architecture's independent floor on the same carriers."""
    rows = []
    for seed in seeds:
        for v_arch in archs:
            victim, wm = st.victim(seed, arch=v_arch)
            for t_arch in archs:
                stolen = st.score(victim, wm, st.thief(victim, seed, method, arch=t_arch))
                floor = st.score(victim, wm, st.floor(seed, arch=t_arch))["transfer"]
                rows.append({"seed": seed, "victim_arch": v_arch, "thief_arch": t_arch, "floor": floor,
                             **stolen})
    return rows


def perturbation_rows(st: Setup, seeds: list[int], settings: list[tuple[str, float]],
                      method: str | None = None) -> list[dict]:
    """Transfer when the attacker's queries are perturbed: ``settings`` lists
    (perturbation, strength) pairs, ``("ood", 0)`` for the out-of-distribution pool."""
    rows = []
    for seed in seeds:
        victim, wm = st.victim(seed)
        for kind, strength in settings:
            thief = st.thief(victim, seed, method, perturbation=kind, strength=strength)
            rows.append({"seed": seed, "perturbation": kind, "strength": strength,
                         **st.score(victim, wm, thief)})
    return rows


def geometry_rows(st: Setup, seeds: list[int], method: str | None = None) -> pd.DataFrame:
    """Per memorized carrier: did the thief reproduce the owner's label, the distance to
    the nearest query and the mean distance to the 10 nearest, and the victim's margin."""
    frames = []
    for seed in seeds:
        victim, wm = st.victim(seed)
        thief = st.thief(victim, seed, method)
        queries = st.queries(seed)
        memorized = watermark.hits(victim, wm)
        frames.append(pd.DataFrame({
            "seed": seed, "carrier": np.arange(len(wm)),
            "transferred": watermark.hits(thief, wm).numpy(),
            "nearest_query": watermark.nearest_distance(wm, queries, k=1).numpy(),
            "nearest_10": watermark.nearest_distance(wm, queries, k=10).numpy(),
            "victim_margin": watermark.margin(victim, wm).numpy(),
        })[memorized.numpy()])
    return pd.concat(frames, ignore_index=True)


STATISTICS = ("nearest_query", "nearest_10", "victim_margin")


def correlations(geo: pd.DataFrame) -> pd.DataFrame:
    """Spearman and Pearson (point-biserial) correlation of each geometry statistic with
    whether the carrier transferred; NaN where either side is constant."""
    t = geo.transferred.astype(float)
    rows = []
    for stat in STATISTICS:
        varied = t.nunique() > 1 and geo[stat].nunique() > 1
        rows.append({"statistic": stat,
                     "spearman": t.corr(geo[stat], method="spearman") if varied else float("nan"),
                     "pearson": t.corr(geo[stat]) if varied else float("nan")})
    return pd.DataFrame(rows)


def metrics_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Victim accuracy and memorization, thief accuracy, fidelity and transfer per method:
    mean over seeds with the spread of the transfer rate."""
    g = scores.groupby("method", sort=False)
    table = g[["victim_acc", "victim_memorized", "test_acc", "fidelity", "transfer"]].mean()
    table["transfer_std"] = g.transfer.std().fillna(0.0)
    return table.rename(columns={"test_acc": "thief_acc"}).reset_index()


def _label(m: str) -> str:
    return LABELS.get(m, m)


def plot_methods(scores: pd.DataFrame, title: str = ""):
    """Figure 1: transfer rate by stealing method, mean and spread over seeds, with the
    independent model's rate as the floor line."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = scores.assign(label=scores.method.map(_label))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    sns.barplot(data=frame, x="label", y="transfer", errorbar="sd", capsize=0.1, ax=ax)
    plots.strip(ax, data=frame, x="label", y="transfer", color="k", size=4)
    floor = scores[scores.method == "independent"].transfer.mean()
    ax.axhline(floor, ls="--", c="grey", label=f"floor {floor:.2f}")
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="transfer rate", title=title)
    ax.legend(frameon=False)
    return fig


def plot_alpha(frame: pd.DataFrame, floor: float, title: str = ""):
    """Figure 2: transfer rate against the weight alpha of the gradient term."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(6, 3.6))
    x = frame.assign(pos=frame.alpha.map({a: i for i, a in enumerate(sorted(frame.alpha.unique()))}))
    sns.lineplot(data=x, x="pos", y="transfer", marker="o", errorbar="sd", ax=ax, label="transfer")
    sns.lineplot(data=x, x="pos", y="fidelity", marker="s", errorbar="sd", ax=ax, label="fidelity")
    ax.axhline(floor, ls="--", c="grey", label=f"floor {floor:.2f}")
    alphas = sorted(frame.alpha.unique())
    ax.set_xticks(range(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set(ylim=(0, 1.05), xlabel="alpha (weight of Jacobian matching; 0 = KD only)", ylabel="rate",
           title=title)
    ax.legend(frameon=False, loc="center right")
    return fig


def plot_grid(frame: pd.DataFrame, title: str = ""):
    """Figure 3: victim x thief architecture heat map of transfer (floor in brackets)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    mean = frame.groupby(["victim_arch", "thief_arch"]).mean(numeric_only=True)
    rate = mean.transfer.unstack()
    floor = mean.floor.unstack()
    notes = rate.map(lambda v: f"{v:.2f}").astype(str) + floor.map(lambda v: f"\n(floor {v:.2f})")
    fig, ax = plt.subplots(figsize=(1.8 * len(rate.columns) + 2, 1.3 * len(rate) + 1))
    sns.heatmap(rate, annot=notes, fmt="", vmin=0, vmax=1, cmap="viridis", ax=ax,
                cbar_kws={"label": "transfer rate"})
    ax.set(xlabel="thief architecture", ylabel="victim architecture", title=title)
    return fig


def plot_perturbation(frame: pd.DataFrame, floor: float, title: str = ""):
    """Figure 4: transfer against perturbation strength, one line per kind, with the
    out-of-distribution pool as a separate point."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[3, 1], sharey=True)
    base = frame[frame.perturbation == "none"]
    lines = frame[frame.perturbation.isin(["noise", "shift"])]
    lines = pd.concat([lines] + [base.assign(perturbation=k) for k in lines.perturbation.unique()])
    sns.lineplot(data=lines, x="strength", y="transfer", hue="perturbation", marker="o", errorbar="sd", ax=ax)
    ax.axhline(floor, ls="--", c="grey", label=f"floor {floor:.2f}")
    ax.set(ylim=(0, 1.05), xlabel="strength (noise std; shift: x quarter side)", ylabel="transfer rate",
           title=title)
    ax.legend(frameon=False)
    pool = pd.concat([base.assign(pool="attacker\npool"), frame[frame.perturbation == "ood"].assign(pool="OOD\npool")])
    sns.barplot(data=pool, x="pool", y="transfer", errorbar="sd", capsize=0.1, ax=ax2)
    ax2.axhline(floor, ls="--", c="grey")
    ax2.set(xlabel="")
    return fig


def plot_geometry(geo: pd.DataFrame, corr: pd.DataFrame):
    """Figure 5: per memorized carrier, each geometry statistic for carriers that did and
    did not transfer, with the correlation in the panel title."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = {"nearest_query": "distance to nearest query", "nearest_10": "mean distance to 10 nearest",
             "victim_margin": "victim's logit margin"}
    fig, axes = plt.subplots(1, len(STATISTICS), figsize=(4.6 * len(STATISTICS), 3.8))
    frame = geo.assign(outcome=geo.transferred.map({True: "transferred", False: "not\ntransferred"}))
    order = ["transferred", "not\ntransferred"]
    for ax, (_, row) in zip(axes, corr.iterrows()):
        plots.strip(ax, data=frame, x="outcome", y=row.statistic, order=order, alpha=0.5, size=3)
        sns.boxplot(data=frame, x="outcome", y=row.statistic, order=order, showfliers=False,
                    boxprops={"facecolor": "none"}, ax=ax)
        ax.set(xlabel="", ylabel=names[row.statistic],
               title=f"Spearman {row.spearman:.2f}, Pearson {row.pearson:.2f}")
    fig.tight_layout()
    return fig


def plot_boost(frame: pd.DataFrame, title: str = ""):
    """Figure 6: transfer rate of plain and boosted owners under the same attacks."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    x = frame.assign(label=frame.method.map(_label), owner=frame.boost.map({False: "plain", True: "boosted"}))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(data=x, x="label", y="transfer", hue="owner", errorbar="sd", capsize=0.1, ax=ax)
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="transfer rate", title=title)
    ax.legend(frameon=False, loc="upper left")
    return fig
