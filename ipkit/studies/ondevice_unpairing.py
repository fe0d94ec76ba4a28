"""On-device siblings as attack priors, and similarity-unpairing (notebooks/05_ondevice_unpairing.ipynb).

Paper: S. Hong, N. Carlini, A. Kurakin, "Publishing Efficient On-device Models Increases
Adversarial Vulnerability", IEEE SaTML 2023, https://arxiv.org/abs/2212.13700.

Full text searched for (2026-12-06: arXiv 2212.13700, OpenReview forum nbNdDm1x3c, Papers with
Code, DeepAI): every public page holds the abstract only, and Papers with Code lists no code.
The OpenReview abstract words the defence as "reduces the transferability up to 90% and the
number of queries required by a factor of 10-100x"; we read the latter, as the project's
paper brief does, as 10-100x *more* queries for the attack.

Only the abstract is public and no code, so everything is reconstructed at small scale:
a full model per architecture and seed; quantized and pruned siblings of it
(:mod:`ipkit.methods.compression`); an independently trained same-task model as the baseline
surrogate (:func:`ipkit.methods.recipes.independent_model`); PGD transfer and a P-RGF-style
prior-guided query attack on the full model (:mod:`ipkit.methods.attacks`); input-gradient cosine
and label agreement (fidelity) as similarity (:mod:`ipkit.methods.similarity`); and the defence,
similarity-unpairing, whose loss is our reconstruction (:mod:`ipkit.methods.unpairing`). The
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

from ..core import stats
from ..evidence import results
from ..evidence.results import Claim
from ..evidence.sensitivity import Sweep
from ..methods import attacks, compression, recipes, similarity, unpairing
from ..methods.data import Splits, split
from ..methods.train import Progress, agreement, evaluate, no_progress
from ..notebook import widgets
from ..notebook.params import ParamError
from . import Params

#: Constants of the study that are not notebook parameters (recorded in results.json).
HYPERPARAMETERS: dict[str, Any] = {
    "calibration_images": 1000,  # owner images calibrating the quantized siblings' activations
    "prune_finetune_lr": 0.01,  # fine-tuning after pruning
    "unpair_lr": 0.01,  # fine-tuning with the unpairing loss
    "pgd_step_factor": 2.5,  # PGD step = factor * eps / pgd_steps
    "rgf_sigma": 1e-3,  # finite-difference step of the query attack's gradient estimate
    "rgf_step_fraction": 0.1,  # query attack's signed step = fraction * eps
    "censored_when_success_at_most": 0.5,  # a median is a lower bound when half or more fail
}


@dataclass(frozen=True)
class Config(Params):
    """The notebook's parameters (see its parameters cell for ranges and help)."""

    dataset: str
    archs: tuple[str, ...]
    epochs: int
    quant_bits: tuple[int, ...]
    prune_ratios: tuple[float, ...]
    finetune_epochs: int
    eps: float
    pgd_steps: int
    n_attack: int
    n_query: int
    query_cap: int
    rgf_samples: int
    unpair_sibling: str
    unpair_lambda: float
    unpair_lambdas: tuple[float, ...]
    unpair_epochs: int
    unpair_penalty: str
    seeds: tuple[int, ...]
    max_acc_gap: float
    c1_min_ratio: float
    c1b_min_ratio: float
    c2_min_rho: float
    c3_min_cut: float
    c3_max_acc_drop: float
    c4_min_ratio: float

    @property
    def pgd_step(self) -> float:
        return HYPERPARAMETERS["pgd_step_factor"] * self.eps / max(self.pgd_steps, 1)


#: "What would make it hold" (:mod:`ipkit.evidence.sensitivity`): the attack radius decides how often a
#: transferred example fools the full model (C1); how long unpairing fine-tunes, and which
#: penalty it puts on the gradient alignment (reconstructed; ``signed`` is the control),
#: decide how far it pulls the sibling's gradients apart (C3, C4).
SENSITIVITY = (
    Sweep(("C1",), {"eps": [0.05, 0.1, 0.2]}, "the attack radius eps"),
    Sweep(("C3", "C4"), {"unpair_epochs": [2, 6]}, "epochs of unpairing"),
    Sweep(
        ("C3", "C4"),
        {"unpair_penalty": ["abs", "square", "signed"]},
        "the unpairing penalty (|cos|, cos^2; the signed cosine is the control)",
    ),
)

#: Forking paths: defaults chosen after a trial run, with the values they were chosen among.
ALTERNATIVES = (Sweep(("C1", "C1b", "C2", "C3", "C4"), {"eps": [0.1, 0.15]}, "eps, chosen after a trial at 0.15"),)

#: Surrogates that are not siblings: the full model itself (PGD's white-box success, the
#: ceiling of any transfer), no prior (a uniform random point of the eps ball; for the
#: query attack, plain RGF) and the independently trained model (the floor of the ratios).
REFERENCES = ("white-box", "none", "independent")


def hyperparameters(s: Splits, cfg: Config) -> dict[str, Any]:
    """The study's constants (:data:`HYPERPARAMETERS`) and the trainer settings of the full
    and independent models (:func:`ipkit.methods.recipes.train_settings` at ``cfg.epochs``)."""
    return {**HYPERPARAMETERS, "fit": recipes.train_settings(s, cfg.epochs)}


def check_params(values: dict) -> None:
    """Rules across parameters and against the data, with this study's names (one-line
    ParamError): the unpaired sibling must be built, sibling names distinct, attack sizes
    within the test set, the query cap above one iteration of the attack."""
    names = compression.sibling_names(values["quant_bits"], values["prune_ratios"])
    if len(set(names)) != len(names):
        raise ParamError(
            f"quant_bits / prune_ratios give one sibling name twice ({', '.join(names)}): "
            "list each bit width and pruning percentage once"
        )
    if values["unpair_sibling"] not in names:
        raise ParamError(
            f"unpair_sibling '{values['unpair_sibling']}' is not built: choose one of "
            f"{', '.join(names)} or add its bits / ratio to quant_bits / prune_ratios"
        )
    if values["unpair_penalty"] not in unpairing.PENALTIES:
        raise ParamError(
            f"unpair_penalty '{values['unpair_penalty']}' is unknown: choose one of {', '.join(unpairing.PENALTIES)}"
        )
    n_test = len(split(values["dataset"], seed=0, device="cpu").test)
    if values["n_attack"] > n_test:
        raise ParamError(
            f"n_attack {values['n_attack']} exceeds the test set of '{values['dataset']}' "
            f"({n_test} images): lower n_attack to at most {n_test}"
        )
    if values["n_query"] > values["n_attack"]:
        raise ParamError(
            f"n_query {values['n_query']} exceeds n_attack {values['n_attack']} (the query "
            "attack runs on the first n_query attack inputs): lower n_query or raise n_attack"
        )
    if values["query_cap"] < values["rgf_samples"] + 2:
        raise ParamError(
            f"query_cap {values['query_cap']} allows no iteration of the query attack "
            f"(one takes up to rgf_samples + 2 = {values['rgf_samples'] + 2} queries): "
            "raise query_cap or lower rgf_samples"
        )


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
    sibs = compression.siblings(
        full,
        s,
        cfg.quant_bits,
        cfg.prune_ratios,
        epochs=cfg.finetune_epochs,
        seed=seed,
        n_calib=h["calibration_images"],
        lr=h["prune_finetune_lr"],
    )
    x, y = attacks.attack_set(full, s.test.x, s.test.y, cfg.n_attack)
    return Family(arch, seed, full, ind, sibs, x, y)


def build_families(s: Splits, cfg: Config, progress: Progress = no_progress) -> list[Family]:
    """One :class:`Family` per seed and architecture."""
    jobs = [(seed, arch) for seed in cfg.seeds for arch in cfg.archs]
    return [build_family(s, arch, cfg, seed) for seed, arch in progress(jobs, desc="models")]


def full_table(fams: list[Family], s: Splits) -> pd.DataFrame:
    """Per family: the full model's test accuracy and the number of attack inputs."""
    return pd.DataFrame(
        [
            {
                "arch": f.arch,
                "seed": f.seed,
                "full_acc": evaluate(f.full, s.test.x, s.test.y),
                "attack_inputs": len(f.y),
            }
            for f in fams
        ]
    )


def unpaired(fam: Family, s: Splits, cfg: Config, lam: float) -> nn.Module:
    """The family's ``unpair_sibling`` fine-tuned with the unpairing loss at ``lam``."""
    return unpairing.unpair(
        fam.siblings[cfg.unpair_sibling],
        fam.full,
        s,
        lam,
        epochs=cfg.unpair_epochs,
        lr=HYPERPARAMETERS["unpair_lr"],
        seed=fam.seed,
        penalty=cfg.unpair_penalty,
    )


# --- Transfer --------------------------------------------------------------------------------


def _kind(name: str) -> str:
    if name in REFERENCES:
        return {"white-box": "white-box", "none": "no prior"}.get(name, name)
    return "quantized" if name.startswith("q") else "pruned"


def surrogates(fam: Family) -> dict[str, nn.Module | None]:
    """The family's surrogates in table order: the references (:data:`REFERENCES`; ``none``
    has no model) and the siblings."""
    return {"white-box": fam.full, "none": None, "independent": fam.independent, **fam.siblings}


def transfer_outcomes(fam: Family, name: str, model: nn.Module | None, cfg: Config) -> pd.DataFrame:
    """One row per attack input: whether the PGD example crafted on ``model`` fools the full
    model (``model=None``: a uniform random point of the eps ball, no prior)."""
    steps = cfg.pgd_steps if model is not None else 0
    adv = attacks.pgd(
        model if model is not None else fam.full, fam.x, fam.y, cfg.eps, steps, step_size=cfg.pgd_step, seed=fam.seed
    )
    fooled = attacks.fooled(fam.full, adv, fam.y).cpu().numpy()
    return pd.DataFrame(
        {
            "arch": fam.arch,
            "seed": fam.seed,
            "surrogate": name,
            "input": np.arange(len(fooled)),
            "fooled": fooled.astype(float),
        }
    )


def gradient_cosines(a: nn.Module, b: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Per input: cos(grad_x L_a(x, y), grad_x L_b(x, y)), models in eval mode."""
    a.eval()
    b.eval()
    ga = similarity.input_gradients(a, x, y).flatten(1)
    gb = similarity.input_gradients(b, x, y).flatten(1)
    return torch.nn.functional.cosine_similarity(ga, gb, dim=1, eps=1e-12)


def chance_abs_cosine(d: int) -> float:
    """``E|cos|`` of two independent random directions in ``d`` dimensions, sqrt(2 / (pi d)) for
    large d: what an unpaired sibling's ``|cos|`` with the full model should approach."""
    return float(np.sqrt(2 / (np.pi * d)))


def surrogate_row(fam: Family, name: str, model: nn.Module | None, s: Splits, outcomes: pd.DataFrame) -> dict:
    """Accuracy, similarity to the full model (mean gradient cosine, mean ``|cosine|``, fidelity)
    and transfer success (NaN similarity for ``none``)."""
    if model is None:
        sim = {
            "test_acc": float("nan"),
            "grad_cos": float("nan"),
            "grad_abs_cos": float("nan"),
            "fidelity": float("nan"),
        }
    else:
        cos = gradient_cosines(model, fam.full, fam.x, fam.y)
        sim = {
            "test_acc": evaluate(model, s.test.x, s.test.y),
            "grad_cos": float(cos.mean()),
            "grad_abs_cos": float(cos.abs().mean()),
            "fidelity": agreement(model, fam.full, s.test.x),
        }
    return {
        "arch": fam.arch,
        "seed": fam.seed,
        "surrogate": name,
        "kind": _kind(name),
        **sim,
        "transfer": float(outcomes.fooled.mean()),
    }


def transfer_tables(fams: list[Family], s: Splits, cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per (architecture, seed, surrogate), one row per attacked input and surrogate).

    The first holds accuracy, similarity, transfer success, ``ratio`` (transfer success over
    the independent surrogate's, floored at one input: 1/n), ``acc_gap`` (the full model's
    test accuracy minus the surrogate's) and ``comparable`` (:func:`mark_comparable`)."""
    rows, inputs = [], []
    for fam in fams:
        for name, model in surrogates(fam).items():
            out = transfer_outcomes(fam, name, model, cfg)
            inputs.append(out)
            rows.append(surrogate_row(fam, name, model, s, out))
    table = transfer_ratios(pd.DataFrame(rows), {(f.arch, f.seed): len(f.y) for f in fams})
    return mark_comparable(table, cfg.max_acc_gap), pd.concat(inputs, ignore_index=True)


def transfer_ratios(df: pd.DataFrame, n: dict[tuple[str, int], int]) -> pd.DataFrame:
    """``df`` with ``ratio``: each surrogate's transfer over its family's independent
    surrogate's, the latter floored at 1/n (n attack inputs of the family)."""
    base = df[df.surrogate == "independent"].set_index(["arch", "seed"]).transfer
    return df.assign(ratio=[t / max(base[(a, sd)], 1 / n[(a, sd)]) for a, sd, t in zip(df.arch, df.seed, df.transfer)])


def mark_comparable(tr: pd.DataFrame, max_gap: float) -> pd.DataFrame:
    """``tr`` with ``acc_gap`` (the family's white-box row, i.e. the full model, minus the
    row's test accuracy) and ``comparable``: the (architecture, surrogate)'s mean gap over
    seeds is at most ``max_gap``, the paper's on-device models "with comparable accuracy"."""
    full = tr[tr.surrogate == "white-box"].set_index(["arch", "seed"]).test_acc
    gap = np.array([full[(a, sd)] - acc for a, sd, acc in zip(tr.arch, tr.seed, tr.test_acc)])
    out = tr.assign(acc_gap=gap)
    mean_gap = out.groupby(["arch", "surrogate"]).acc_gap.transform("mean")
    return out.assign(comparable=(mean_gap <= max_gap) | (out.surrogate == "white-box"))


def sibling_rows(tr: pd.DataFrame) -> pd.DataFrame:
    """The rows of the siblings (the references left out): one per sibling pair and seed."""
    return tr[~tr.surrogate.isin(REFERENCES)].reset_index(drop=True)


def spearman(f: pd.DataFrame, x: str = "grad_cos", y: str = "transfer") -> float:
    """Spearman's rank correlation of columns ``x`` and ``y`` (NaN when one is constant)."""
    if len(f) < 3 or f[x].nunique() < 2 or f[y].nunique() < 2:
        return float("nan")
    return float(spearmanr(f[x], f[y]).statistic)


def within_spearman(f: pd.DataFrame, x: str = "grad_cos", y: str = "transfer") -> float:
    """Mean over (architecture, seed) of Spearman's rho of ``x`` with ``y`` across the
    siblings of that full model: the correlation within an architecture, which the
    architecture itself (moving both similarity and transfer) cannot make."""
    rhos = [spearman(g, x, y) for _, g in f.groupby(["arch", "seed"], sort=False)]
    rhos = [r for r in rhos if np.isfinite(r)]
    return float(np.mean(rhos)) if rhos else float("nan")


def similarity_summary(sib: pd.DataFrame) -> dict[str, float]:
    """Spearman rho of transfer success with gradient cosine within architecture (the mean of
    :func:`within_spearman`, and per architecture), pooled over all pairs (with its p), and
    pooled with fidelity."""
    rho, p = spearmanr(sib.grad_cos, sib.transfer) if len(sib) > 2 else (float("nan"),) * 2
    per_arch = {f"rho_within_{a}": within_spearman(g) for a, g in sib.groupby("arch", sort=False)}
    return {
        "rho_within": within_spearman(sib),
        **per_arch,
        "rho_pooled": float(rho),
        "p_pooled": float(p),
        "rho_fidelity_pooled": spearman(sib, "fidelity"),
        "pairs": len(sib),
    }


# --- Query attacks ---------------------------------------------------------------------------


def run_query_attack(fam: Family, prior_name: str, prior: nn.Module | None, cfg: Config) -> pd.DataFrame:
    """The prior-guided query attack on the full model for the first ``n_query`` attack inputs:
    one row per input with its queries and success (failures censored at the cap)."""
    n = min(cfg.n_query, len(fam.y))
    counter = attacks.QueryCounter(fam.full, n, cfg.query_cap)
    res = attacks.query_attack(
        counter,
        fam.x[:n],
        fam.y[:n],
        cfg.eps,
        prior=prior,
        samples=cfg.rgf_samples,
        sigma=HYPERPARAMETERS["rgf_sigma"],
        step_size=HYPERPARAMETERS["rgf_step_fraction"] * cfg.eps,
        seed=fam.seed,
    )
    return pd.DataFrame(
        {
            "arch": fam.arch,
            "seed": fam.seed,
            "prior": prior_name,
            "input": np.arange(n),
            "queries": res.queries,
            "success": res.success,
            "cap": cfg.query_cap,
        }
    )


def query_table(fams: list[Family], cfg: Config, progress: Progress = no_progress) -> pd.DataFrame:
    """Per family: the query attack with no prior (RGF), the full model's own gradient as
    prior (white-box, the ceiling of any prior), the independent prior and each sibling's."""
    frames = []
    for fam in progress(fams, desc="query attacks"):
        frames += [run_query_attack(fam, name, prior, cfg) for name, prior in surrogates(fam).items()]
    return pd.concat(frames, ignore_index=True)


def counted(q: pd.DataFrame) -> pd.Series:
    """Queries to success, a failure counted at the cap (censored: a lower bound)."""
    return pd.Series(np.where(q.success, q.queries, q.cap), index=q.index)


def query_summary(q: pd.DataFrame) -> pd.DataFrame:
    """Per (architecture, seed, prior): success rate, restricted mean queries ``rmst`` (the
    mean of min(queries, cap): the area under the survival curve up to the cap, which handles
    the failures censored at the cap), median queries (failures at the cap) and whether that
    median is censored (a lower bound)."""
    cut = HYPERPARAMETERS["censored_when_success_at_most"]
    return (
        q.assign(counted=counted(q))
        .groupby(["arch", "seed", "prior"], sort=False)
        .agg(success=("success", "mean"), rmst=("counted", "mean"), median_queries=("counted", "median"))
        .assign(censored=lambda d: d.success <= cut)
        .reset_index()
    )


def survival(q: pd.DataFrame, grid: np.ndarray | None = None) -> pd.DataFrame:
    """Per (architecture, prior) and query budget t: the share of inputs still unbroken after
    t queries (pooled over seeds; a failure stays unbroken up to the cap)."""
    c = counted(q)
    grid = np.unique(np.r_[0, c]) if grid is None else grid
    rows = []
    for (arch, prior), g in q.assign(counted=c).groupby(["arch", "prior"], sort=False):
        v = g.counted.to_numpy()
        won = g.success.to_numpy()
        rows += [{"arch": arch, "prior": prior, "queries": t, "unbroken": float(np.mean(~won | (v > t)))} for t in grid]
    return pd.DataFrame(rows)


def query_ratios(summary: pd.DataFrame, fams: list[Family]) -> pd.DataFrame:
    """Per (architecture, seed, sibling) and reference prior (``independent``, ``none``): the
    reference's restricted mean queries over the sibling's (``ratio``), with the share of the
    reference's inputs censored at the cap (``ref_censored``: the ratio understates the true
    one when it is large)."""
    rows = []
    for fam in fams:
        base = summary[(summary.arch == fam.arch) & (summary.seed == fam.seed)].set_index("prior")
        for name in fam.siblings:
            for ref in ("independent", "none"):
                rows.append(
                    {
                        "arch": fam.arch,
                        "seed": fam.seed,
                        "sibling": name,
                        "vs": ref,
                        "ratio": base.rmst[ref] / max(base.rmst[name], 1),
                        "ref_censored": 1 - base.success[ref],
                    }
                )
    return pd.DataFrame(rows)


def per_input(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    """One row per (architecture, seed, input), one column per value of ``column`` (each
    surrogate's or prior's outcome on that input): the paired frame the claims resample."""
    return (
        frame.pivot_table(index=["arch", "seed", "input"], columns=column, values=value, sort=False)
        .reset_index()
        .rename_axis(columns=None)
    )


def query_inputs_wide(q: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_input` of the queries to success (failures at the cap) per prior."""
    return per_input(q.assign(counted=counted(q).astype(float)), "prior", "counted")


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
    dims: tuple[int, ...] = ()


def correct_on_test(model: nn.Module, s: Splits) -> np.ndarray:
    """Per test example: 1.0 when ``model`` classifies it correctly."""
    return (~attacks.fooled(model, s.test.x, s.test.y)).float().cpu().numpy()


def run_unpairing(fams: list[Family], s: Splits, cfg: Config, progress: Progress = no_progress) -> Unpairing:
    """Unpair every family's ``unpair_sibling`` (penalty ``unpair_penalty``) at lambda 0 and
    ``unpair_lambda``, rerun both attacks, and keep the per-unit outcomes (the sibling before
    unpairing as ``lam = nan`` in ``accuracy``)."""
    rows, transfer, queries, accuracy = [], [], [], []
    for fam in progress(fams, desc="unpairing"):
        before = fam.siblings[cfg.unpair_sibling]
        accuracy.append(_accuracy_rows(fam, s, before, float("nan")))
        for lam in sorted({0.0, cfg.unpair_lambda}):
            after = unpaired(fam, s, cfg, lam)
            out = transfer_outcomes(fam, cfg.unpair_sibling, after, cfg).assign(lam=lam)
            transfer.append(out)
            rows.append({**surrogate_row(fam, cfg.unpair_sibling, after, s, out), "lam": lam})
            queries.append(run_query_attack(fam, f"unpaired lambda={lam:g}", after, cfg).assign(lam=lam))
            accuracy.append(_accuracy_rows(fam, s, after, lam))
    return Unpairing(
        pd.DataFrame(rows),
        pd.concat(transfer, ignore_index=True),
        pd.concat(queries, ignore_index=True),
        pd.concat(accuracy, ignore_index=True),
        tuple(s.in_shape),
    )


def _accuracy_rows(fam: Family, s: Splits, model: nn.Module, lam: float) -> pd.DataFrame:
    correct = correct_on_test(model, s)
    return pd.DataFrame(
        {"arch": fam.arch, "seed": fam.seed, "lam": lam, "example": np.arange(len(correct)), "correct": correct}
    )


def compare_unpairing(tr: pd.DataFrame, qsum: pd.DataFrame, u: Unpairing, cfg: Config) -> pd.DataFrame:
    """Per (architecture, seed): the sibling's transfer success, restricted mean queries
    (:func:`query_summary`), accuracy and gradient cosine (signed and ``|cos|``) before and after
    unpairing at ``unpair_lambda`` (and transfer after the ``lam = 0`` fine-tuning control),
    with ``transfer_cut`` (relative), ``query_ratio`` (restricted means, after over before),
    the no-prior attack's restricted mean (``rmst_no_prior``: about the slowest a useless
    prior leaves it), the full model's accuracy, the chance level of ``|cos|`` for the input
    dimension and ``comparable`` (the unpaired sibling's mean accuracy gap over seeds at
    most ``max_acc_gap``)."""
    key, sib, lam = ["arch", "seed"], cfg.unpair_sibling, cfg.unpair_lambda
    b = tr[tr.surrogate == sib].set_index(key)
    full = tr[tr.surrogate == "white-box"].set_index(key)
    qb = qsum[qsum.prior == sib].set_index(key)
    qn = qsum[qsum.prior == "none"].set_index(key)
    after = u.summary[u.summary.lam == lam].set_index(key)
    qa = query_summary(u.queries[u.queries.lam == lam]).set_index(key)
    ctrl = u.summary[u.summary.lam == 0].set_index(key)
    out = pd.DataFrame(
        {
            "transfer_before": b.transfer,
            "transfer_after": after.transfer,
            "transfer_finetune_only": ctrl.transfer,
            "rmst_before": qb.rmst,
            "rmst_after": qa.rmst,
            "rmst_no_prior": qn.rmst,
            "success_before": qb.success,
            "success_after": qa.success,
            "full_acc": full.test_acc,
            "test_acc_before": b.test_acc,
            "test_acc_after": after.test_acc,
            "grad_cos_before": b.grad_cos,
            "grad_cos_after": after.grad_cos,
            "grad_abs_cos_after": after.grad_abs_cos,
        }
    ).reset_index()
    out["transfer_cut"] = 1 - out.transfer_after / out.transfer_before.clip(lower=1e-9)
    out["query_ratio"] = out.rmst_after / out.rmst_before.clip(lower=1)
    out["chance_abs_cos"] = chance_abs_cosine(int(np.prod(u.dims))) if u.dims else float("nan")
    gap = (out.full_acc - out.test_acc_after).groupby(out.arch).transform("mean")
    return out.assign(comparable=gap <= cfg.max_acc_gap)


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
    after unpairing at ``unpair_lambda``, and with no prior (``none``), failures counted at
    the cap."""
    key = ["arch", "seed", "input"]

    def col(q: pd.DataFrame, name: str) -> pd.Series:
        return counted(q).set_axis(pd.MultiIndex.from_frame(q[key])).rename(name)

    return pd.concat(
        [
            col(queries[queries.prior == cfg.unpair_sibling], "before"),
            col(u.queries[u.queries.lam == cfg.unpair_lambda], "after"),
            col(queries[queries.prior == "none"], "none"),
        ],
        axis=1,
    ).reset_index()


def paired_accuracy(u: Unpairing, cfg: Config) -> pd.DataFrame:
    """One row per (family, test example): the sibling correct ``before`` and ``after`` unpairing."""
    key = ["arch", "seed", "example"]
    b = u.accuracy[u.accuracy.lam.isna()].set_index(key).correct.rename("before")
    a = u.accuracy[u.accuracy.lam == cfg.unpair_lambda].set_index(key).correct.rename("after")
    return pd.concat([b, a], axis=1).reset_index()


def lambda_sweep(fam: Family, s: Splits, cfg: Config, progress: Progress = no_progress) -> pd.DataFrame:
    """The family's sibling unpaired at each of ``unpair_lambdas``: accuracy, similarity, transfer."""
    lams = progress(cfg.unpair_lambdas, desc="lambda sweep")
    rows = []
    for lam in lams:
        model = unpaired(fam, s, cfg, lam)
        rows.append(
            {
                **surrogate_row(
                    fam, cfg.unpair_sibling, model, s, transfer_outcomes(fam, cfg.unpair_sibling, model, cfg)
                ),
                "lam": lam,
            }
        )
    return pd.DataFrame(rows)


def recorded_metrics(
    full: pd.DataFrame,
    tr: pd.DataFrame,
    qsum: pd.DataFrame,
    cmp_: pd.DataFrame,
    sweep: pd.DataFrame,
    corr: dict[str, float],
) -> dict[str, Any]:
    """The metrics ``run.record`` stores in results.json: the full models' accuracy
    (:func:`full_table`), the transfer table, the query summary, the unpairing comparison,
    the lambda sweep (each rounded to 4 digits) and the similarity summary."""
    return {
        "full": full.to_dict("records"),
        "transfer": tr.round(4).to_dict("records"),
        "queries": qsum.round(4).to_dict("records"),
        "unpairing": cmp_.round(4).to_dict("records"),
        "lambda_sweep": sweep.round(4).to_dict("records"),
        "spearman": corr,
    }


# --- Claims ----------------------------------------------------------------------------------

#: The paper's own words for each claim (abstract, /work/shared/papers/ondevice_unpairing.md).
PAPER_WORDS = {
    "C1": "raised the large models' adversarial vulnerability by up to 100x, over 19 DNNs",
    "C2": "Vulnerability grows with the similarity between the full model and its sibling",
    "C3": "cut transferability by up to 90%",
    "C4": "raised the queries an attack needs by 10-100x",
}


def ratio_of_means(num: str, den: str, floor: str | float = "one input"):
    """The statistic mean(``num``) / mean(``den``) over the rows (pooled over seeds), the
    denominator floored at one input's share (``"one input"``: 1/rows) or at a number."""

    def stat(f: pd.DataFrame) -> float:
        lo = 1 / max(len(f), 1) if floor == "one input" else float(floor)
        return float(f[num].mean() / max(f[den].mean(), lo))

    return stat


def transfer_cut(f: pd.DataFrame) -> float:
    """Relative transfer cut 1 - mean(after) / mean(before), pooled over the rows."""
    return float(1 - f.after.mean() / max(f.before.mean(), 1e-9))


def comparable_pairs(tr: pd.DataFrame) -> list[tuple[str, str]]:
    """(architecture, sibling) pairs whose sibling keeps comparable accuracy (:func:`mark_comparable`)."""
    sib = sibling_rows(tr)
    return list(dict.fromkeys(zip(sib[sib.comparable].arch, sib[sib.comparable].surrogate)))


def best_pair(wide: pd.DataFrame, pairs: list[tuple[str, str]], statistic) -> tuple[tuple[str, str], dict]:
    """The pair with the largest point estimate of ``statistic(wide of its architecture, sibling)``
    (the "up to" reading: the best model, its interval then taken over trainings), and every
    pair's value."""
    values = {(a, n): statistic(wide[wide.arch == a], n) for a, n in pairs}
    return max(values, key=lambda pair: values[pair]), values


def useless_prior_ceiling(query_pairs: pd.DataFrame, cfg: Config) -> float:
    """The most unpairing can raise the restricted mean queries: to those of the no-prior
    attack (P-RGF gives a prior no better than chance zero weight, leaving RGF), each of its
    iterations one query dearer ((q + 2) / (q + 1), the prior's own query), at most the cap;
    over the sibling's restricted mean before unpairing."""
    before = max(float(query_pairs.before.mean()), 1.0)
    slowest = float(query_pairs.none.mean()) * (cfg.rgf_samples + 2) / (cfg.rgf_samples + 1)
    return min(slowest, float(cfg.query_cap)) / before


def _beside(c: Claim, text: str) -> Claim:
    """``c`` with ``text`` (a number reported beside, not deciding) added to its measured line."""
    c.measured = f"{c.measured}; {text}"
    return c


def _up_to_part(
    name: str,
    wide: pd.DataFrame,
    pairs: list[tuple[str, str]],
    ref: str,
    floor,
    threshold: float,
    unit: str,
    sibling_over_ref: bool,
):
    """The "up to" part of C1 / C1b: the best comparable pair's ratio (sibling over ``ref`` when
    ``sibling_over_ref``, else ``ref`` over sibling) pooled over seeds, its interval over
    trainings; its ceiling the largest white-box ratio over the pairs' architectures (what
    the best pair could reach); and the median over pairs beside."""

    def stat_for(n: str):
        return ratio_of_means(n, ref, floor) if sibling_over_ref else ratio_of_means(ref, n, floor)

    if not pairs:
        return results.not_measured(
            name,
            threshold=threshold,
            holds_when="above",
            unit=unit,
            why="no sibling within max_acc_gap of the full model",
        ), "no comparable pair"
    (arch, sib), values = best_pair(wide, pairs, lambda f, n: stat_for(n)(f))
    frame = wide[wide.arch == arch].reset_index(drop=True)
    ceiling = max(stat_for("white-box")(wide[wide.arch == a]) for a in dict.fromkeys(a for a, _ in pairs))
    part = results.part(
        f"{name}, best pair {arch} {sib}",
        frame,
        stat_for(sib),
        threshold=threshold,
        holds_when="above",
        unit=unit,
        ceiling=ceiling,
    )
    median = float(np.median(list(values.values())))
    return part, f"median over {len(values)} comparable pairs = {median:.3g} (not deciding)"


def c3_parts(tp: pd.DataFrame, ap: pd.DataFrame, cfg: Config) -> list:
    """C3's parts: the relative transfer cut of the architecture with the largest one (point
    estimate; "up to"), and the accuracy drop of that architecture's unpaired sibling."""
    cuts = {a: transfer_cut(g) for a, g in tp.groupby("arch", sort=False)}
    best = max(cuts, key=lambda a: cuts[a])
    return [
        results.part(
            f"transfer cut, best architecture {best}",
            tp[tp.arch == best].reset_index(drop=True),
            transfer_cut,
            threshold=cfg.c3_min_cut,
            holds_when="above",
            unit="attacked input",
        ),
        results.part(
            f"accuracy drop ({best})",
            ap[ap.arch == best].reset_index(drop=True),
            stats.mean_difference("before", "after"),
            threshold=cfg.c3_max_acc_drop,
            holds_when="below",
            unit="test example",
        ),
    ]


def c4_parts(qp: pd.DataFrame, archs: list[str], cfg: Config) -> list:
    """C4's parts ("every"): per architecture in ``archs`` (those whose unpaired sibling keeps
    comparable accuracy), restricted mean queries after over before unpairing, with
    :func:`useless_prior_ceiling`; a not-measured part when ``archs`` is empty."""
    if not archs:
        return [
            results.not_measured(
                "query ratio",
                threshold=cfg.c4_min_ratio,
                holds_when="above",
                unit="query-attacked input",
                why=f"no unpaired sibling within {100 * cfg.max_acc_gap:g} points of the full model's accuracy",
            )
        ]
    return [
        results.part(
            f"query ratio ({a})",
            qp[qp.arch == a].reset_index(drop=True),
            ratio_of_means("after", "before", 1.0),
            threshold=cfg.c4_min_ratio,
            holds_when="above",
            unit="query-attacked input",
            ceiling=useless_prior_ceiling(qp[qp.arch == a], cfg),
        )
        for a in archs
    ]


def claims(
    tr: pd.DataFrame,
    tr_inputs: pd.DataFrame,
    queries: pd.DataFrame,
    cmp_: pd.DataFrame,
    pairs: dict[str, pd.DataFrame],
    cfg: Config,
) -> list[Claim]:
    """C1, C1b, C2, C3 and C4 with their evidence, each resampled over seeds (the trainings
    of the full model, its siblings and surrogates) and then the units within a seed.

    C1 (up to): the best comparable (architecture, sibling) pair's transfer success over the
    independent surrogate's on the same attacked inputs, pooled over seeds; ceiling: the
    largest white-box success over the same floor among the pairs' architectures. C1b (up
    to): the best pair's restricted mean queries with the independent prior over those with
    the sibling's; ceiling: the same with the white-box prior. C2 (direction): Spearman's
    rho of gradient cosine with transfer across the siblings of one full model, averaged
    over architectures and seeds (the pooled rho beside). C3 (up to): the best
    architecture's relative transfer cut by unpairing, and the accuracy drop of that sibling
    (paired test examples). C4 (every): per architecture whose unpaired sibling keeps
    comparable accuracy, restricted mean queries after over before unpairing (paired
    inputs); ceiling: the no-prior attack's restricted mean over the sibling's before
    unpairing (:func:`useless_prior_ceiling`). Comparable accuracy: ``max_acc_gap``.
    """
    ok = comparable_pairs(tr)
    n_pairs = len(dict.fromkeys(zip(sibling_rows(tr).arch, sibling_rows(tr).surrogate)))
    apart = (
        f"{n_pairs - len(ok)} of {n_pairs} pairs more than {100 * cfg.max_acc_gap:g} points below it, reported apart"
    )
    c1, c1_beside = _up_to_part(
        "transfer ratio",
        per_input(tr_inputs, "surrogate", "fooled"),
        ok,
        "independent",
        "one input",
        cfg.c1_min_ratio,
        "attacked input",
        True,
    )
    c1b, c1b_beside = _up_to_part(
        "query ratio vs independent",
        query_inputs_wide(queries),
        ok,
        "independent",
        1.0,
        cfg.c1b_min_ratio,
        "query-attacked input",
        False,
    )
    sib = sibling_rows(tr)
    c2 = results.part(
        "Spearman rho within architecture",
        sib,
        within_spearman,
        threshold=cfg.c2_min_rho,
        holds_when="above",
        unit="sibling pair",
    )
    c3 = c3_parts(pairs["transfer_pairs"], pairs["accuracy_pairs"], cfg)
    c4 = c4_parts(pairs["query_pairs"], list(dict.fromkeys(cmp_[cmp_.comparable].arch)), cfg)
    lam, pen = f"{cfg.unpair_lambda:g}", cfg.unpair_penalty
    within = f"siblings within {100 * cfg.max_acc_gap:g} points of the full model's accuracy"
    return [
        _beside(
            results.claim(
                "C1",
                "PGD examples built on a sibling fool the full model far more often than those built on an "
                f"independent model: the best (architecture, sibling) pair's ratio lies above {cfg.c1_min_ratio:g} "
                f"({within}; {apart})",
                "up to 100x higher vulnerability over 19 DNNs",
                c1,
                quantifier="up to",
                paper_words=PAPER_WORDS["C1"],
            ),
            c1_beside,
        ),
        _beside(
            results.claim(
                "C1b",
                "The query attack with a sibling prior needs far fewer queries than with the independent "
                f"prior: the best pair's ratio of restricted mean queries lies above {cfg.c1b_min_ratio:g} ({within})",
                "up to 100x higher vulnerability (P-RGF-style attacks with a transfer prior)",
                c1b,
                quantifier="up to",
                paper_words=PAPER_WORDS["C1"],
            ),
            c1b_beside,
        ),
        _beside(
            results.claim(
                "C2",
                "Across the siblings of one full model, transfer success rises with input-gradient similarity "
                f"(Spearman rho within architecture above {cfg.c2_min_rho:g}; pooled over architectures beside)",
                "vulnerability grows with full-sibling similarity",
                c2,
                quantifier="direction",
                paper_words=PAPER_WORDS["C2"],
            ),
            f"pooled over architectures = {spearman(sib):.3g} (not deciding)",
        ),
        results.claim(
            "C3",
            f"Unpairing {cfg.unpair_sibling} (lambda = {lam}, penalty {pen}) cuts transfer success "
            f"by more than {cfg.c3_min_cut:.0%} on the best architecture, at less than "
            f"{100 * cfg.c3_max_acc_drop:g} points of sibling accuracy",
            "transferability cut by up to 90% (19 DNNs)",
            *c3,
            quantifier="up to",
            paper_words=PAPER_WORDS["C3"],
        ),
        results.claim(
            "C4",
            f"Unpairing {cfg.unpair_sibling} (lambda = {lam}, penalty {pen}) raises the restricted "
            f"mean queries of the prior-guided attack by more than {cfg.c4_min_ratio:g}x on every "
            f"architecture whose unpaired sibling stays within {100 * cfg.max_acc_gap:g} points of the "
            "full model's accuracy",
            "10-100x more queries",
            *c4,
            quantifier="every",
            paper_words=PAPER_WORDS["C4"],
        ),
    ]


# --- Figures ---------------------------------------------------------------------------------


def plot_transfer(df: pd.DataFrame):
    """Figure 1: transfer success on the full model per surrogate (mean over seeds; the
    white-box and no-prior references first), with the ratio to the independent surrogate
    written above each sibling's bar."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    archs = list(dict.fromkeys(df.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.6), squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs):
        d = df[df.arch == arch]
        order = list(dict.fromkeys(d.surrogate))
        sns.barplot(
            data=d,
            x="surrogate",
            y="transfer",
            hue="kind",
            order=order,
            dodge=False,
            errorbar=None,
            ax=ax,
            legend=ax is axes[0][-1],
        )
        means = d.groupby("surrogate").ratio.mean()
        for i, name in enumerate(order):
            if name not in REFERENCES:
                ax.text(
                    i, d[d.surrogate == name].transfer.mean() + 0.02, f"{means[name]:.1f}x", ha="center", fontsize=7
                )
        ax.set(ylim=(0, 1.1), xlabel="", ylabel="transfer success on full model", title=arch)
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    fig.tight_layout()
    return fig


def plot_survival(q: pd.DataFrame, priors: list[str] | None = None):
    """Figure 2: per architecture, the share of inputs still unbroken against the queries
    spent, one curve per prior (pooled over seeds; failures stay unbroken up to the cap)."""
    import matplotlib.pyplot as plt

    surv = survival(q if priors is None else q[q.prior.isin(priors)])
    archs = list(dict.fromkeys(surv.arch))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.2 * len(archs), 3.4), squeeze=False, sharey=True)
    for ax, arch in zip(axes[0], archs):
        for prior, d in surv[surv.arch == arch].groupby("prior", sort=False):
            ax.step(
                d.queries.clip(lower=1),
                d.unbroken,
                where="post",
                label=prior,
                lw=2 if prior in REFERENCES else 1,
                ls="--" if prior in REFERENCES else "-",
            )
        ax.set(xscale="log", ylim=(0, 1.02), xlabel="queries", ylabel="share of inputs unbroken", title=arch)
    axes[0][-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def plot_similarity(df: pd.DataFrame, rho: float, pooled: float):
    """Figure 3: input-gradient cosine vs transfer success, one point per (arch, seed, sibling)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(5.6, 4))
    sns.scatterplot(data=df, x="grad_cos", y="transfer", hue="arch", style="kind", s=60, ax=ax)
    for r in df.itertuples():
        ax.annotate(r.surrogate, (r.grad_cos, r.transfer), fontsize=6, xytext=(3, 2), textcoords="offset points")
    ax.set(
        xlabel="input-gradient cosine with the full model",
        ylabel="transfer success on full model",
        title=f"Spearman rho within architecture {rho:.2f}, pooled {pooled:.2f} (n = {len(df)})",
    )
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def plot_unpairing(u: pd.DataFrame):
    """Figure 4: transfer success, restricted mean queries and accuracy before vs after
    unpairing (means over seeds)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    u = u.groupby("arch", sort=False).mean(numeric_only=True).reset_index()
    x = np.arange(len(u))
    for ax, (col, label) in zip(
        axes,
        [("transfer", "transfer success"), ("rmst", "restricted mean queries"), ("test_acc", "sibling test accuracy")],
    ):
        ax.bar(x - 0.2, u[f"{col}_before"], 0.4, label="before")
        ax.bar(x + 0.2, u[f"{col}_after"], 0.4, label="after unpairing")
        ax.set(xticks=x, xticklabels=u.arch, title=label)
        if col == "rmst":
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
        ax.annotate(
            f"lambda={r.lam:g}", (r.transfer, r.test_acc), fontsize=8, xytext=(4, 3), textcoords="offset points"
        )
    ax.set(xlabel="transfer success on full model", ylabel="sibling test accuracy", title="Unpairing trade-off")
    return fig


def explore_surrogates(
    fam: Family, s: Splits, cfg: Config, bits: int, ratio: float, lam: float
) -> dict[str, nn.Module]:
    """For the explorer: a sibling by bit width and pruning ratio (pruned first, then
    quantized; 32 bits and ratio 0 give the full model's weights), the unpaired sibling at
    ``lam`` and the independent surrogate."""
    h = HYPERPARAMETERS
    base = (
        fam.full
        if ratio == 0
        else compression.pruned_sibling(
            fam.full, s, ratio, epochs=cfg.finetune_epochs, seed=fam.seed, lr=h["prune_finetune_lr"]
        )
    )
    sib = (
        compression.calibrate(compression.quantize_model(base, bits), s.owner.x[: h["calibration_images"]])
        if bits < 32
        else base
    )
    return {
        f"sibling q{bits} p{round(100 * ratio)}": sib,
        f"unpaired {cfg.unpair_sibling} lambda={lam:g}": unpaired(fam, s, cfg, lam),
        "independent": fam.independent,
    }


def plot_example(
    surrogates: dict[str, nn.Module], full: nn.Module, x: Tensor, y: Tensor, eps: float, steps: int, classes: list[str]
):
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
        row[0].set_title(
            f"{name}\nsurrogate: {classes[ps]}, full: {classes[pf]} (true {classes[int(y)]})",
            fontsize=8,
            color="firebrick" if pf != int(y) else "black",
        )
        row[1].imshow(delta, cmap="RdBu", vmin=-max(eps, 1e-6), vmax=max(eps, 1e-6))
        row[1].set_title(f"perturbation (eps = {eps:g})", fontsize=8)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


def explore(fams: list[Family], s: Splits, cfg: Config) -> None:
    """Widgets: a PGD example crafted on a sibling of the first family's full model (by bit
    width and pruning ratio), on its unpaired sibling at a lambda of the sweep and on the
    independent surrogate, for one attacked input at another ``eps`` (:func:`plot_example`)."""
    fam = fams[0]

    def draw(
        bits: int = cfg.quant_bits[0],
        ratio: float = 0.0,
        eps: float = cfg.eps,
        lam: float = cfg.unpair_lambdas[-1],
        index: int = 0,
    ) -> None:
        plot_example(
            explore_surrogates(fam, s, cfg, bits, ratio, lam),
            fam.full,
            fam.x[index : index + 1],
            fam.y[index : index + 1],
            eps,
            cfg.pgd_steps,
            s.classes,
        )

    widgets.explore(
        draw,
        bits=widgets.dropdown(sorted(set(cfg.quant_bits) | {32}, reverse=True), cfg.quant_bits[0], "bits"),
        ratio=widgets.dropdown([0.0, *cfg.prune_ratios], 0.0, "pruning ratio"),
        eps=widgets.slider(cfg.eps, 0.0, 0.5, 0.01, "eps"),
        lam=widgets.dropdown(list(cfg.unpair_lambdas), cfg.unpair_lambdas[-1], "lambda"),
        index=widgets.slider(0, 0, len(fam.y) - 1, 1, "input"),
    )
