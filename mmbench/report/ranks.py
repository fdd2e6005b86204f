"""Across data sets: mean rank per method, its bootstrap spread, Friedman test, Nemenyi critical difference.

The usual multi-data-set comparison of Demšar (2006, JMLR 7, "Statistical comparisons of
classifiers over multiple data sets"): rank the k methods within each of the N data sets (1 = best,
ties share the average rank), average the ranks per method, test "all methods are equivalent" with
the Friedman test, and call two methods different when their mean ranks differ by more than the
Nemenyi critical difference ``CD = q_alpha * sqrt(k (k + 1) / (6 N))``, where ``q_alpha`` is the
studentized range quantile for k groups and infinite degrees of freedom divided by sqrt(2).

:func:`critical_difference_data` returns what a CD diagram needs (mean ranks, CD, Friedman p).
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.05
N_BOOT = 2000


class RankSummary(NamedTuple):
    """What a critical-difference diagram draws.

    Attributes:
        mean_ranks: method -> mean rank over the data sets (1 = best), ascending.
        cd: Nemenyi critical difference at ``alpha`` (NaN below 2 methods or 1 data set).
        friedman_p: p-value of the Friedman test (NaN below 3 methods or 2 data sets).
    """

    mean_ranks: pd.Series
    cd: float
    friedman_p: float


def ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Data set x method scores (higher is better) -> ranks within each data set (1 = best, ties averaged)."""
    ranked = [stats.rankdata(-row, method="average") for row in scores.to_numpy()]
    return pd.DataFrame(ranked, index=scores.index, columns=scores.columns)


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    """``q_alpha`` of the Nemenyi test for k methods (Demšar's table: k=2 1.960, k=3 2.343, k=4 2.569)."""
    return float(stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def nemenyi_cd(k: int, n_datasets: int, alpha: float = ALPHA) -> float:
    """Critical difference of mean ranks for k methods over ``n_datasets`` data sets."""
    if k < 2 or n_datasets < 1:
        return float("nan")
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n_datasets))


def friedman_p(scores: pd.DataFrame) -> float:
    """Friedman test p-value over data sets (rows) and methods (columns); NaN when it is undefined."""
    if scores.shape[1] < 3 or scores.shape[0] < 2:
        return float("nan")
    _, p = stats.friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
    return float(p)


def critical_difference_data(scores: pd.DataFrame, alpha: float = ALPHA) -> RankSummary:
    """``(mean ranks, CD, Friedman p)`` of a complete data set x method score table (no NaN)."""
    scores = scores.dropna(axis=1, how="any")
    mean_ranks = ranks(scores).mean().sort_values()
    return RankSummary(mean_ranks, nemenyi_cd(scores.shape[1], scores.shape[0], alpha), friedman_p(scores))


def rank_bootstrap(scores: pd.DataFrame, n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """Spread of each method's mean rank: resample the data sets with replacement.

    Returns one row per method: ``mean_rank``, ``rank_lo``, ``rank_hi`` (2.5% / 97.5% percentiles of
    the replicate mean ranks). With few data sets the spread is coarse (few distinct resamples).
    """
    scores = scores.dropna(axis=1, how="any")
    r = ranks(scores).to_numpy()  # [N, k]
    rng = np.random.default_rng(seed)
    reps = r[rng.integers(0, len(r), size=(n_boot, len(r)))].mean(axis=1)  # [B, k]
    lo, hi = np.percentile(reps, [2.5, 97.5], axis=0)
    return pd.DataFrame({"method": scores.columns, "mean_rank": r.mean(axis=0), "rank_lo": lo, "rank_hi": hi}) \
        .sort_values("mean_rank").reset_index(drop=True)


def score_matrix(agg: pd.DataFrame, pattern: str, metric: str) -> pd.DataFrame:
    """Data set x method table of ``metric|mean`` from an aggregate frame, methods present on every data set."""
    sub = agg[agg.pattern == pattern]
    if sub.empty or f"{metric}|mean" not in sub:
        return pd.DataFrame()
    # one column per leaderboard row: runs with other settings (`arl [epochs=1]`) are other entries,
    # never averaged into the method's own
    column = "row" if "row" in sub else "method"
    table = sub.pivot_table(index="dataset", columns=column, values=f"{metric}|mean", aggfunc="mean")
    return table.dropna(axis=1, how="any")
