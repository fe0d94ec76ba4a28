"""Memorized examples that transfer to stolen models.

Paper: A. S. Venigalla, "Strongly-transferring memorized examples in deep neural
networks", M.Eng. thesis, Massachusetts Institute of Technology (advisor A. Madry), 2019;
MIT DSpace, https://dspace.mit.edu (only the abstract is public).

The owner memorizes a few secret carriers with chosen wrong labels (:mod:`ipkit.methods.watermark`);
an attacker who never sees them steals a copy through the black-box victim
(:mod:`ipkit.methods.steal`) from hard labels, from logits (KD at a temperature), or from logits
and input gradients (Jacobian matching, Srinivas & Fleuret 2018). The transfer rate is the
share of the victim's memorized carriers on which the copy gives the owner's label, always
beside its floor: the same rate for an independently trained model.

Reconstructed here: :class:`Setup` builds every model through the cache; the ``*_table``
functions run the study's experiments and return per-seed scores and per-carrier outcomes
(one row per memorized carrier, a column per model scored on it); the ``plot_*`` functions
draw its figures; :func:`claims` turns the tables into the rows M1-<arch> (one per
architecture of ``method_archs``: the thesis names none), M2-M5 and M2b (beyond the paper).
The boost (memorizing Gaussian neighbours of each carrier), the geometry statistics and
the second carrier kind of the geometry test (flipped: noise carriers lie about equally far
from every query, which makes a weak correlation nearly certain) are this reconstruction's
choices, not the thesis's. Every model a claim compares is trained once per seed, the
architecture grid included; ``ALTERNATIVES`` lists the defaults chosen after trial runs
(victim/thief architecture, carriers per batch) and the carrier kind, with the values they
were chosen among.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ..core.seeds import seed_for
from ..core.stats import mean_difference
from ..evidence import results
from ..evidence.sensitivity import Sweep
from ..methods import cache, data, recipes, steal, watermark
from ..methods.data import Splits
from ..methods.train import agreement, evaluate
from ..notebook import plots, widgets
from ..notebook.params import ParamError
from . import Params

METHODS = ("labels", "kd", "jacobian")
LABELS = {
    "labels": "hard labels",
    "kd": "logits (KD)",
    "jacobian": "logits +\ninput gradients",
    "independent": "independent\n(floor)",
}
STATISTICS = ("nearest_query", "nearest_10", "victim_margin")
PAPER = "Venigalla 2019, abstract"
#: The abstract's own words for each claim (quoted short from shared/papers/memorized_transfer.md).
WORDS = {
    "M1": "strongly embedded and DO transfer to a stolen model under one form of stealing: when the attacker "
    "trains the copy using the victim's local input-logit gradients",
    "M2": "The transfer survives an architecture mismatch between victim and copy",
    "M3": "The transfer survives ... perturbations of the attacker's query set",
    "M4": "Local input geometry ... is not enough to explain the transfer",
    "M5": "A simple owner-side change boosts the transfer rate",
}


@dataclass(frozen=True)
class Hidden:
    """The study's constants that are not notebook parameters (written to results.json)."""

    nearest_k: int = 10  # the geometry statistic 'nearest_10' averages this many queries


HIDDEN = Hidden()


@dataclass(frozen=True)
class Config(Params):
    """The notebook's parameters, typed (see the parameters cell for ranges and help);
    ``Config.from_params(run.p)`` builds it."""

    dataset: str
    victim_arch: str
    thief_arch: str
    wm_kind: str
    wm_count: int
    wm_per_batch: int
    epochs: int
    steal_method: str
    methods: tuple[str, ...]
    alpha: float
    alphas: tuple[float, ...]
    temperature: float
    query_budget: int
    projections: int
    projection: str
    query_perturbation: tuple[str, ...]
    strengths: tuple[float, ...]
    ood_source: str
    grid_archs: tuple[str, ...]
    method_archs: tuple[str, ...]
    geometry_kinds: tuple[str, ...]
    boost: bool
    neighbours: int
    neighbour_std: float
    seeds: tuple[int, ...]
    well_above: float
    near: float
    weak: float
    boost_gain: float

    def perturbation_settings(self) -> list[tuple[str, float]]:
        """The query sets of figure 4: clean, each perturbation at each strength, and the
        out-of-distribution pool (strength 0) when ``ood`` is swept."""
        settings = [("none", 0.0)] + [(k, v) for k in self.query_perturbation if k != "ood" for v in self.strengths]
        return settings + ([("ood", 0.0)] if "ood" in self.query_perturbation else [])


def hyperparameters(s: Splits, cfg: Config) -> dict[str, Any]:
    """The hidden constants and the trainer settings every model of the run uses."""
    return {**asdict(HIDDEN), "fit": recipes.train_settings(s, cfg.epochs)}


def _ood_images(source: str, part: str) -> int | None:
    """How many images ``steal.ood_pool(source, part=part)`` can draw (None: unlimited)."""
    if source == "abstract":
        return None
    ds = data.load(source)
    if ds.test is None:
        return len(ds.train) // 2
    return len(ds.test) if part == "queries" else len(ds.train)


#: "What would make it hold" (:mod:`ipkit.evidence.sensitivity`): how much of the victim's Jacobian the
#: thief sees per query decides the transfer, so the projections per query are swept up to
#: 10, as many as the logits (the full Jacobian), and for the architecture grid also the
#: weight of the Jacobian term. With the default seeds (three trainings: one seed would cap
#: every verdict at inconclusive), so each sweep's default point is the committed row.
SENSITIVITY = (
    Sweep(
        ("M2", "M2b", "M4", "M5"),
        {"projections": [1, 2, 10]},
        "projected Jacobians per query, 10 being the full Jacobian",
    ),
    Sweep(("M2", "M2b"), {"alpha": [1.0, 10.0]}, "the weight of the Jacobian term"),
)


#: Forking paths (issue 24): defaults chosen among these values, each run by
#: ``ipkit sweep memorized_transfer --alternatives`` with the default seeds. The mlp victim
#: and thief and 64 carriers per batch were chosen after short trial runs (CNN thieves stayed
#: near the floor; with 16 per batch a CNN owner memorized 41% of its carriers). The carrier
#: kind was not tried before the choice, but the thesis names none; ``abstract`` carriers equal
#: ``ood`` ones under the default ``ood_source`` (procedural abstract images), so it is left out.
#: The M1-<arch> rows and the grid (M2, M2b) do not read ``victim_arch``/``thief_arch``.
ALTERNATIVES = (
    Sweep(
        ("M3", "M4", "M5"),
        {"victim_arch": ["mlp", "cnn"], "thief_arch": ["mlp", "cnn"]},
        "victim and thief architecture, mlp chosen after trial runs",
    ),
    Sweep(
        ("M1-mlp", "M1-cnn", "M1-lenet5", "M2", "M2b", "M3", "M5"),
        {"wm_kind": ["noise", "ood", "flipped"]},
        "carrier kind, noise by default (the thesis names none; M4 runs on geometry_kinds)",
    ),
    Sweep(
        ("M1-mlp", "M1-cnn", "M1-lenet5", "M2", "M2b", "M3", "M4", "M5"),
        {"wm_per_batch": [16, 64]},
        "carriers per owner batch, 64 chosen after trial runs",
    ),
)


def check_params(values: dict) -> None:
    """Rules the parameter ranges cannot state, checked before any work: the query budget
    fits the attacker pool (and the out-of-distribution pool when swept), projections fit
    the classes, the out-of-distribution source is available and large enough when used,
    and flipped carriers (``wm_kind`` or ``geometry_kinds``) fit the owner's images (no list
    repeats an entry: the shared parameter rules, :func:`ipkit.notebook.params.check_value`).
    Raises a one-line ParamError naming the fix."""
    sizes = data.split_sizes(values["dataset"])
    if values["query_budget"] > sizes["attacker"]:
        raise ParamError(
            f"query_budget {values['query_budget']} exceeds the attacker pool "
            f"({sizes['attacker']} images): lower query_budget"
        )
    kinds = {values["wm_kind"], *values["geometry_kinds"]}
    if "flipped" in kinds and values["wm_count"] > sizes["owner"]:
        raise ParamError(f"wm_count {values['wm_count']} exceeds the owner's {sizes['owner']} images: lower wm_count")
    classes = data.load(values["dataset"]).num_classes
    if values["projections"] > classes:
        raise ParamError(f"projections {values['projections']} exceeds the {classes} classes: lower projections")
    ood_queries, ood_carriers = "ood" in values["query_perturbation"], "ood" in kinds
    if values["ood_source"] == "abstract" or not (ood_queries or ood_carriers):
        return
    try:
        data.available(values["ood_source"])
    except data.DataError as err:
        raise ParamError(f"ood_source: {err}") from None
    for used, part, name in ((ood_queries, "queries", "query_budget"), (ood_carriers, "carriers", "wm_count")):
        room = _ood_images(values["ood_source"], part)
        if used and room is not None and values[name] > room:
            raise ParamError(
                f"{name} {values[name]} exceeds the {room} images of ood_source "
                f"'{values['ood_source']}' for {part}: lower {name} or choose another ood_source"
            )


@dataclass
class Setup:
    """A run's split and settings; builds every model through the cache.

    Each experiment may override the method, ``alpha``, budget and architectures of
    ``cfg``; models are trained once per setting.
    """

    s: Splits
    cfg: Config

    def carriers(self, seed: int, kind: str | None = None) -> watermark.WatermarkSet:
        """The owner's memorized set for ``seed``: ``wm_count`` carriers of ``kind``.

        ``flipped`` carriers are owner images with a wrong label; ``ood`` carriers come
        from ``ood_source`` images the attacker's out-of-distribution pool never holds.
        """
        kind, c = kind or self.cfg.wm_kind, self.cfg
        pool = None
        if kind == "flipped":
            pool = (self.s.owner.x, self.s.owner.y)
        elif kind == "ood":
            x = steal.ood_pool(c.ood_source, c.wm_count, self.s.in_shape, seed, part="carriers")
            pool = (x, torch.zeros(len(x), dtype=torch.long))
        return watermark.memorized_set(kind, c.wm_count, self.s.in_shape, self.s.num_classes, seed=seed, pool=pool)

    def victim(
        self, seed: int, arch: str | None = None, boost: bool = False, kind: str | None = None
    ) -> tuple[nn.Module, watermark.WatermarkSet]:
        """The owner's model (cached) and its carriers. ``boost``: the owner memorizes each
        carrier's ``neighbours`` Gaussian neighbours (std ``neighbour_std``) as well, with
        the carrier's label (:func:`ipkit.methods.watermark.neighbourhood`)."""
        c = self.cfg
        wm = self.carriers(seed, kind)
        train_set = watermark.neighbourhood(wm, c.neighbours, c.neighbour_std, seed) if boost else wm
        model = recipes.owner_model(
            self.s, arch or c.victim_arch, epochs=c.epochs, seed=seed, wm=train_set, wm_per_batch=c.wm_per_batch
        )
        return model, wm

    def floor(self, seed: int, arch: str | None = None) -> nn.Module:
        """An independently trained model of the thief's architecture (the floor)."""
        return recipes.independent_model(self.s, arch or self.cfg.thief_arch, epochs=self.cfg.epochs, seed=seed)

    def queries(
        self, seed: int, perturbation: str = "none", strength: float = 0.0, budget: int | None = None
    ) -> Tensor:
        """The attacker's ``budget`` queries: from its pool (perturbed) or out of distribution."""
        budget = budget or self.cfg.query_budget
        if perturbation == "ood":
            return steal.ood_pool(self.cfg.ood_source, budget, self.s.in_shape, seed, device=self.s.attacker.x.device)
        x = steal.query_set(self.s.attacker.x, budget, seed=seed)
        return steal.perturb(x, perturbation, strength, seed=seed)

    def thief(
        self,
        victim: nn.Module,
        seed: int,
        method: str | None = None,
        arch: str | None = None,
        alpha: float | None = None,
        budget: int | None = None,
        perturbation: str = "none",
        strength: float = 0.0,
    ) -> nn.Module:
        """A copy of ``victim`` stolen with ``method`` (cached).

        ``labels``: cross-entropy on the victim's labels; ``kd``: KD at ``temperature`` on
        its logits; ``jacobian``: KD plus ``alpha`` x Jacobian matching on ``projections``
        projected input gradients per query (:func:`ipkit.methods.steal.jacobian_distill`).
        """
        c = self.cfg
        method, arch = method or c.steal_method, arch or c.thief_arch
        alpha = c.alpha if alpha is None else alpha
        budget = budget or c.query_budget
        if method not in METHODS:
            raise ValueError(f"unknown stealing method '{method}': choose one of {', '.join(METHODS)}")
        settings = recipes.train_settings(self.s, c.epochs)
        params = dict(
            victim=victim.ipkit_key,
            split=self.s.fingerprint,
            arch=arch,
            method=method,
            budget=budget,
            temperature=c.temperature,
            perturbation=perturbation,
            strength=strength,
            seed=seed,
            fit=settings,
            ood=c.ood_source if perturbation == "ood" else None,
            jacobian=dict(alpha=alpha, k=c.projections, projection=c.projection) if method == "jacobian" else None,
        )

        def train(model: nn.Module) -> dict:
            x = self.queries(seed, perturbation, strength, budget)
            oracle: steal.Victim
            if method == "jacobian":
                oracle = gradients = steal.GradientVictim(victim, output="logits", budget=budget)
                steal.jacobian_distill(
                    gradients,
                    x,
                    model,
                    alpha=alpha,
                    temperature=c.temperature,
                    k=c.projections,
                    projection=c.projection,
                    seed=seed,
                    desc=f"steal jacobian -> {arch}",
                    **settings,
                )
            else:
                oracle = steal.Victim(victim, output="labels" if method == "labels" else "logits", budget=budget)
                steal.distill(
                    oracle,
                    x,
                    model,
                    method="labels" if method == "labels" else "probs",
                    temperature=c.temperature,
                    seed=seed,
                    desc=f"steal {method} -> {arch}",
                    **settings,
                )
            return {"test_acc": evaluate(model, self.s.test.x, self.s.test.y), "queries": oracle.queries}

        return cache.cached_model(
            "memorized-thief", params, lambda: recipes.fresh_model(self.s, arch, seed_for("thief", seed)), train
        )

    def score(self, victim: nn.Module, wm: watermark.WatermarkSet, model: nn.Module) -> dict[str, float]:
        """Transfer rate (over the carriers the victim memorized), test accuracy and
        fidelity to the victim of ``model``; the victim's accuracy and memorization."""
        memorized = watermark.hits(victim, wm)
        return {
            "transfer": watermark.transfer_rate(model, wm, memorized),
            "test_acc": evaluate(model, self.s.test.x, self.s.test.y),
            "fidelity": agreement(victim, model, self.s.test.x),
            "victim_acc": evaluate(victim, self.s.test.x, self.s.test.y),
            "victim_memorized": float(memorized.float().mean()),
        }


def _carrier_frame(
    seed: int, victim: nn.Module, wm: watermark.WatermarkSet, models: dict[str, nn.Module]
) -> pd.DataFrame:
    """One row per carrier the victim memorized: 1/0 per model, did it give the owner's label."""
    memorized = watermark.hits(victim, wm).numpy()
    frame = pd.DataFrame(
        {
            "seed": seed,
            "carrier": np.arange(len(wm)),
            **{name: watermark.hits(m, wm).numpy().astype(int) for name, m in models.items()},
        }
    )
    return frame[memorized].reset_index(drop=True)


def method_table(st: Setup, boost: bool = False, arch: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per seed: the victim (``boost``: the boosted owner), one thief per method of
    ``methods`` and the independent floor, of ``victim_arch`` and ``thief_arch`` (``arch``:
    victim, thieves and floor all of that architecture).

    Returns the scores (one row per seed and model: transfer, accuracy, fidelity) and the
    per-carrier outcomes (one row per memorized carrier, a 0/1 column per method and
    ``independent``: paired, since every model is scored on the same carriers)."""
    rows, frames = [], []
    for seed in st.cfg.seeds:
        victim, wm = st.victim(seed, arch=arch, boost=boost)
        models = {m: st.thief(victim, seed, m, arch=arch) for m in st.cfg.methods} | {
            "independent": st.floor(seed, arch=arch)
        }
        rows += [
            {"seed": seed, "method": name, "boost": boost, **st.score(victim, wm, m)} for name, m in models.items()
        ]
        frames.append(_carrier_frame(seed, victim, wm, models).assign(boost=boost))
    return pd.DataFrame(rows), pd.concat(frames, ignore_index=True)


def arch_method_table(st: Setup) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`method_table` for each architecture of ``method_archs`` (victim, copies and
    floor of that architecture, every seed), with an ``arch`` column: the tables behind the
    rows M1-<arch>, since the thesis does not say which architecture it used."""
    tables = [method_table(st, arch=a) for a in st.cfg.method_archs]
    return tuple(
        pd.concat([t[i].assign(arch=a) for t, a in zip(tables, st.cfg.method_archs)], ignore_index=True) for i in (0, 1)
    )


def alpha_table(st: Setup) -> pd.DataFrame:
    """Transfer of Jacobian-matching thieves for each weight of ``alphas`` (per seed)."""
    rows = []
    for seed in st.cfg.seeds:
        victim, wm = st.victim(seed)
        for alpha in st.cfg.alphas:
            rows.append(
                {"seed": seed, "alpha": alpha, **st.score(victim, wm, st.thief(victim, seed, "jacobian", alpha=alpha))}
            )
    return pd.DataFrame(rows)


def grid_table(st: Setup) -> pd.DataFrame:
    """Every victim x thief pair of ``grid_archs`` under ``steal_method``, every seed (a
    victim per architecture and seed): one row per memorized carrier with ``stolen`` (the
    thief's outcome) and ``floor`` (an independent model of the thief's architecture on the
    same carrier), plus the pair's memorization and fidelity."""
    frames = []
    archs = st.cfg.grid_archs
    for seed in st.cfg.seeds:
        for v_arch in archs:
            victim, wm = st.victim(seed, arch=v_arch)
            for t_arch in archs:
                thief = st.thief(victim, seed, arch=t_arch)
                score = st.score(victim, wm, thief)
                pair = _carrier_frame(seed, victim, wm, {"stolen": thief, "floor": st.floor(seed, arch=t_arch)})
                frames.append(
                    pair.assign(
                        victim_arch=v_arch,
                        thief_arch=t_arch,
                        fidelity=score["fidelity"],
                        victim_memorized=score["victim_memorized"],
                    )
                )
    return pd.concat(frames, ignore_index=True)


def grid_summary(grid: pd.DataFrame) -> pd.DataFrame:
    """Per architecture pair: mean transfer, floor, memorization and fidelity."""
    return (
        grid.groupby(["victim_arch", "thief_arch"], sort=False)[["victim_memorized", "stolen", "floor", "fidelity"]]
        .mean()
        .rename(columns={"stolen": "transfer"})
        .reset_index()
    )


def perturbation_table(st: Setup) -> pd.DataFrame:
    """Transfer under ``steal_method`` when the attacker's queries are perturbed
    (:meth:`Config.perturbation_settings`): one row per seed, setting and memorized carrier,
    with ``transferred`` and ``floor`` (the independent model on the same carrier) and the
    thief's fidelity."""
    frames = []
    for seed in st.cfg.seeds:
        victim, wm = st.victim(seed)
        indep = st.floor(seed)
        for kind, strength in st.cfg.perturbation_settings():
            thief = st.thief(victim, seed, perturbation=kind, strength=strength)
            frame = _carrier_frame(seed, victim, wm, {"transferred": thief, "floor": indep})
            frames.append(
                frame.assign(perturbation=kind, strength=strength, fidelity=agreement(victim, thief, st.s.test.x))
            )
    return pd.concat(frames, ignore_index=True)


def geometry_table(st: Setup) -> pd.DataFrame:
    """Per memorized carrier of each kind of ``geometry_kinds`` (an owner per kind and seed):
    did the ``steal_method`` thief reproduce the owner's label, the distance to the nearest
    query and the mean distance to the ``nearest_k`` nearest, and the victim's margin.
    Noise carriers lie about equally far from every query, so their distances hardly vary;
    flipped (in-distribution) and ood carriers spread, which makes M4 a real test."""
    frames = []
    for kind, seed in ((k, s) for k in st.cfg.geometry_kinds for s in st.cfg.seeds):
        victim, wm = st.victim(seed, kind=kind)
        thief = st.thief(victim, seed)
        queries = st.queries(seed)
        memorized = watermark.hits(victim, wm)
        frames.append(
            pd.DataFrame(
                {
                    "kind": kind,
                    "seed": seed,
                    "carrier": np.arange(len(wm)),
                    "transferred": watermark.hits(thief, wm).numpy(),
                    "nearest_query": watermark.nearest_distance(wm, queries, k=1).numpy(),
                    "nearest_10": watermark.nearest_distance(wm, queries, k=HIDDEN.nearest_k).numpy(),
                    "victim_margin": watermark.margin(victim, wm).numpy(),
                }
            )[memorized.numpy()]
        )
    return pd.concat(frames, ignore_index=True)


def correlation(stat: str, method: str = "spearman") -> Callable[[pd.DataFrame], float]:
    """The statistic 'absolute correlation of ``stat`` with the 0/1 outcome ``transferred``'
    (Spearman, or Pearson = point-biserial); NaN where either side is constant."""
    from scipy.stats import rankdata

    def value(f: pd.DataFrame) -> float:
        t, x = f.transferred.to_numpy(float), f[stat].to_numpy(float)
        if len(np.unique(t)) < 2 or len(np.unique(x)) < 2:
            return float("nan")
        if method == "spearman":
            t, x = rankdata(t), rankdata(x)
        return abs(float(np.corrcoef(t, x)[0, 1]))

    return value


def correlations(geo: pd.DataFrame) -> pd.DataFrame:
    """Per carrier kind (seeds pooled): the transfer rate, and the Spearman and Pearson
    (point-biserial) correlation of each geometry statistic with whether the carrier
    transferred; NaN where either side is constant."""
    rows = []
    for kind, f in geo.groupby("kind", sort=False):
        t = f.transferred.astype(float)
        for stat in STATISTICS:
            varied = t.nunique() > 1 and f[stat].nunique() > 1
            rows.append(
                {
                    "kind": kind,
                    "statistic": stat,
                    "transfer": t.mean(),
                    "spearman": t.corr(f[stat], method="spearman") if varied else float("nan"),
                    "pearson": t.corr(f[stat]) if varied else float("nan"),
                }
            )
    return pd.DataFrame(rows)


def boost_pairs(plain: pd.DataFrame, boosted: pd.DataFrame, method: str = "jacobian") -> pd.DataFrame:
    """One row per carrier (seed, carrier) with ``plain`` and ``boosted``: the ``method``
    copy's outcome on it under the plain and the boosted owner (NaN where that owner did
    not memorize the carrier: each column's mean is that owner's transfer rate, and the
    paired gap :func:`ipkit.core.stats.mean_difference` runs over the carriers both memorized)."""
    a = plain[["seed", "carrier", method]].rename(columns={method: "plain"})
    b = boosted[["seed", "carrier", method]].rename(columns={method: "boosted"})
    return a.merge(b, on=["seed", "carrier"], how="outer").sort_values(["seed", "carrier"], ignore_index=True)


def metrics_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Victim accuracy and memorization, thief accuracy, fidelity and transfer per method:
    mean over seeds with the spread of the transfer rate."""
    g = scores.groupby("method", sort=False)
    table = g[["victim_acc", "victim_memorized", "test_acc", "fidelity", "transfer"]].mean()
    table["transfer_std"] = g.transfer.std().fillna(0.0)
    return table.rename(columns={"test_acc": "thief_acc"}).reset_index()


def floor_rate(scores: pd.DataFrame) -> float:
    """The floor the figures draw: the independent model's transfer rate, mean over seeds
    (``scores``: :func:`method_table`'s per-seed scores)."""
    return float(scores[scores.method == "independent"].transfer.mean())


def boost_table(st: Setup, scores: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The boosted owners' per-seed scores and per-carrier outcomes (:func:`method_table`
    with ``boost=True``) when ``cfg.boost`` is on; else no scores (``scores``' columns, no
    rows) and None, which M5 reads as not measured."""
    return method_table(st, boost=True) if st.cfg.boost else (scores.iloc[:0], None)


def recorded_metrics(
    scores: pd.DataFrame,
    alpha: pd.DataFrame,
    by_arch: pd.DataFrame,
    grid: pd.DataFrame,
    perturbed: pd.DataFrame,
    corr: pd.DataFrame,
) -> dict[str, Any]:
    """The metrics ``run.record`` stores in results.json: the plain and boosted owners'
    per-seed scores, the alpha sweep, the scores per architecture, the grid's and the
    perturbations' summaries (:func:`grid_summary`, :func:`perturbation_summary`) and the
    geometry correlations."""
    return {
        "scores": scores.to_dict("records"),
        "alpha": alpha.to_dict("records"),
        "by_arch": by_arch.to_dict("records"),
        "grid": grid_summary(grid).to_dict("records"),
        "perturbation": perturbation_summary(perturbed).to_dict("records"),
        "correlations": corr.to_dict("records"),
    }


# --- claims ------------------------------------------------------------------------------


def _ceiling(frame: pd.DataFrame, floor: str) -> float:
    """The most a gap 'copy - ``floor``' can reach on these carriers: 1 - the floor's rate
    (a copy cannot give the owner's label on more than every memorized carrier)."""
    return 1.0 - float(frame[floor].mean()) if len(frame) else float("nan")


def gap_above(name: str, frame: pd.DataFrame, a: str, b: str, threshold: float) -> results.Evidence:
    """The part "column ``a`` minus column ``b`` on the same carriers lies above
    ``threshold``", with the ceiling ``1 - mean(b)`` (:func:`_ceiling`)."""
    return results.part(
        name,
        frame,
        mean_difference(a, b),
        threshold=threshold,
        holds_when="above",
        unit="carrier",
        ceiling=_ceiling(frame, b),
    )


def m1_parts(frame: pd.DataFrame, cfg: Config) -> list[results.Evidence]:
    """M1's parts for one architecture's per-carrier outcomes (:func:`method_table`): the
    Jacobian copy at least ``well_above`` over the floor, each output-only copy within
    ``near`` of it (paired on the same carriers; outer bootstrap unit the seed)."""
    first = (
        [gap_above("jacobian - floor", frame, "jacobian", "independent", cfg.well_above)]
        if "jacobian" in cfg.methods
        else [
            results.not_measured(
                "jacobian - floor",
                threshold=cfg.well_above,
                holds_when="above",
                unit="carrier",
                why="no jacobian copy in methods",
            )
        ]
    )
    return first + [
        results.part(
            f"{m} - floor",
            frame,
            mean_difference(m, "independent"),
            threshold=cfg.near,
            holds_when="below",
            unit="carrier",
        )
        for m in cfg.methods
        if m != "jacobian"
    ]


def claims(
    by_arch: pd.DataFrame,
    carriers: pd.DataFrame,
    grid: pd.DataFrame,
    perturbed: pd.DataFrame,
    geo: pd.DataFrame,
    boosted: pd.DataFrame | None,
    cfg: Config,
) -> list[results.Claim]:
    """The claim rows M1-<arch> (one per architecture of ``method_archs``), M2, M2b, M3, M4
    and M5 with their evidence, each with the paper's words and its quantifier.

    Every interval is a two-stage bootstrap (:func:`ipkit.core.stats.bootstrap_ci`): the seeds
    (one training of each model per seed: the outer unit), then the memorized carriers
    within each drawn seed; :func:`ipkit.evidence.results.claim` widens it to the familywise level
    of its parts. Paired gaps (a copy minus the floor on the same carriers; the boosted
    minus the plain owner's copy, on the carriers both owners memorized) resample carriers
    with both outcomes in one row; M4's correlations resample the (carrier, statistic,
    outcome) rows of each carrier kind. ``by_arch``: :func:`arch_method_table`'s
    per-carrier outcomes; ``carriers``: :func:`method_table`'s, of the plain owners of
    ``victim_arch`` (M5's baseline); ``grid``, ``perturbed``, ``geo``: :func:`grid_table`,
    :func:`perturbation_table`, :func:`geometry_table`; ``boosted``: the boosted owners'
    per-carrier outcomes (None: off).
    """

    def pairs(frame):
        return [
            gap_above(f"{v}->{t} - floor", f, "stolen", "floor", cfg.well_above)
            for (v, t), f in frame.groupby(["victim_arch", "thief_arch"], sort=False)
        ]

    cross = grid[grid.victim_arch != grid.thief_arch]
    same = grid[grid.victim_arch == grid.thief_arch]
    m3 = [
        gap_above(f"{k} {v:g} - floor" if k != "ood" else "ood pool - floor", f, "transferred", "floor", cfg.well_above)
        for (k, v), f in perturbed[perturbed.perturbation != "none"].groupby(["perturbation", "strength"], sort=False)
    ]
    m4 = [
        results.part(
            f"{kind} {stat} abs {how} r",
            f,
            correlation(stat, how),
            threshold=cfg.weak,
            holds_when="below",
            unit="carrier",
        )
        for kind, f in geo.groupby("kind", sort=False)
        for stat in STATISTICS
        for how in ("spearman", "pearson")
    ]
    m5 = [
        gap_above("boosted - plain", boost_pairs(carriers, boosted), "boosted", "plain", cfg.boost_gain)
        if boosted is not None and "jacobian" in cfg.methods
        else results.not_measured(
            "boosted - plain",
            threshold=cfg.boost_gain,
            holds_when="above",
            unit="carrier",
            why="boost off or no jacobian copy",
        )
    ]
    m1 = [
        results.claim(
            f"M1-{arch}",
            f"{arch} victim and copies: gradient-matching stealing transfers memorized examples "
            f"(>= floor + {cfg.well_above:g}); output-only stealing stays near the floor (< floor + {cfg.near:g})",
            f"memorized examples transfer under Jacobian stealing, not otherwise ({PAPER}; architecture not stated)",
            *m1_parts(f, cfg),
            quantifier="direction",
            paper_words=WORDS["M1"],
        )
        for arch, f in by_arch.groupby("arch", sort=False)
    ]
    noise_note = (
        "; noise carriers lie about equally far from every query, so their parts are a weak test"
        if "noise" in set(geo.kind)
        else ""
    )
    return m1 + [
        results.claim(
            "M2",
            f"The {cfg.steal_method} transfer holds across architectures (every victim != thief "
            f"pair >= its floor + {cfg.well_above:g})",
            f"transfer survives an architecture mismatch ({PAPER})",
            *(
                pairs(cross)
                or [
                    results.not_measured(
                        "cross-architecture pair - floor",
                        threshold=cfg.well_above,
                        holds_when="above",
                        unit="carrier",
                        why="no cross-architecture pair in grid_archs",
                    )
                ]
            ),
            quantifier="every",
            paper_words=WORDS["M2"],
        ),
        results.claim(
            "M2b",
            f"(beyond the paper) The {cfg.steal_method} transfer holds for every "
            f"same-architecture pair of the grid (>= its floor + {cfg.well_above:g})",
            "not studied in the abstract",
            *(
                pairs(same)
                or [
                    results.not_measured(
                        "same-architecture pair - floor",
                        threshold=cfg.well_above,
                        holds_when="above",
                        unit="carrier",
                        why="no same-architecture pair in the grid",
                    )
                ]
            ),
            quantifier="every",
            paper_words="",
        ),
        results.claim(
            "M3",
            f"The {cfg.steal_method} transfer holds for every perturbed and out-of-distribution "
            f"query set (>= floor + {cfg.well_above:g})",
            f"transfer survives perturbations of the query set ({PAPER})",
            *(
                m3
                or [
                    results.not_measured(
                        "perturbed query set - floor",
                        threshold=cfg.well_above,
                        holds_when="above",
                        unit="carrier",
                        why="no perturbation in query_perturbation",
                    )
                ]
            ),
            quantifier="every",
            paper_words=WORDS["M3"],
        ),
        results.claim(
            "M4",
            f"Local geometry does not explain which examples transfer (every absolute "
            f"r < {cfg.weak:g}, per carrier kind{noise_note})",
            f"local input geometry is not enough to explain the transfer ({PAPER})",
            *m4,
            quantifier="every",
            paper_words=WORDS["M4"],
        ),
        results.claim(
            "M5",
            f"Memorizing a neighbourhood of each carrier raises the Jacobian transfer (by >= {cfg.boost_gain:g})",
            f"a simple owner-side change boosts the transfer rate ({PAPER})",
            *m5,
            quantifier="direction",
            paper_words=WORDS["M5"],
        ),
    ]


def where_it_holds(rows: list[results.Claim]) -> str:
    """One sentence per architecture row (M1-<arch>) and grid pair (M2, M2b): where the
    gradient-matching transfer holds, where not, and where this run cannot tell, from the
    rows' own verdicts (per M1 row) and part verdicts (per grid pair)."""
    by_verdict: dict[str, list[str]] = {}
    for c in rows:
        if c.id.startswith("M1-"):
            by_verdict.setdefault(c.verdict, []).append(c.id[3:])
    lines = [f"M1 {v} for {', '.join(archs)}" for v, archs in by_verdict.items()]
    for c in rows:
        if c.id in ("M2", "M2b"):
            parts: dict[str, Any] = {}
            for p in c.parts:
                parts.setdefault(p["verdict"], []).append(p["name"].removesuffix(" - floor"))
            lines.append(f"{c.id} ({c.verdict}): " + "; ".join(f"{v} for {', '.join(n)}" for v, n in parts.items()))
    return ". ".join(lines) + "."


# --- figures -----------------------------------------------------------------------------


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


def plot_methods_by_arch(scores: pd.DataFrame, title: str = ""):
    """Figure 1: transfer rate by stealing method for each architecture (victim, copies and
    floor of one architecture: :func:`arch_method_table`), mean over seeds with their spread
    and the seeds as dots; the ``independent`` bars are the floors."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = scores.assign(label=scores.method.map(_label))
    fig, ax = plt.subplots(figsize=(8, 3.8))
    sns.barplot(data=frame, x="label", y="transfer", hue="arch", errorbar="sd", capsize=0.05, ax=ax)
    plots.strip(
        ax,
        data=frame,
        x="label",
        y="transfer",
        hue="arch",
        dodge=True,
        size=3,
        legend=False,
        palette={a: "k" for a in frame.arch.unique()},
    )
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="transfer rate", title=title)
    ax.legend(frameon=False, title="architecture")
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
    ax.set(ylim=(0, 1.05), xlabel="alpha (weight of Jacobian matching; 0 = KD only)", ylabel="rate", title=title)
    ax.legend(frameon=False, loc="center right")
    return fig


def plot_grid(grid: pd.DataFrame, title: str = ""):
    """Figure 3: victim x thief architecture heat map of transfer (floor in brackets)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    mean = grid_summary(grid).set_index(["victim_arch", "thief_arch"])
    rate, floor = mean.transfer.unstack(), mean.floor.unstack()
    notes = rate.map(lambda v: f"{v:.2f}").astype(str) + floor.map(lambda v: f"\n(floor {v:.2f})")
    fig, ax = plt.subplots(figsize=(1.8 * len(rate.columns) + 2, 1.3 * len(rate) + 1))
    sns.heatmap(rate, annot=notes, fmt="", vmin=0, vmax=1, cmap="viridis", ax=ax, cbar_kws={"label": "transfer rate"})
    ax.set(xlabel="thief architecture", ylabel="victim architecture", title=title)
    return fig


def perturbation_summary(perturbed: pd.DataFrame) -> pd.DataFrame:
    """Per seed and query set: transfer rate, floor and fidelity (the means of figure 4)."""
    return (
        perturbed.groupby(["seed", "perturbation", "strength"], sort=False)[["transferred", "floor", "fidelity"]]
        .mean()
        .rename(columns={"transferred": "transfer"})
        .reset_index()
    )


def plot_perturbation(perturbed: pd.DataFrame, floor: float, title: str = ""):
    """Figure 4: transfer against perturbation strength, one line per kind, with the
    out-of-distribution pool as a separate point."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = perturbation_summary(perturbed)
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(9, 3.6), width_ratios=[3, 1], sharey=True)
    base = frame[frame.perturbation == "none"]
    lines = frame[frame.perturbation.isin(["noise", "shift"])]
    lines = pd.concat([lines] + [base.assign(perturbation=k) for k in lines.perturbation.unique()])
    sns.lineplot(data=lines, x="strength", y="transfer", hue="perturbation", marker="o", errorbar="sd", ax=ax)
    ax.axhline(floor, ls="--", c="grey", label=f"floor {floor:.2f}")
    ax.set(ylim=(0, 1.05), xlabel="strength (noise std; shift: x quarter side)", ylabel="transfer rate", title=title)
    ax.legend(frameon=False)
    pool = pd.concat([base.assign(pool="attacker\npool"), frame[frame.perturbation == "ood"].assign(pool="OOD\npool")])
    sns.barplot(data=pool, x="pool", y="transfer", errorbar="sd", capsize=0.1, ax=ax2)
    ax2.axhline(floor, ls="--", c="grey")
    ax2.set(xlabel="")
    return fig


def plot_geometry(geo: pd.DataFrame, corr: pd.DataFrame):
    """Figure 5: per memorized carrier, each geometry statistic (columns) for carriers that
    did and did not transfer, a row per carrier kind, with the correlation in each title."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    names = {
        "nearest_query": "distance to nearest query",
        "nearest_10": f"mean distance to {HIDDEN.nearest_k} nearest",
        "victim_margin": "victim's logit margin",
    }
    kinds = list(corr.kind.unique())
    fig, axes = plt.subplots(
        len(kinds), len(STATISTICS), figsize=(4.6 * len(STATISTICS), 3.8 * len(kinds)), squeeze=False
    )
    frame = geo.assign(outcome=geo.transferred.map({True: "transferred", False: "not\ntransferred"}))
    order = ["transferred", "not\ntransferred"]
    for ax, (_, row) in zip(axes.flat, corr.iterrows()):
        f = frame[frame.kind == row.kind]
        plots.strip(ax, data=f, x="outcome", y=row.statistic, order=order, alpha=0.5, size=3)
        sns.boxplot(
            data=f, x="outcome", y=row.statistic, order=order, showfliers=False, boxprops={"facecolor": "none"}, ax=ax
        )
        ax.set(
            xlabel="",
            ylabel=names[row.statistic],
            title=f"{row.kind}: Spearman {row.spearman:.2f}, Pearson {row.pearson:.2f}",
        )
    fig.tight_layout()
    return fig


def plot_boost(frame: pd.DataFrame, title: str = ""):
    """Figure 6: transfer rate of plain and boosted owners under the same attacks."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = frame[frame.method != "independent"]
    x = frame.assign(label=frame.method.map(_label), owner=frame.boost.map({False: "plain", True: "boosted"}))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    sns.barplot(data=x, x="label", y="transfer", hue="owner", errorbar="sd", capsize=0.1, ax=ax)
    ax.set(ylim=(0, 1.05), xlabel="", ylabel="transfer rate", title=title)
    ax.legend(frameon=False, loc="upper left")
    return fig


def plot_explore(st: Setup, seed: int, alpha: float, wm_kind: str, query_budget: int):
    """The Explore view: the ``seed`` owner with ``wm_kind`` carriers stolen by KD and by
    Jacobian matching at ``alpha`` with ``query_budget`` queries, beside the floor."""
    victim, wm = st.victim(seed, kind=wm_kind)
    copies = {
        "kd": st.thief(victim, seed, "kd", budget=query_budget),
        "jacobian": st.thief(victim, seed, "jacobian", alpha=alpha, budget=query_budget),
        "independent": st.floor(seed),
    }
    frame = pd.DataFrame([{"method": m, **st.score(victim, wm, c)} for m, c in copies.items()])
    return plot_methods(frame, title=f"{wm_kind} carriers, alpha {alpha:g}, {query_budget} queries")


def explore(st: Setup) -> None:
    """Widgets: the first seed's owner, stolen by KD and by Jacobian matching, redrawn with
    another ``alpha``, carrier kind or query budget (:func:`plot_explore`)."""
    cfg = st.cfg

    def draw(alpha: float = cfg.alpha, wm_kind: str = cfg.wm_kind, query_budget: int = cfg.query_budget) -> None:
        plot_explore(st, cfg.seeds[0], alpha, wm_kind, query_budget)

    widgets.explore(
        draw,
        alpha=widgets.slider(cfg.alpha, 0.0, 10.0, 0.1, "alpha"),
        wm_kind=widgets.dropdown(["noise", "flipped", "ood", "abstract"], cfg.wm_kind, "carriers"),
        query_budget=widgets.slider(cfg.query_budget, 100, len(st.s.attacker), 100, "queries"),
    )
