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

from collections.abc import Callable, Hashable

import numpy as np
import pandas as pd

BOOTSTRAP_SEED = 20_231_101
N_BOOT = 1000
LEVEL = 0.95

Statistic = Callable[[pd.DataFrame], float]


class RowMean:
    """A statistic that is the mean over rows of one value per row (NaN rows skipped).

    Called on a frame it returns that mean; :func:`bootstrap_ci` resamples the per-row
    values directly with NumPy instead of building a frame per resample.
    """

    def __init__(self, per_row: Callable[[pd.DataFrame], np.ndarray], name: str):
        self.per_row = per_row
        self.name = name

    def __call__(self, frame: pd.DataFrame) -> float:
        values = self.per_row(frame)
        return float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")

    def __repr__(self) -> str:
        return f"RowMean({self.name})"


def _resample_index(groups: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    picked = rng.integers(0, len(groups), size=len(groups))
    return np.concatenate([groups[g][rng.integers(0, len(groups[g]), size=len(groups[g]))] for g in picked])


def bootstrap_draws(
    frame: pd.DataFrame,
    statistic: Statistic,
    *,
    group: str | None = "seed",
    n_boot: int = N_BOOT,
    seed: int = BOOTSTRAP_SEED,
) -> np.ndarray:
    """The finite values of ``statistic`` on ``n_boot`` resamples of ``frame``.

    Two-stage when ``group`` names a column with several values: resample the groups
    (seeds) with replacement, then the rows within each drawn group. Resamples whose
    statistic is NaN (e.g. a class missing from a tiny resample) are dropped. Empty for an
    empty frame.
    """
    if len(frame) == 0:
        return np.empty(0)
    frame = frame.reset_index(drop=True)
    if group is not None and group in frame.columns and frame[group].nunique() > 1:
        groups = [np.asarray(ix) for ix in frame.groupby(group, sort=True).indices.values()]
    else:
        groups = [np.arange(len(frame))]
    rng = np.random.default_rng(seed)
    if isinstance(statistic, RowMean):
        draws = _row_mean_draws(np.asarray(statistic.per_row(frame), dtype=float), groups, n_boot, rng)
    else:
        draws = np.array([statistic(frame.iloc[_resample_index(groups, rng)]) for _ in range(n_boot)], dtype=float)
    return draws[np.isfinite(draws)]


def percentile_interval(draws: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap ``draws``; ``(nan, nan)``
    unless at least half of the ``n_boot`` resamples gave a finite value."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    if len(draws) == 0 or len(draws) < n_boot / 2:
        return float("nan"), float("nan")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(draws, [alpha, 1 - alpha])
    return float(lo), float(hi)


def familywise_level(k: int, level: float = LEVEL) -> float:
    """Bonferroni's per-part level for a claim of ``k`` parts: ``1 - (1 - level) / k``, so
    that all ``k`` intervals cover their quantities together with probability at least
    ``level`` (Dunn 1961)."""
    if k < 1:
        raise ValueError(f"a claim has at least one part, got k={k}")
    return 1 - (1 - level) / k


def bootstrap_ci(
    frame: pd.DataFrame,
    statistic: Statistic,
    *,
    group: str | None = "seed",
    n_boot: int = N_BOOT,
    level: float = LEVEL,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile interval of ``statistic(frame)`` at ``level`` from ``n_boot`` resamples
    (:func:`bootstrap_draws`, :func:`percentile_interval`); an interval needs at least half
    of the resamples finite. Returns ``(nan, nan)`` for an empty frame."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    draws = bootstrap_draws(frame, statistic, group=group, n_boot=n_boot, seed=seed)
    return percentile_interval(draws, level, n_boot)


def _row_mean_draws(values: np.ndarray, groups: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The two-stage resampling of :func:`bootstrap_ci`, vectorised for a mean of per-row
    values: each resample's mean is the sum over its drawn groups' resampled sums divided
    by their count of finite values."""
    picks = rng.integers(0, len(groups), size=(n_boot, len(groups)))
    sums, counts = np.zeros(picks.shape), np.zeros(picks.shape)
    for g, index in enumerate(groups):
        slots = picks == g
        drawn = values[index][rng.integers(0, len(index), size=(int(slots.sum()), len(index)))]
        finite = np.isfinite(drawn)
        sums[slots] = np.where(finite, drawn, 0.0).sum(axis=1)
        counts[slots] = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums.sum(axis=1) / counts.sum(axis=1)


def mean_of(column: str) -> RowMean:
    """The statistic 'mean of ``column``' (a rate when the column holds 0/1 outcomes)."""
    return RowMean(lambda f: f[column].to_numpy(dtype=float), column)


def mean_difference(a: Hashable, b: Hashable) -> RowMean:
    """Mean over rows of ``a - b``: a paired difference when each row is one unit measured
    both ways (a carrier scored on two copies, say). Rows missing either value are skipped."""
    return RowMean(lambda f: f[a].to_numpy(dtype=float) - f[b].to_numpy(dtype=float), f"{a} - {b}")
