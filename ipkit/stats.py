"""Intervals for the quantities that decide a claim: a seeded two-stage bootstrap.

A study's independent units are nested: seeds (a victim, a query set, a set of copies per
seed) and, within a seed, the examples a number averages over (carriers, attacked inputs,
model pairs). :func:`bootstrap_ci` resamples both levels, as in the hierarchical bootstrap
of Davison & Hinkley (1997, sec. 3.8): first the seeds with replacement, then the rows of
each drawn seed with replacement, and evaluates the statistic on the pooled resample. With
one seed, or ``group=None``, it is the ordinary percentile bootstrap over rows (Efron &
Tibshirani 1993, ch. 13). The statistic sees a resampled frame with the same columns, so a
paired quantity (a difference of two methods on the same carriers) stays paired.

The bootstrap draws from its own generator (:data:`BOOTSTRAP_SEED`), so an interval is a
pure function of its inputs and the global RNG is left alone.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

BOOTSTRAP_SEED = 20_231_101
N_BOOT = 1000
LEVEL = 0.95

Statistic = Callable[[pd.DataFrame], float]


def _resample_index(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    picked = rng.integers(0, len(groups), size=len(groups))
    return np.concatenate([groups[g][rng.integers(0, len(groups[g]), size=len(groups[g]))]
                           for g in picked])


def bootstrap_ci(frame: pd.DataFrame, statistic: Statistic, *, group: str | None = "seed",
                 n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile interval of ``statistic(frame)`` at ``level`` from ``n_boot`` resamples.

    Two-stage when ``group`` names a column with several values: resample the groups
    (seeds) with replacement, then the rows within each drawn group. Resamples whose
    statistic is NaN (e.g. a class missing from a tiny resample) are dropped; an interval
    needs at least half of them. Returns ``(nan, nan)`` for an empty frame.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if len(frame) == 0:
        return float("nan"), float("nan")
    frame = frame.reset_index(drop=True)
    if group is not None and group in frame.columns and frame[group].nunique() > 1:
        groups = [np.asarray(ix) for ix in frame.groupby(group, sort=True).indices.values()]
    else:
        groups = [np.arange(len(frame))]
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(frame.iloc[_resample_index(groups, rng)]) for _ in range(n_boot)],
                     dtype=float)
    draws = draws[np.isfinite(draws)]
    if len(draws) < n_boot / 2:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(lo), float(hi)


def mean_of(column: str) -> Statistic:
    """The statistic 'mean of ``column``' (a rate when the column holds 0/1 outcomes)."""
    return lambda f: float(f[column].mean())


def mean_difference(a: str, b: str) -> Statistic:
    """Mean of column ``a`` minus mean of column ``b``: a paired difference when each row is
    one unit measured both ways (a carrier scored on two copies, say)."""
    return lambda f: float(f[a].mean() - f[b].mean())
