"""Similarity-unpairing: fine-tune an on-device sibling away from its full model.

Hong, Carlini & Kurakin (SaTML 2023) defend published siblings by fine-tuning them with an
objective that lowers their similarity to the full model; only the abstract is public, so
the loss here is reconstructed:

    CE(sibling(x), y) + lambda * mean_x cos(grad_x L_sibling(x, y), grad_x L_full(x, y))

The cross-entropy keeps the sibling's accuracy; the second term (gradient alignment, as in
TRS, Yang et al., NeurIPS 2021) pushes its input gradients away from the full model's, so
its adversarial examples and its gradients stop pointing where the full model's do. The
sibling keeps its compression while it is fine-tuned: quantized layers train through their
straight-through estimator, pruned weights stay zero (:func:`ipkit.transforms.finetune`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import attacks, cache, compression, plots, recipes, similarity, transforms
from .compression import bits_of, skeleton
from .data import Splits
from .similarity import input_gradients
from .study import ParamError
from .train import evaluate


def check_params(values: dict) -> None:
    """Refuse an ``unpair_sibling`` that the run's ``quant_bits`` and ``prune_ratios`` do not
    build (the study's cross-parameter rule; see :data:`ipkit.study.CHECKS`)."""
    names = compression.sibling_names(values["quant_bits"], values["prune_ratios"])
    if values["unpair_sibling"] not in names:
        raise ParamError(f"unpair_sibling '{values['unpair_sibling']}' is not built: choose one of "
                         f"{', '.join(names)} or add its bits / ratio to quant_bits / prune_ratios")


def unpairing_loss(sibling: nn.Module, full: nn.Module, x: Tensor, y: Tensor, lam: float) -> Tensor:
    """CE(sibling(x), y) + lam * mean cos(grad_x L_sibling, grad_x L_full) (reconstructed)."""
    ce = F.cross_entropy(sibling(x), y)
    if lam == 0:
        return ce
    g_sib = input_gradients(sibling, x, y, create_graph=True).flatten(1)
    g_full = input_gradients(full, x, y).flatten(1)
    return ce + lam * F.cosine_similarity(g_sib, g_full, dim=1, eps=1e-12).mean()


def unpair(sibling: nn.Module, full: nn.Module, s: Splits, lam: float, *, epochs: int,
           lr: float = 0.01, seed: int = 0) -> nn.Module:
    """The cached sibling fine-tuned with :func:`unpairing_loss` for ``epochs`` on the
    owner's training data (``lam = 0``: plain fine-tuning, the control)."""
    full.eval()
    params = dict(sibling=sibling.ipkit_key, full=full.ipkit_key, lam=float(lam), epochs=epochs,
                  lr=lr, seed=seed, split=s.fingerprint)

    def loss(model: nn.Module, xb: Tensor, yb: Tensor) -> Tensor:
        return unpairing_loss(model, full, xb, yb, lam)

    def train(model: nn.Module) -> dict:
        tuned = transforms.finetune(sibling, s.owner.x, s.owner.y, layers="all", epochs=epochs,
                                    lr=lr, seed=seed, loss=loss, augment=s.in_shape[0] == 3)
        model.load_state_dict(tuned.state_dict())
        return {}

    return cache.cached_model("unpaired", params, lambda: skeleton(full, bits_of(sibling)), train)


# --- The study's experiment grid, tables and figures (notebooks/05_ondevice_unpairing) -----

@dataclass
class Family:
    """One architecture and seed: the full model, the independent surrogate, the siblings
    by name, and the attack inputs (test images the full model classifies correctly)."""

    arch: str
    seed: int
    full: nn.Module
    independent: nn.Module
    siblings: dict[str, nn.Module]
    x: Tensor
    y: Tensor


def build_family(s: Splits, arch: str, *, epochs: int, bits: list[int], ratios: list[float],
                 finetune_epochs: int, n_attack: int, seed: int = 0) -> Family:
    """Train (or load) the full model, the independent surrogate and every sibling."""
    full = recipes.owner_model(s, arch, epochs=epochs, seed=seed)
    ind = recipes.independent_model(s, arch, epochs=epochs, seed=seed)
    sibs = compression.siblings(full, s, bits, ratios, epochs=finetune_epochs, seed=seed)
    x, y = attacks.attack_set(full, s.test.x, s.test.y, n_attack)
    return Family(arch, seed, full, ind, sibs, x, y)


def surrogate_row(fam: Family, name: str, model: nn.Module, s: Splits, eps: float, steps: int) -> dict:
    """Accuracy, similarity to the full model and PGD transfer success of one surrogate."""
    return {"arch": fam.arch, "seed": fam.seed, "surrogate": name,
            "kind": "independent" if name == "independent" else ("quantized" if name[0] == "q" else "pruned"),
            "test_acc": evaluate(model, s.test.x, s.test.y),
            "grad_cos": similarity.gradient_cosine(model, fam.full, fam.x, fam.y),
            "agreement": similarity.output_agreement(model, fam.full, s.test.x),
            "transfer": attacks.transfer_success(model, fam.full, fam.x, fam.y, eps, steps, seed=fam.seed)}


def transfer_table(fams: list[Family], s: Splits, eps: float, steps: int) -> pd.DataFrame:
    """One row per (architecture, seed, surrogate): accuracy, similarity, transfer success,
    and ``ratio``: transfer success over the independent surrogate's (floored at 1/n)."""
    rows = []
    for fam in fams:
        rows.append(surrogate_row(fam, "independent", fam.independent, s, eps, steps))
        rows += [surrogate_row(fam, k, m, s, eps, steps) for k, m in fam.siblings.items()]
    df = pd.DataFrame(rows)
    n = {(f.arch, f.seed): len(f.y) for f in fams}
    base = df[df.surrogate == "independent"].set_index(["arch", "seed"]).transfer
    df["ratio"] = [t / max(base[(a, sd)], 1 / n[(a, sd)]) for a, sd, t in zip(df.arch, df.seed, df.transfer)]
    return df


def run_query_attack(fam: Family, prior_name: str, prior: nn.Module | None, eps: float, *,
                     cap: int, n: int, samples: int) -> pd.DataFrame:
    """The prior-guided query attack on the full model for the first ``n`` attack inputs:
    one row per input with its queries and success (failures censored at ``cap``)."""
    counter = attacks.QueryCounter(fam.full, min(n, len(fam.y)), cap)
    res = attacks.query_attack(counter, fam.x[:n], fam.y[:n], eps, prior=prior, samples=samples,
                               seed=fam.seed)
    return pd.DataFrame({"arch": fam.arch, "seed": fam.seed, "prior": prior_name,
                         "queries": res.queries, "success": res.success, "cap": cap})


def query_summary(q: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, seed, prior): success rate, median queries (failures counted at
    the cap) and whether that median is censored (a lower bound)."""
    q = q.assign(counted=np.where(q.success, q.queries, q.cap))
    return (q.groupby(["arch", "seed", "prior"], sort=False)
            .agg(success=("success", "mean"), median_queries=("counted", "median"))
            .assign(censored=lambda d: d.success <= 0.5).reset_index())


def query_ratios(summary: pd.DataFrame, fams: list[Family]) -> pd.DataFrame:
    """Per (architecture, seed, sibling) and reference prior (``independent``, ``none``): the
    reference's median queries over the sibling's (``ratio``); ``lower_bound`` when the
    reference is censored at the cap and the sibling is not, ``undefined`` when the sibling
    itself is censored."""
    rows = []
    for fam in fams:
        base = summary[(summary.arch == fam.arch) & (summary.seed == fam.seed)].set_index("prior")
        for name in fam.siblings:
            for ref in ("independent", "none"):
                rows.append({"arch": fam.arch, "seed": fam.seed, "sibling": name, "vs": ref,
                             "ratio": base.median_queries[ref] / max(base.median_queries[name], 1),
                             "lower_bound": bool(base.censored[ref] and not base.censored[name]),
                             "undefined": bool(base.censored[name])})
    return pd.DataFrame(rows)


def compare_unpairing(transfer: pd.DataFrame, queries: pd.DataFrame, unpaired: pd.DataFrame,
                      queries_after: pd.DataFrame, sibling: str, lam: float) -> pd.DataFrame:
    """Per (architecture, seed): the sibling's transfer success, median queries, accuracy and
    gradient cosine before and after unpairing at ``lam`` (``unpaired`` also holds the
    ``lam = 0`` fine-tuning control), with ``transfer_cut`` (relative) and ``query_ratio``."""
    key = ["arch", "seed"]
    b = transfer[transfer.surrogate == sibling].set_index(key)
    qb = queries[queries.prior == sibling].set_index(key)
    u = unpaired[unpaired.lam == lam].set_index(key)
    qa = queries_after[queries_after.prior == f"unpaired lambda={lam:g}"].set_index(key)
    ctrl = unpaired[unpaired.lam == 0].set_index(key)
    out = pd.DataFrame({
        "transfer_before": b.transfer, "transfer_after": u.transfer, "transfer_finetune_only": ctrl.transfer,
        "median_queries_before": qb.median_queries, "median_queries_after": qa.median_queries,
        "after_censored": qa.censored, "before_censored": qb.censored,
        "test_acc_before": b.test_acc, "test_acc_after": u.test_acc,
        "grad_cos_before": b.grad_cos, "grad_cos_after": u.grad_cos}).reset_index()
    out["transfer_cut"] = 1 - out.transfer_after / out.transfer_before.clip(lower=1e-9)
    out["query_ratio"] = out.median_queries_after / out.median_queries_before.clip(lower=1)
    return out


def plot_transfer(df: pd.DataFrame):
    """Figure 1: transfer success on the full model per surrogate, with the ratio to the
    independent surrogate written above each sibling's bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    archs = list(dict.fromkeys(df.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.6), squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs):
        d = df[df.arch == arch]
        order = list(dict.fromkeys(d.surrogate))
        sns.barplot(data=d, x="surrogate", y="transfer", hue="kind", order=order, dodge=False,
                    errorbar=None, ax=ax, legend=ax is axes[0][-1])
        means = d.groupby("surrogate").ratio.mean()
        for i, name in enumerate(order):
            if name != "independent":
                ax.text(i, d[d.surrogate == name].transfer.mean() + 0.02, f"{means[name]:.1f}x",
                        ha="center", fontsize=7)
        ax.set(ylim=(0, 1.1), xlabel="", ylabel="transfer success on full model", title=arch)
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_queries(q: pd.DataFrame):
    """Figure 2: queries to success per prior (failures at the cap, hollow), median marked."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    archs = list(dict.fromkeys(q.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.6), squeeze=False, sharey=True)
    q = q.assign(counted=np.where(q.success, q.queries, q.cap))
    for ax, arch in zip(axes[0], archs):
        d = q[q.arch == arch]
        order = list(dict.fromkeys(d.prior))
        plots.strip(ax, data=d[d.success], x="prior", y="counted", order=order, size=3, alpha=0.6)
        plots.strip(ax, data=d[~d.success], x="prior", y="counted", order=order, size=4, marker="$\\circ$",
                    color="grey")
        med = d.groupby("prior").counted.median()
        ax.scatter(range(len(order)), [med[o] for o in order], marker="_", s=400, color="black", zorder=5)
        ax.set(yscale="log", xlabel="prior", ylabel="queries to success (cap = failed)", title=arch)
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    fig.tight_layout()
    return fig


def plot_similarity(df: pd.DataFrame, rho: float, p: float):
    """Figure 3: input-gradient cosine vs transfer success, one point per (arch, sibling)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.6, 4))
    sns.scatterplot(data=df, x="grad_cos", y="transfer", hue="arch", style="kind", s=60, ax=ax)
    for r in df.itertuples():
        ax.annotate(r.surrogate, (r.grad_cos, r.transfer), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set(xlabel="input-gradient cosine with the full model", ylabel="transfer success on full model",
           title=f"Spearman rho = {rho:.2f} (p = {p:.2g}, n = {len(df)})")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def plot_unpairing(u: pd.DataFrame):
    """Figure 4: transfer success, median queries and accuracy before vs after unpairing."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    x = np.arange(len(u))
    for ax, (col, label) in zip(axes, [("transfer", "transfer success"), ("median_queries", "median queries"),
                                       ("test_acc", "sibling test accuracy")]):
        ax.bar(x - 0.2, u[f"{col}_before"], 0.4, label="before")
        ax.bar(x + 0.2, u[f"{col}_after"], 0.4, label="after unpairing")
        ax.set(xticks=x, xticklabels=u.arch, title=label)
        if col == "median_queries":
            ax.set_yscale("log")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_lambda(sweep: pd.DataFrame):
    """Figure 5: sibling accuracy vs transfer success across the unpairing weight lambda."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.6))
    ax.plot(sweep.transfer, sweep.test_acc, "o-")
    for r in sweep.itertuples():
        ax.annotate(f"lambda={r.lam:g}", (r.transfer, r.test_acc), fontsize=8, xytext=(4, 3),
                    textcoords="offset points")
    ax.set(xlabel="transfer success on full model", ylabel="sibling test accuracy",
           title="Unpairing trade-off")
    return fig


def plot_example(surrogates: dict[str, nn.Module], full: nn.Module, x: Tensor, y: Tensor, eps: float,
                 steps: int, classes: list[str]):
    """One row per surrogate: a PGD example crafted on it for input ``x`` (one image), its
    perturbation, and the surrogate's and the full model's predictions on it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(surrogates), 2, figsize=(5.5, 2.3 * len(surrogates)), squeeze=False)
    for row, (name, model) in zip(axes, surrogates.items()):
        adv = attacks.pgd(model, x, y, eps, steps)
        with torch.no_grad():
            ps, pf = int(model(adv).argmax(1)), int(full(adv).argmax(1))
        img = adv[0].permute(1, 2, 0).cpu().numpy()
        delta = (adv - x)[0].mean(0).cpu().numpy()
        row[0].imshow(img.squeeze(), cmap="gray", vmin=0, vmax=1)
        row[0].set_title(f"{name}\nsurrogate: {classes[ps]}, full: {classes[pf]} (true {classes[int(y)]})",
                         fontsize=8, color="firebrick" if pf != int(y) else "black")
        row[1].imshow(delta, cmap="RdBu", vmin=-max(eps, 1e-6), vmax=max(eps, 1e-6))
        row[1].set_title(f"perturbation (eps = {eps:g})", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig
