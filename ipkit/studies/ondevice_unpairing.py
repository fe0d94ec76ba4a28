"""On-device siblings as attack priors, and similarity-unpairing (notebooks/05_ondevice_unpairing.ipynb).

Paper: S. Hong, N. Carlini, A. Kurakin, "Publishing Efficient On-device Models Increases
Adversarial Vulnerability", IEEE SaTML 2023, https://arxiv.org/abs/2212.13700.

Only the abstract is public and no code, so everything is reconstructed at small scale:
a full model per architecture and seed; quantized and pruned siblings of it
(:mod:`ipkit.compression`); an independently trained same-task model as the baseline
surrogate (:func:`ipkit.recipes.independent_model`); PGD transfer and a P-RGF-style
prior-guided query attack on the full model (:mod:`ipkit.attacks`); input-gradient cosine
and label agreement (fidelity) as similarity (:mod:`ipkit.similarity`); and the defence,
similarity-unpairing, whose loss is our reconstruction (:mod:`ipkit.unpairing`). The
paper's "19 DNNs" become architectures x compression settings.

This module holds the experiment grid the notebook runs, its tables (one row per unit:
sibling pair, attacked input, test example), the reducers behind the claims, the figures,
:func:`check_params` and :func:`claims`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.stats import spearmanr
from torch import Tensor, nn

from . import Params
from .. import attacks, compression, plots, recipes, results, similarity, unpairing
from ..data import Splits
from ..sensitivity import Sweep
from ..results import Claim
from ..study import ParamError
from ..train import agreement, evaluate

#: Constants of the study that are not notebook parameters (recorded in results.json).
HYPERPARAMETERS: dict[str, Any] = {
    "calibration_images": 1000,   # owner images calibrating the quantized siblings' activations
    "prune_finetune_lr": 0.01,    # fine-tuning after pruning
    "unpair_lr": 0.01,            # fine-tuning with the unpairing loss
    "pgd_step_factor": 2.5,       # PGD step = factor * eps / pgd_steps
    "rgf_sigma": 1e-3,            # finite-difference step of the query attack's gradient estimate
    "rgf_step_fraction": 0.1,     # query attack's signed step = fraction * eps
    "censored_when_success_at_most": 0.5,  # a median is a lower bound when half or more fail
}


@dataclass(frozen=True)
class Config(Params):
    """The notebook's parameters (see its parameters cell for ranges and help)."""

    dataset: str
    archs: list[str]
    epochs: int
    quant_bits: list[int]
    prune_ratios: list[float]
    finetune_epochs: int
    eps: float
    pgd_steps: int
    n_attack: int
    n_query: int
    query_cap: int
    rgf_samples: int
    unpair_sibling: str
    unpair_lambda: float
    unpair_lambdas: list[float]
    unpair_epochs: int
    seeds: list[int]
    c1_min_ratio: float
    c1b_min_ratio: float
    c2_min_rho: float
    c3_min_cut: float
    c3_max_acc_drop: float
    c4_min_ratio: float

    @property
    def pgd_step(self) -> float:
        return HYPERPARAMETERS["pgd_step_factor"] * self.eps / max(self.pgd_steps, 1)


#: "What would make it hold" (:mod:`ipkit.sensitivity`): the attack radius decides how often a
#: transferred example fools the full model (C1); how long unpairing fine-tunes decides how
#: far it pulls the sibling's gradients apart (C3, C4). One seed, as the default.
SENSITIVITY = (
    Sweep(("C1",), {"eps": [0.05, 0.1, 0.2]}, "the attack radius eps"),
    Sweep(("C3", "C4"), {"unpair_epochs": [2, 6]}, "epochs of unpairing"),
)


def check_params(values: dict) -> None:
    """Rules across parameters and against the data, with this study's names (one-line
    ParamError): the unpaired sibling must be built, sibling names distinct, attack sizes
    within the test set, the query cap above one iteration of the attack."""
    from ..data import split

    names = compression.sibling_names(values["quant_bits"], values["prune_ratios"])
    if len(set(names)) != len(names):
        raise ParamError(f"quant_bits / prune_ratios give one sibling name twice ({', '.join(names)}): "
                         "list each bit width and pruning percentage once")
    if values["unpair_sibling"] not in names:
        raise ParamError(f"unpair_sibling '{values['unpair_sibling']}' is not built: choose one of "
                         f"{', '.join(names)} or add its bits / ratio to quant_bits / prune_ratios")
    if len(set(values["archs"])) != len(values["archs"]):
        raise ParamError("archs lists an architecture twice: give each once")
    n_test = len(split(values["dataset"], seed=0, device="cpu").test)
    if values["n_attack"] > n_test:
        raise ParamError(f"n_attack {values['n_attack']} exceeds the test set of '{values['dataset']}' "
                         f"({n_test} images): lower n_attack to at most {n_test}")
    if values["n_query"] > values["n_attack"]:
        raise ParamError(f"n_query {values['n_query']} exceeds n_attack {values['n_attack']} (the query "
                         "attack runs on the first n_query attack inputs): lower n_query or raise n_attack")
    if values["query_cap"] < values["rgf_samples"] + 2:
        raise ParamError(f"query_cap {values['query_cap']} allows no iteration of the query attack "
                         f"(one takes up to rgf_samples + 2 = {values['rgf_samples'] + 2} queries): "
                         "raise query_cap or lower rgf_samples")


# --- Models ----------------------------------------------------------------------------------

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


def build_family(s: Splits, arch: str, cfg: Config, seed: int) -> Family:
    """Train (or load) the full model, the independent surrogate and every sibling."""
    h = HYPERPARAMETERS
    full = recipes.owner_model(s, arch, epochs=cfg.epochs, seed=seed)
    ind = recipes.independent_model(s, arch, epochs=cfg.epochs, seed=seed)
    sibs = compression.siblings(full, s, cfg.quant_bits, cfg.prune_ratios, epochs=cfg.finetune_epochs,
                                seed=seed, n_calib=h["calibration_images"], lr=h["prune_finetune_lr"])
    x, y = attacks.attack_set(full, s.test.x, s.test.y, cfg.n_attack)
    return Family(arch, seed, full, ind, sibs, x, y)


def build_families(s: Splits, cfg: Config, progress=None) -> list[Family]:
    """One :class:`Family` per seed and architecture."""
    jobs = [(seed, arch) for seed in cfg.seeds for arch in cfg.archs]
    return [build_family(s, arch, cfg, seed) for seed, arch in (progress(jobs, desc="models") if progress else jobs)]


def full_table(fams: list[Family], s: Splits) -> pd.DataFrame:
    """Per family: the full model's test accuracy and the number of attack inputs."""
    return pd.DataFrame([{"arch": f.arch, "seed": f.seed, "full_acc": evaluate(f.full, s.test.x, s.test.y),
                          "attack_inputs": len(f.y)} for f in fams])


def unpaired(fam: Family, s: Splits, cfg: Config, lam: float) -> nn.Module:
    """The family's ``unpair_sibling`` fine-tuned with the unpairing loss at ``lam``."""
    return unpairing.unpair(fam.siblings[cfg.unpair_sibling], fam.full, s, lam, epochs=cfg.unpair_epochs,
                            lr=HYPERPARAMETERS["unpair_lr"], seed=fam.seed)


# --- Transfer --------------------------------------------------------------------------------

def _kind(name: str) -> str:
    if name == "independent":
        return "independent"
    return "quantized" if name.startswith("q") else "pruned"


def transfer_outcomes(fam: Family, name: str, model: nn.Module, cfg: Config) -> pd.DataFrame:
    """One row per attack input: whether the PGD example crafted on ``model`` fools the full model."""
    adv = attacks.pgd(model, fam.x, fam.y, cfg.eps, cfg.pgd_steps, step_size=cfg.pgd_step, seed=fam.seed)
    fooled = attacks.fooled(fam.full, adv, fam.y).cpu().numpy()
    return pd.DataFrame({"arch": fam.arch, "seed": fam.seed, "surrogate": name,
                         "input": np.arange(len(fooled)), "fooled": fooled.astype(float)})


def surrogate_row(fam: Family, name: str, model: nn.Module, s: Splits, outcomes: pd.DataFrame) -> dict:
    """Accuracy, similarity to the full model (gradient cosine, fidelity) and transfer success."""
    return {"arch": fam.arch, "seed": fam.seed, "surrogate": name, "kind": _kind(name),
            "test_acc": evaluate(model, s.test.x, s.test.y),
            "grad_cos": similarity.gradient_cosine(model, fam.full, fam.x, fam.y),
            "fidelity": agreement(model, fam.full, s.test.x),
            "transfer": float(outcomes.fooled.mean())}


def transfer_tables(fams: list[Family], s: Splits, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (architecture, seed, surrogate), one row per attacked input and surrogate).

    The first holds accuracy, similarity, transfer success and ``ratio``: transfer success
    over the independent surrogate's, floored at one input (1/n)."""
    rows, inputs = [], []
    for fam in fams:
        for name, model in {"independent": fam.independent, **fam.siblings}.items():
            out = transfer_outcomes(fam, name, model, cfg)
            inputs.append(out)
            rows.append(surrogate_row(fam, name, model, s, out))
    table = transfer_ratios(pd.DataFrame(rows), {(f.arch, f.seed): len(f.y) for f in fams})
    return table, pd.concat(inputs, ignore_index=True)


def transfer_ratios(df: pd.DataFrame, n: dict[tuple[str, int], int]) -> pd.DataFrame:
    """``df`` with ``ratio``: each surrogate's transfer over its family's independent
    surrogate's, the latter floored at 1/n (n attack inputs of the family)."""
    base = df[df.surrogate == "independent"].set_index(["arch", "seed"]).transfer
    return df.assign(ratio=[t / max(base[(a, sd)], 1 / n[(a, sd)])
                            for a, sd, t in zip(df.arch, df.seed, df.transfer)])


def sibling_rows(tr: pd.DataFrame) -> pd.DataFrame:
    """The rows of the siblings (the independent surrogate left out): one per sibling pair."""
    return tr[tr.surrogate != "independent"].reset_index(drop=True)


def spearman(f: pd.DataFrame, x: str = "grad_cos", y: str = "transfer") -> float:
    """Spearman's rank correlation of columns ``x`` and ``y`` (NaN when one is constant)."""
    if len(f) < 3 or f[x].nunique() < 2 or f[y].nunique() < 2:
        return float("nan")
    return float(spearmanr(f[x], f[y]).statistic)


def similarity_summary(sib: pd.DataFrame) -> dict[str, float]:
    """Spearman rho (and p) of transfer success with gradient cosine, and rho with fidelity."""
    rho, p = (spearmanr(sib.grad_cos, sib.transfer) if len(sib) > 2 else (float("nan"),) * 2)
    return {"rho": float(rho), "p": float(p), "rho_fidelity": spearman(sib, "fidelity"), "pairs": len(sib)}


# --- Query attacks ---------------------------------------------------------------------------

def run_query_attack(fam: Family, prior_name: str, prior: nn.Module | None, cfg: Config) -> pd.DataFrame:
    """The prior-guided query attack on the full model for the first ``n_query`` attack inputs:
    one row per input with its queries and success (failures censored at the cap)."""
    n = min(cfg.n_query, len(fam.y))
    counter = attacks.QueryCounter(fam.full, n, cfg.query_cap)
    res = attacks.query_attack(counter, fam.x[:n], fam.y[:n], cfg.eps, prior=prior, samples=cfg.rgf_samples,
                               sigma=HYPERPARAMETERS["rgf_sigma"],
                               step_size=HYPERPARAMETERS["rgf_step_fraction"] * cfg.eps, seed=fam.seed)
    return pd.DataFrame({"arch": fam.arch, "seed": fam.seed, "prior": prior_name, "input": np.arange(n),
                         "queries": res.queries, "success": res.success, "cap": cfg.query_cap})


def query_table(fams: list[Family], cfg: Config, progress=None) -> pd.DataFrame:
    """Per family: the query attack with no prior, the independent prior and each sibling's."""
    frames = []
    for fam in (progress(fams, desc="query attacks") if progress else fams):
        priors = {"none": None, "independent": fam.independent, **fam.siblings}
        frames += [run_query_attack(fam, name, prior, cfg) for name, prior in priors.items()]
    return pd.concat(frames, ignore_index=True)


def counted(q: pd.DataFrame) -> pd.Series:
    """Queries to success, a failure counted at the cap (a lower bound)."""
    return pd.Series(np.where(q.success, q.queries, q.cap), index=q.index)


def query_summary(q: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, seed, prior): success rate, median queries (failures counted at
    the cap) and whether that median is censored (a lower bound)."""
    cut = HYPERPARAMETERS["censored_when_success_at_most"]
    return (q.assign(counted=counted(q)).groupby(["arch", "seed", "prior"], sort=False)
            .agg(success=("success", "mean"), median_queries=("counted", "median"))
            .assign(censored=lambda d: d.success <= cut).reset_index())


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


# --- Unpairing -------------------------------------------------------------------------------

@dataclass
class Unpairing:
    """Every family's sibling unpaired at 0 (control) and ``unpair_lambda``: one row per
    (family, lambda) in ``summary``, per attacked input in ``transfer`` and ``queries``,
    per test example in ``accuracy`` (``correct`` of the unpaired sibling)."""

    summary: pd.DataFrame
    transfer: pd.DataFrame
    queries: pd.DataFrame
    accuracy: pd.DataFrame


def correct_on_test(model: nn.Module, s: Splits) -> np.ndarray:
    """Per test example: 1.0 when ``model`` classifies it correctly."""
    return (~attacks.fooled(model, s.test.x, s.test.y)).float().cpu().numpy()


def run_unpairing(fams: list[Family], s: Splits, cfg: Config, progress=None) -> Unpairing:
    """Unpair every family's ``unpair_sibling`` at lambda 0 and ``unpair_lambda``, rerun both
    attacks, and keep the per-unit outcomes (the sibling before unpairing as ``lam = nan``
    in ``accuracy``)."""
    rows, transfer, queries, accuracy = [], [], [], []
    for fam in (progress(fams, desc="unpairing") if progress else fams):
        before = fam.siblings[cfg.unpair_sibling]
        accuracy.append(_accuracy_rows(fam, s, before, float("nan")))
        for lam in sorted({0.0, cfg.unpair_lambda}):
            after = unpaired(fam, s, cfg, lam)
            out = transfer_outcomes(fam, cfg.unpair_sibling, after, cfg).assign(lam=lam)
            transfer.append(out)
            rows.append({**surrogate_row(fam, cfg.unpair_sibling, after, s, out), "lam": lam})
            queries.append(run_query_attack(fam, f"unpaired lambda={lam:g}", after, cfg).assign(lam=lam))
            accuracy.append(_accuracy_rows(fam, s, after, lam))
    return Unpairing(pd.DataFrame(rows), pd.concat(transfer, ignore_index=True),
                     pd.concat(queries, ignore_index=True), pd.concat(accuracy, ignore_index=True))


def _accuracy_rows(fam: Family, s: Splits, model: nn.Module, lam: float) -> pd.DataFrame:
    correct = correct_on_test(model, s)
    return pd.DataFrame({"arch": fam.arch, "seed": fam.seed, "lam": lam, "example": np.arange(len(correct)),
                         "correct": correct})


def compare_unpairing(tr: pd.DataFrame, qsum: pd.DataFrame, u: Unpairing, cfg: Config) -> pd.DataFrame:
    """Per (architecture, seed): the sibling's transfer success, median queries, accuracy and
    gradient cosine before and after unpairing at ``unpair_lambda`` (and transfer after the
    ``lam = 0`` fine-tuning control), with ``transfer_cut`` (relative) and ``query_ratio``."""
    key, sib, lam = ["arch", "seed"], cfg.unpair_sibling, cfg.unpair_lambda
    b = tr[tr.surrogate == sib].set_index(key)
    qb = qsum[qsum.prior == sib].set_index(key)
    after = u.summary[u.summary.lam == lam].set_index(key)
    qa = query_summary(u.queries[u.queries.lam == lam]).set_index(key)
    ctrl = u.summary[u.summary.lam == 0].set_index(key)
    out = pd.DataFrame({
        "transfer_before": b.transfer, "transfer_after": after.transfer, "transfer_finetune_only": ctrl.transfer,
        "median_queries_before": qb.median_queries, "median_queries_after": qa.median_queries,
        "after_censored": qa.censored, "before_censored": qb.censored,
        "test_acc_before": b.test_acc, "test_acc_after": after.test_acc,
        "grad_cos_before": b.grad_cos, "grad_cos_after": after.grad_cos}).reset_index()
    out["transfer_cut"] = 1 - out.transfer_after / out.transfer_before.clip(lower=1e-9)
    out["query_ratio"] = out.median_queries_after / out.median_queries_before.clip(lower=1)
    return out


def paired_transfer(tr_inputs: pd.DataFrame, u: Unpairing, cfg: Config) -> pd.DataFrame:
    """One row per (family, attacked input): fooled by the sibling's PGD example ``before``,
    after unpairing at ``unpair_lambda`` (``after``) and after the control (``finetune_only``)."""
    key = ["arch", "seed", "input"]
    b = tr_inputs[tr_inputs.surrogate == cfg.unpair_sibling].set_index(key).fooled.rename("before")
    a = u.transfer[u.transfer.lam == cfg.unpair_lambda].set_index(key).fooled.rename("after")
    c = u.transfer[u.transfer.lam == 0].set_index(key).fooled.rename("finetune_only")
    return pd.concat([b, a, c], axis=1).reset_index()


def paired_queries(queries: pd.DataFrame, u: Unpairing, cfg: Config) -> pd.DataFrame:
    """One row per (family, query-attacked input): queries with the sibling's prior before and
    after unpairing at ``unpair_lambda`` (failures counted at the cap)."""
    key = ["arch", "seed", "input"]
    qb = queries[queries.prior == cfg.unpair_sibling]
    qa = u.queries[u.queries.lam == cfg.unpair_lambda]
    return pd.concat([counted(qb).set_axis(pd.MultiIndex.from_frame(qb[key])).rename("before"),
                      counted(qa).set_axis(pd.MultiIndex.from_frame(qa[key])).rename("after")],
                     axis=1).reset_index()


def paired_accuracy(u: Unpairing, cfg: Config) -> pd.DataFrame:
    """One row per (family, test example): the sibling correct ``before`` and ``after`` unpairing."""
    key = ["arch", "seed", "example"]
    b = u.accuracy[u.accuracy.lam.isna()].set_index(key).correct.rename("before")
    a = u.accuracy[u.accuracy.lam == cfg.unpair_lambda].set_index(key).correct.rename("after")
    return pd.concat([b, a], axis=1).reset_index()


def lambda_sweep(fam: Family, s: Splits, cfg: Config, progress=None) -> pd.DataFrame:
    """The family's sibling unpaired at each of ``unpair_lambdas``: accuracy, similarity, transfer."""
    lams = progress(cfg.unpair_lambdas, desc="lambda sweep") if progress else cfg.unpair_lambdas
    rows = []
    for lam in lams:
        model = unpaired(fam, s, cfg, lam)
        rows.append({**surrogate_row(fam, cfg.unpair_sibling, model, s,
                                     transfer_outcomes(fam, cfg.unpair_sibling, model, cfg)), "lam": lam})
    return pd.DataFrame(rows)


# --- Claims ----------------------------------------------------------------------------------

def median_of(column: str):
    """The statistic 'median of ``column``'."""
    return lambda f: float(f[column].median())


def family_mean_cut(f: pd.DataFrame) -> float:
    """Mean over families of the relative transfer cut 1 - mean(after) / mean(before)."""
    g = f.groupby(["arch", "seed"])
    return float((1 - g.after.mean() / g.before.mean().clip(lower=1e-9)).mean())


def family_median_query_ratio(f: pd.DataFrame) -> float:
    """Median over families of median(after) / median(before) queries."""
    g = f.groupby(["arch", "seed"])
    return float((g.after.median() / g.before.median().clip(lower=1)).median())


def claims(tr: pd.DataFrame, qratio: pd.DataFrame, transfer_pairs: pd.DataFrame,
           accuracy_pairs: pd.DataFrame, query_pairs: pd.DataFrame, cfg: Config) -> list[Claim]:
    """C1, C1b, C2, C3 and C4 with their evidence.

    Resampled (two-stage, :func:`ipkit.stats.bootstrap_ci`): the seeds, then within a seed
    the units of each row. C1: sibling pairs (architecture x sibling), the median of their
    transfer ratios. C1b: sibling pairs, the median of their query ratios against the
    independent prior (failures at the cap: a lower bound when the independent prior's
    median is censored). C2: sibling pairs, Spearman's rho of gradient cosine with transfer.
    C3: attacked inputs for the transfer cut (paired before/after, mean over families of the
    relative cut) and test examples for the accuracy drop (paired). C4: query-attacked
    inputs (paired), the median over families of the ratio of median queries.
    """
    sib = sibling_rows(tr)
    ind = qratio[qratio.vs == "independent"]
    bound = " (lower bound)" if len(ind) and ind.lower_bound.mean() >= 0.5 else ""
    c1 = results.evidence("median transfer ratio", sib, median_of("ratio"), threshold=cfg.c1_min_ratio,
                          holds_when="above", unit="sibling pair")
    c1b = results.evidence(f"median query ratio vs independent{bound}", ind, median_of("ratio"),
                           threshold=cfg.c1b_min_ratio, holds_when="above", unit="sibling pair")
    c2 = results.evidence("Spearman rho", sib, spearman, threshold=cfg.c2_min_rho, holds_when="above",
                          unit="sibling pair")
    c3 = [results.evidence("transfer cut", transfer_pairs, family_mean_cut, threshold=cfg.c3_min_cut,
                           holds_when="above", unit="attacked input"),
          results.evidence("accuracy drop", accuracy_pairs, lambda f: float(f.before.mean() - f.after.mean()),
                           threshold=cfg.c3_max_acc_drop, holds_when="below", unit="test example")]
    c4 = results.evidence("median query ratio", query_pairs, family_median_query_ratio,
                          threshold=cfg.c4_min_ratio, holds_when="above", unit="attacked input")
    lam = f"{cfg.unpair_lambda:g}"
    return [
        results.claim("C1", "PGD examples built on a sibling fool the full model far more often than those "
                      f"built on an independent model (median ratio over sibling pairs above {cfg.c1_min_ratio:g})",
                      "up to 100x higher vulnerability over 19 DNNs", c1),
        results.claim("C1b", "The query attack with a sibling prior needs far fewer queries than with the "
                      f"independent prior (median ratio over sibling pairs above {cfg.c1b_min_ratio:g})",
                      "up to 100x higher vulnerability (P-RGF-style attacks with a transfer prior)", c1b),
        results.claim("C2", "Across siblings, transfer success rises with input-gradient similarity "
                      f"(Spearman rho above {cfg.c2_min_rho:g})",
                      "vulnerability grows with full-sibling similarity", c2),
        results.claim("C3", f"Unpairing {cfg.unpair_sibling} (lambda = {lam}) cuts transfer success by more "
                      f"than {cfg.c3_min_cut:.0%} at less than {100 * cfg.c3_max_acc_drop:g} points of "
                      "sibling accuracy", "transferability cut by up to 90% (19 DNNs)", *c3),
        results.claim("C4", f"Unpairing {cfg.unpair_sibling} (lambda = {lam}) raises the median queries of the "
                      f"prior-guided attack by more than {cfg.c4_min_ratio:g}x", "10-100x more queries", c4),
    ]


# --- Figures ---------------------------------------------------------------------------------

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

    archs = list(dict.fromkeys(q.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.6), squeeze=False, sharey=True)
    q = q.assign(counted=counted(q))
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


def explore_surrogates(fam: Family, s: Splits, cfg: Config, bits: int, ratio: float,
                       lam: float) -> dict[str, nn.Module]:
    """For the explorer: a sibling by bit width and pruning ratio (pruned first, then
    quantized; 32 bits and ratio 0 give the full model's weights), the unpaired sibling at
    ``lam`` and the independent surrogate."""
    h = HYPERPARAMETERS
    base = fam.full if ratio == 0 else compression.pruned_sibling(fam.full, s, ratio, epochs=cfg.finetune_epochs,
                                                                  seed=fam.seed, lr=h["prune_finetune_lr"])
    sib = (compression.calibrate(compression.quantize_model(base, bits), s.owner.x[:h["calibration_images"]])
           if bits < 32 else base)
    return {f"sibling q{bits} p{round(100 * ratio)}": sib,
            f"unpaired {cfg.unpair_sibling} lambda={lam:g}": unpaired(fam, s, cfg, lam),
            "independent": fam.independent}


def plot_example(surrogates: dict[str, nn.Module], full: nn.Module, x: Tensor, y: Tensor, eps: float,
                 steps: int, classes: list[str]):
    """One row per surrogate: a PGD example crafted on it for input ``x`` (one image), its
    perturbation, and the surrogate's and the full model's predictions on it."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(surrogates), 2, figsize=(5.5, 2.3 * len(surrogates)), squeeze=False)
    step = HYPERPARAMETERS["pgd_step_factor"] * eps / max(steps, 1)
    for row, (name, model) in zip(axes, surrogates.items()):
        adv = attacks.pgd(model, x, y, eps, steps, step_size=step)
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
