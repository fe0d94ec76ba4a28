"""A reproducible benchmark of model pairs for model-reuse detection (ModelDiff's benchmark).

Li et al. (ISSTA 2021) built 144 pairs from ImageNet-pretrained MobileNetV2 / ResNet-18
models fine-tuned to Flowers102 and Stanford Dogs. Without pretrained weights, this
module builds the same structure at small scale (reconstructed): a dataset's classes are
split into two tasks (A: the first half of the labels, B: the second half); several
independently trained *source* models per architecture learn task A on the owner's
images; every source gets *derived* models by each reuse type; *unrelated* models of both
tasks are trained independently on the attacker's images. Every trained model goes through
the cache; quantized models are made on the fly from their cached float parent.

Reuse types: ``transfer-10/50/100`` (new head for task B, the last 10/50/100% of layers
fine-tuned on task B), ``prune-20/50/80`` (magnitude pruning + fine-tuning on task A),
``quant-int8`` (dynamic int8), ``quant-fp16`` (float16 weights), ``distill`` (a fresh
same-architecture student on the source's soft outputs over its training images),
``steal-same`` / ``steal-other`` (a fresh student of the same / another architecture
trained on the source's probabilities for the attacker's own images).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from . import cache, models, steal, transforms
from .data import Splits, TensorData
from .similarity import METHODS, decision_distances, float_parent, get_method
from .train import default_device, evaluate, fit, model_device

REUSE_TYPES = ("transfer-10", "transfer-50", "transfer-100", "prune-20", "prune-50", "prune-80",
               "quant-int8", "quant-fp16", "distill", "steal-same", "steal-other")
PAPER_PAIRS = 144
PAPER_CORRECTNESS = 0.917


@dataclass
class ZooModel:
    """One benchmark model: ``lineage`` is the source it derives from (its own name for a
    source or an unrelated model); ``reuse`` its reuse type, ``source`` or ``unrelated``."""

    name: str
    arch: str
    task: str
    lineage: str
    reuse: str
    model: nn.Module
    test_acc: float


@dataclass
class Tasks:
    """Task A (first half of the labels) and task B (second half, relabelled from 0) of a split."""

    a_owner: TensorData
    a_attacker: TensorData
    a_test: TensorData
    b_attacker: TensorData
    b_test: TensorData
    num_classes: int


def _labels(part: TensorData, lo: int, hi: int) -> TensorData:
    keep = (part.y >= lo) & (part.y < hi)
    return TensorData(part.x[keep], part.y[keep] - lo)


def make_tasks(s: Splits) -> Tasks:
    """Split ``s``'s classes into task A (the first half) and task B (the rest)."""
    half = s.num_classes // 2
    if half < 2:
        raise ValueError(f"dataset '{s.name}' has too few classes for two tasks: choose another")
    return Tasks(_labels(s.owner, 0, half), _labels(s.attacker, 0, half), _labels(s.test, 0, half),
                 _labels(s.attacker, half, 2 * half), _labels(s.test, half, 2 * half), half)


def _settings(s: Splits, epochs: int) -> dict[str, Any]:
    return dict(epochs=epochs, batch_size=64, lr=0.05, optimizer="sgd", augment=s.in_shape[0] == 3)


def _build(s: Splits, arch: str, classes: int, seed: int) -> nn.Module:
    return models.build(arch, classes, s.in_shape, seed=seed).to(default_device())


def _cached(recipe: str, params: dict, s: Splits, arch: str, classes: int, seed: int, train) -> nn.Module:
    def run(model: nn.Module) -> dict:
        train(model)
        return {}

    return cache.cached_model(f"zoo-{recipe}", dict(params, split=s.fingerprint, arch=arch),
                              lambda: _build(s, arch, classes, seed), run)


def _copy_into(model: nn.Module, trained: nn.Module) -> None:
    model.load_state_dict(trained.state_dict())


def other_arch(arch: str, archs: list[str]) -> str:
    """The architecture a thief uses for cross-architecture stealing: the next one in
    ``archs``, else ``mlp`` (``cnn`` for an mlp source)."""
    rest = [a for a in archs if a != arch]
    if rest:
        return rest[(archs.index(arch)) % len(rest)]
    return "cnn" if arch == "mlp" else "mlp"


def derive(src: nn.Module, reuse: str, s: Splits, t: Tasks, arch: str, archs: list[str], *,
           epochs: int, finetune_epochs: int, budget: int, seed: int) -> tuple[nn.Module, str, str]:
    """The model ``reuse`` makes from source ``src``: (model, its arch, its task)."""
    if reuse not in REUSE_TYPES:
        raise ValueError(f"unknown reuse type '{reuse}': choose from {', '.join(REUSE_TYPES)}")
    base = dict(source=src.ipkit_key, reuse=reuse, seed=seed)
    ft = dict(_settings(s, finetune_epochs), lr=0.01)
    k = t.num_classes
    if reuse.startswith("quant-"):
        q = transforms.quantize_int8(src) if reuse == "quant-int8" else transforms.quantize_float16(src)
        object.__setattr__(q, "float_parent", src)  # a reference, not a submodule
        return q, arch, "A"
    if reuse.startswith("transfer-"):
        frac = int(reuse.split("-")[1]) / 100

        def train(m: nn.Module) -> None:
            _copy_into(m, transforms.transfer(src, t.b_attacker.x, t.b_attacker.y, k, frac,
                                              seed=seed, **ft))
        return _cached("transfer", dict(base, fit=ft), s, arch, k, seed, train), arch, "B"
    if reuse.startswith("prune-"):
        ratio = int(reuse.split("-")[1]) / 100

        def train(m: nn.Module) -> None:
            _copy_into(m, transforms.prune_finetune(src, ratio, t.a_owner.x, t.a_owner.y, seed=seed, **ft))
        return _cached("prune", dict(base, fit=ft), s, arch, k, seed, train), arch, "A"
    full = _settings(s, epochs)
    if reuse == "distill":
        def train(m: nn.Module) -> None:
            transforms.knowledge_distill(src, t.a_owner.x, m, temperature=4.0, seed=seed, **dict(full, lr=0.01))
        return _cached("distill", dict(base, fit=dict(full, lr=0.01)), s, arch, k, 3000 + seed, train), arch, "A"
    thief_arch = arch if reuse == "steal-same" else other_arch(arch, archs)

    def train(m: nn.Module) -> None:
        queries = steal.query_set(torch.cat([t.a_attacker.x, t.b_attacker.x]), budget, seed=seed)
        steal.distill(steal.Victim(src, output="probs", budget=budget), queries, m, method="probs",
                      seed=seed, desc=f"steal -> {thief_arch}", **full)
    return (_cached("steal", dict(base, budget=budget, fit=full), s, thief_arch, k, 4000 + seed, train),
            thief_arch, "A")


def _trained(recipe: str, s: Splits, arch: str, data: TensorData, classes: int, epochs: int,
             seed: int) -> nn.Module:
    settings = _settings(s, epochs)

    def train(m: nn.Module) -> None:
        fit(m, data.x, data.y, seed=seed, desc=f"{recipe} {arch}", **settings)
    return _cached(recipe, dict(fit=settings, seed=seed, n=len(data)), s, arch, classes, seed, train)


def build_zoo(s: Splits, archs: list[str], sources_per_arch: int, reuse_types: Iterable[str], *,
              epochs: int = 8, finetune_epochs: int = 3, budget: int = 1000, seed: int = 0,
              progress=None) -> list[ZooModel]:
    """Sources, derived and unrelated models of the benchmark (all from the cache when present).

    Per architecture: ``sources_per_arch`` sources on task A (owner images), each with one
    derived model per reuse type, and as many unrelated models per task trained
    independently on the attacker's images.
    """
    t = make_tasks(s)
    reuse_types = list(reuse_types)
    jobs = [(arch, i) for arch in archs for i in range(sources_per_arch)]
    bar = progress(jobs, desc="zoo") if progress else jobs
    zoo: list[ZooModel] = []
    for arch, i in bar:
        sd = seed + 10 * i
        src = _trained("source", s, arch, t.a_owner, t.num_classes, epochs, sd)
        name = f"{arch}-src{i}"
        zoo.append(ZooModel(name, arch, "A", name, "source", src, evaluate(src, t.a_test.x, t.a_test.y)))
        for reuse in reuse_types:
            m, a, task = derive(src, reuse, s, t, arch, archs, epochs=epochs,
                                finetune_epochs=finetune_epochs, budget=budget, seed=sd)
            test = t.a_test if task == "A" else t.b_test
            zoo.append(ZooModel(f"{name}/{reuse}", a, task, name, reuse, m, _accuracy(m, test)))
        for task, data in (("A", t.a_attacker), ("B", t.b_attacker)):
            u = _trained("unrelated", s, arch, data, t.num_classes, epochs, 500 + sd)
            test = t.a_test if task == "A" else t.b_test
            uname = f"{arch}-unrel{task}{i}"
            zoo.append(ZooModel(uname, arch, task, uname, "unrelated", u, _accuracy(u, test)))
    return zoo


def _accuracy(model: nn.Module, test: TensorData) -> float:
    dev = model_device(model)
    return evaluate(model, test.x.to(dev), test.y.to(dev))


def reuse_pairs(zoo: list[ZooModel]) -> list[tuple[ZooModel, ZooModel]]:
    """(source, derived) pairs: the benchmark's positives."""
    by_name = {z.name: z for z in zoo}
    return [(by_name[z.lineage], z) for z in zoo if z.lineage != z.name]


def zoo_table(zoo: list[ZooModel]) -> pd.DataFrame:
    """One row per model: name, arch, task, reuse type, lineage and test accuracy."""
    return pd.DataFrame([dict(model=z.name, arch=z.arch, task=z.task, reuse=z.reuse,
                              source=z.lineage, test_acc=z.test_acc) for z in zoo])


def score_pairs(zoo: list[ZooModel], methods: list[str], x_seed: Tensor, *, seed: int = 0,
                **probe_opts: Any) -> tuple[pd.DataFrame, dict[tuple[str, str], Tensor]]:
    """Score every source against every other model with each method.

    Each method's probe is built once per source (on its float parent) from ``x_seed``.
    Rows: method, reference, suspect, relation (the suspect's reuse type when it derives
    from the reference, else ``unrelated``), task, score (NaN: not applicable), probe and
    score seconds. Also returns ModelDiff's raw decision distances per (reference, suspect)
    so that subsets of the input pairs can be scored without new forward passes.
    """
    rows, raw = [], {}
    sources = [z for z in zoo if z.reuse == "source"]
    for name in methods:
        m = get_method(name)
        for src in sources:
            probe = m.probe(src.model, x_seed, seed=seed, **probe_opts)
            if name == "modeldiff":
                raw[(src.name, src.name)] = decision_distances(src.model, probe.x, probe.partner)
            for sus in zoo:
                if sus is src:
                    continue
                start = time.perf_counter()
                score = m.score(src.model, sus.model, probe)
                sec = time.perf_counter() - start
                if name == "modeldiff":
                    raw[(src.name, sus.name)] = decision_distances(sus.model, probe.x, probe.partner)
                rel = sus.reuse if sus.lineage == src.name else "unrelated"
                rows.append(dict(method=name, seed=seed, reference=src.name, suspect=sus.name,
                                 relation=rel, task=sus.task, score=score,
                                 probe_s=probe.seconds, score_s=sec))
    return pd.DataFrame(rows), raw


def correctness(scores: pd.DataFrame) -> pd.DataFrame:
    """Per reuse pair and method: ``correct`` when the source scores its derived model higher
    than every unrelated model of the derived model's task (Li et al., 2021); ``applicable``
    is False when the pair's own score is NaN (e.g. weight cosine across architectures)."""
    out = []
    for (method, seed, ref), g in scores.groupby(["method", "seed", "reference"], sort=False):
        unrel = g[g.relation == "unrelated"]
        for _, row in g[g.relation != "unrelated"].iterrows():
            others = unrel[unrel.task == row.task].score.dropna()
            best = others.max() if len(others) else -math.inf
            ok = not math.isnan(row.score)
            out.append(dict(method=method, seed=seed, reference=ref, suspect=row.suspect,
                            reuse=row.relation, score=row.score, max_unrelated=best,
                            applicable=ok, correct=bool(ok and row.score > best)))
    return pd.DataFrame(out)


def correctness_by_pairs(scores: pd.DataFrame, raw: dict[tuple[str, str], Tensor],
                         counts: list[int]) -> pd.DataFrame:
    """ModelDiff correctness when only the first ``n`` input pairs of each probe are used."""
    md = scores[scores.method == "modeldiff"]
    rows = []
    for n in counts:
        sub = md.copy()
        sub["score"] = [float(torch.nn.functional.cosine_similarity(
            raw[(r, r)][:n], raw[(r, s)][:n], dim=0, eps=1e-12)) for r, s in zip(sub.reference, sub.suspect)]
        c = correctness(sub)
        rows.append(dict(n_pairs=n, correctness=float(c.correct.mean())))
    return pd.DataFrame(rows)


def roc(scores: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """Per method: (false-positive rates, true-positive rates, AUC) of a threshold on the
    score separating reuse pairs from unrelated pairs (NaN scores left out)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    out = {}
    for method, g in scores.dropna(subset=["score"]).groupby("method", sort=False):
        y = (g.relation != "unrelated").to_numpy()
        if y.all() or not y.any():
            continue
        fpr, tpr, _ = roc_curve(y, g.score.to_numpy())
        out[method] = (fpr, tpr, float(roc_auc_score(y, g.score.to_numpy())))
    return out


def method_labels() -> dict[str, str]:
    """Display names of the similarity methods."""
    return {k: m.label for k, m in METHODS.items()}


def describe(zoo: list[ZooModel]) -> dict[str, int]:
    """Counts: models, sources, reuse pairs, unrelated models and compared pairs per method."""
    sources = sum(z.reuse == "source" for z in zoo)
    return dict(models=len(zoo), sources=sources, reuse_pairs=len(reuse_pairs(zoo)),
                unrelated=sum(z.reuse == "unrelated" for z in zoo),
                compared_pairs=sources * (len(zoo) - 1))


def pair_ddvs(a: ZooModel, b: ZooModel, x_seed: Tensor, seed: int = 0, **probe_opts: Any):
    """ModelDiff DDVs of ``a`` and ``b`` on pairs generated on ``a`` (its float parent)."""
    from .similarity import ddv, modeldiff_probe

    probe = modeldiff_probe(float_parent(a.model), x_seed, seed=seed, **probe_opts)
    return ddv(a.model, probe.x, probe.partner), ddv(b.model, probe.x, probe.partner)


def correctness_table(correct: pd.DataFrame) -> pd.DataFrame:
    """Share of correct reuse pairs per reuse type (rows) and method (columns), over the pairs
    where the method applies (NaN: applies to none); row ``all`` counts every pair, a
    not-applicable one as missed. Column ``paper`` holds ModelDiff's reported 91.7%."""
    app = correct[correct.applicable]
    table = app.groupby(["reuse", "method"]).correct.mean().unstack("method")
    order = [r for r in REUSE_TYPES if r in table.index]
    table = table.reindex(order).reindex(columns=list(dict.fromkeys(correct.method)))
    table.loc["all"] = correct.groupby("method").correct.mean()
    table["paper"] = np.nan
    table.loc["all", "paper"] = PAPER_CORRECTNESS
    return table


def type_margins(scores: pd.DataFrame, method: str = "modeldiff") -> pd.DataFrame:
    """Per reuse type: mean score of the derived models and of the unrelated models of the
    same task, both against the same sources."""
    g = scores[scores.method == method]
    unrel = g[g.relation == "unrelated"]
    rows = []
    for reuse in [r for r in REUSE_TYPES if r in set(g.relation)]:
        d = g[g.relation == reuse]
        u = unrel[unrel.task.isin(set(d.task)) & unrel.reference.isin(set(d.reference))]
        rows.append(dict(reuse=reuse, derived=float(d.score.mean()), unrelated=float(u.score.mean())))
    return pd.DataFrame(rows)


def plot_correctness(table: pd.DataFrame, labels: dict[str, str] | None = None):
    """Heatmap of :func:`correctness_table` (n/a where a method does not apply)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    t = table.rename(columns=labels or {})
    fig, ax = plt.subplots(figsize=(1.6 * t.shape[1] + 2, 0.45 * t.shape[0] + 1.2))
    sns.heatmap(t.astype(float), annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", ax=ax,
                cbar_kws={"label": "correctness"})
    for (i, j), v in np.ndenumerate(t.to_numpy(dtype=float)):
        if np.isnan(v) and t.columns[j] != "paper":
            ax.text(j + 0.5, i + 0.5, "n/a", ha="center", va="center", color="gray")
    ax.grid(False)
    ax.set(xlabel="", ylabel="reuse type", title="Correctness: source above every unrelated model")
    ax.tick_params(axis="x", rotation=30)
    return fig


def plot_distributions(scores: pd.DataFrame, labels: dict[str, str] | None = None):
    """Score distributions of reuse pairs vs unrelated pairs, one panel per method."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    d = scores.dropna(subset=["score"]).assign(
        pair=lambda f: np.where(f.relation == "unrelated", "unrelated", "reused"))
    methods = list(dict.fromkeys(d.method))
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.4), squeeze=False)
    for ax, m in zip(axes[0], methods):
        sns.histplot(data=d[d.method == m], x="score", hue="pair", stat="density", common_norm=False,
                     bins=30, element="step", ax=ax, hue_order=["reused", "unrelated"])
        ax.set(title=(labels or {}).get(m, m), xlabel="similarity")
    fig.tight_layout()
    return fig


def plot_roc(curves: dict[str, tuple[np.ndarray, np.ndarray, float]], labels: dict[str, str] | None = None):
    """ROC curves of a threshold detector per method, AUC in the legend."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.2))
    for m, (fpr, tpr, auc) in curves.items():
        ax.plot(fpr, tpr, label=f"{(labels or {}).get(m, m)} (AUC {auc:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="gray")
    ax.set(xlabel="false-positive rate (unrelated flagged)", ylabel="true-positive rate (reuse found)",
           title="Reuse detection by a score threshold")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_pairs_curve(curve: pd.DataFrame):
    """ModelDiff correctness against the number of input pairs (mean and spread over seeds)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5, 3.4))
    sns.lineplot(data=curve, x="n_pairs", y="correctness", marker="o", errorbar="sd", ax=ax, label="ours")
    ax.axhline(PAPER_CORRECTNESS, ls="--", color="gray", label="paper (100 pairs)")
    ax.set(xscale="log", ylim=(0, 1.02), xlabel="input pairs", title="ModelDiff correctness vs input pairs")
    ax.legend()
    return fig


def cost_table(scores: pd.DataFrame) -> pd.DataFrame:
    """Seconds per comparison per method: building the probe on the reference plus scoring
    one suspect (a probe is built once per reference and reused in the benchmark)."""
    per_probe = scores.groupby(["method", "seed", "reference"]).probe_s.first().groupby("method").mean()
    per_score = scores.groupby("method").score_s.mean()
    out = pd.DataFrame({"probe_s": per_probe, "score_s": per_score})
    out["seconds_per_comparison"] = out.probe_s + out.score_s
    return out.reindex(list(dict.fromkeys(scores.method))).reset_index()


def plot_cost(cost: pd.DataFrame, labels: dict[str, str] | None = None):
    """Bar chart of seconds per comparison per method (log scale)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.2))
    names = [(labels or {}).get(m, m) for m in cost.method]
    ax.barh(names, cost.seconds_per_comparison)
    ax.set(xscale="log", xlabel="seconds per comparison (probe + score)", title="Cost")
    return fig


def plot_ddvs(a: ZooModel, b: ZooModel, da: Tensor, db: Tensor, scores: dict[str, float]):
    """Two models' DDVs on the same input pairs, side by side, with every method's score."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3), sharey=True)
    for ax, z, d in zip(axes, (a, b), (da, db)):
        ax.bar(range(len(d)), d.cpu().numpy(), width=1.0)
        ax.set(title=f"{z.name} ({z.arch}, task {z.task})", xlabel="input pair")
    axes[0].set_ylabel("DDV entry")
    text = ", ".join(f"{k} = {'n/a' if math.isnan(v) else f'{v:.3f}'}" for k, v in scores.items())
    fig.suptitle(text, fontsize=9)
    fig.tight_layout()
    return fig
