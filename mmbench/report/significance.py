"""Per-cell intervals and best-or-tied marks for the leaderboard, from the runs' per-sample outcomes.

Composes :func:`mmbench.report.intervals.cell_interval` (one cell's runs) and
:func:`mmbench.report.paired.best_or_tied` (the cells of one data set and pattern) over a frame of
runs. ``GROUP_KEYS`` is what makes a cell; change it in one place if cells gain keys (settings hash).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable, List, Optional, Sequence

import numpy as np
import pandas as pd

from mmbench.report.intervals import (CONFIDENCE, FUSED, LEVEL_FULL, LEVEL_SAMPLES, MASKED, SUBSET_MEAN,
                                      cell_interval, sample_scores)
from mmbench.report.paired import ALPHA, MAX_BOOT, N_BOOT, best_or_tied, cell_seed
from mmbench.report.stats_cache import StatisticsCache, group_digest

GROUP_KEYS = ["method", "overrides", "dataset", "pattern", "settings"]  # a cell: identical resolved settings
COMPARE_KEYS = ["dataset", "pattern"]  # cells compared with one another
METRICS = (FUSED, SUBSET_MEAN, MASKED)


def _label(key):
    """A groupby key as a cell label: the bare value for one key (pandas gives a 1-tuple or a scalar)."""
    return key[0] if isinstance(key, tuple) and len(key) == 1 else key


def exact_mean(cell: pd.DataFrame, metric: str) -> Optional[Fraction]:
    """The cell's mean ``metric`` over its runs as an exact fraction of correct counts (None without
    per-sample outcomes): what the ranks compare, so equal counts tie exactly."""
    if "outcomes" not in cell or metric not in cell:
        return None
    parts = []
    for rec, value in zip(cell["outcomes"], cell[metric]):
        if value is None or value != value:
            continue
        scores = sample_scores(rec, metric)
        if scores is None:
            return None
        # subset_mean: each sample's score is (subsets right) / (subsets), so the count is an integer
        per = sum(k.startswith("subset:") for k in rec["correct"]) if metric == SUBSET_MEAN else 1
        parts.append(Fraction(int(round(float(scores.sum()) * per)), len(scores) * per))
    return sum(parts) / len(parts) if parts else None


def cell_statistics(runs: pd.DataFrame, metrics: Sequence[str] = METRICS, cache: Optional[StatisticsCache] = None,
                    progress: Optional[Callable[[int, int], None]] = None) -> pd.DataFrame:
    """One row per cell; for each metric: ``|lo``, ``|hi``, ``|ci_level`` (the interval), ``|best``,
    ``|best_or_tied``, ``|p_adj``, ``|compared``, ``|mc_flag``, ``|paired_seeds`` (the marks) and
    ``|boot_seed``, ``|n_boot`` (the comparison's bootstrap seed and replicates), ``|num`` / ``|den``
    (the exact mean as a fraction of correct counts). Each data set and pattern's rows are computed once
    per distinct input and kept in ``cache`` (:mod:`mmbench.report.stats_cache`).

    Args:
        runs: finished runs (``status == "ok"``), one row each, with an ``outcomes`` column where stored.
        cache: where the statistics of unchanged groups are read from (see :mod:`mmbench.report.stats_cache`).
        progress: called with (groups done, groups in all) after each data set and pattern.
    """
    rows: List[dict] = []
    if runs.empty:
        return pd.DataFrame(columns=GROUP_KEYS)
    cache = cache or StatisticsCache()
    constants = {"n_boot": N_BOOT, "max_boot": MAX_BOOT, "confidence": CONFIDENCE, "alpha": ALPHA}
    groups = list(runs.groupby(COMPARE_KEYS))
    for done, ((dataset, pattern), group) in enumerate(groups, 1):
        rows += cache.get_or_compute(group_digest(group, metrics, constants),
                                     lambda group=group, d=dataset, p=pattern: _group_statistics(group, d, p, metrics))
        if progress:
            progress(done, len(groups))
    return pd.DataFrame(rows)


def _group_statistics(group: pd.DataFrame, dataset, pattern, metrics: Sequence[str]) -> List[dict]:
    """The rows of :func:`cell_statistics` for the cells of one data set and pattern."""
    cell_keys = [k for k in GROUP_KEYS if k not in COMPARE_KEYS]  # what tells the cells of a comparison apart
    # cell label -> its runs; the label is the method name while a cell is (method, dataset, pattern)
    cells = {_label(lab): r for lab, r in group.groupby(cell_keys)}
    per_method = {lab: {k: cell[k].iloc[0] for k in GROUP_KEYS} for lab, cell in cells.items()}
    for metric in metrics:
        if metric not in group or group[metric].isna().all():
            continue
        for method, cell in cells.items():
            ci = cell_interval(cell, metric)
            per_method[method].update(
                {f"{metric}|lo": ci["lo"], f"{metric}|hi": ci["hi"], f"{metric}|ci_level": ci["level"]})
            exact = exact_mean(cell, metric)
            if exact is not None:  # numerator and denominator: exact ranks, exact ties
                per_method[method].update({f"{metric}|num": exact.numerator, f"{metric}|den": exact.denominator})
        seed = cell_seed(str(dataset), str(pattern), metric)
        marks, info = best_or_tied(cells, metric, seed=seed)
        for mark in marks.itertuples():
            per_method[mark.method].update({
                f"{metric}|best": bool(mark.best), f"{metric}|best_or_tied": bool(mark.best_or_tied),
                f"{metric}|p_adj": mark.p_adj, f"{metric}|compared": bool(mark.compared),
                f"{metric}|mc_flag": bool(mark.mc_flag), f"{metric}|paired_seeds": int(mark.paired_seeds),
                f"{metric}|boot_seed": info["seed"], f"{metric}|n_boot": info["n_boot"],
            })
    return list(per_method.values())


STATISTICS_NOTE = (
    "Intervals: `[lo, hi]` after a cell is its 95% interval for the crossed design: every seed is scored on the "
    "same test samples, so the variance of the mean is estimated from the seeds x samples table (two-way "
    "random effects, ANOVA mean squares) and the interval is a t interval (on the logit scale) with "
    "Satterthwaite's degrees of freedom (about S - 1 when the seeds disagree: with 3 seeds the half-width is "
    "about 4 standard errors). "
    "A cell with one seed (`¹`) has a test-sample-only interval: it holds no seed variance. **Bold** = best or "
    "tied: not found worse than any other method of the data set and pattern, all methods compared at once on "
    "the same seeds, test samples and masks (studentized max-T over every pair of methods, Westfall-Young "
    "step-down, null drawn from the crossed design with the variances drawn from their posterior and each method's "
    "seed variance re-estimated per draw; "
    f"at least {N_BOOT} draws, more until every mark is resolved; the draws' seed is derived from the data "
    "set, pattern and metric and recorded in LEADERBOARD.json). The family-wise error is 5% over the whole "
    "cell, whichever method is truly best: the best is picked from the data, so comparing the others with it "
    "one by one would not control it. `≈` = the mark is within Monte Carlo error of the 5% threshold "
    "(it could flip with the bootstrap seed). `‡` = not compared: no per-sample outcomes, or another split, "
    "other masks or other seeds than the rest (not a sign of being worse). "
    "† = some runs of the cell lack per-sample outcomes (older runs): its interval is over seeds only. "
    "`gap m` = accuracy of m trained alone (the `unimodal` run of the same seed) minus its probe in "
    "the multimodal model (positive = under-optimised); `shapley m` = m's Shapley value over the all-subsets "
    "evaluation with chance accuracy for the empty set (they sum to the full set's gain over chance)."
)


def attach_statistics(agg: pd.DataFrame, runs: pd.DataFrame, cache: Optional[StatisticsCache] = None,
                      progress: Optional[Callable[[int, int], None]] = None) -> pd.DataFrame:
    """``agg`` (one row per cell) with the columns of :func:`cell_statistics` merged on :data:`GROUP_KEYS`."""
    if agg.empty or runs.empty:
        return agg
    stats = cell_statistics(runs[runs.status == "ok"], cache=cache, progress=progress)
    return agg.merge(stats, on=GROUP_KEYS, how="left") if not stats.empty else agg


def decorate_cell(text: str, row, col: str) -> str:
    """``mean ± std`` -> ``**mean ± std** [lo, hi]`` (bold: best or tied), with the marks of the note:
    ``≈`` within Monte Carlo error, ``‡`` not compared, ``¹`` one seed, ``†`` without per-sample outcomes."""
    if text in ("-", "") or f"{col}|ci_level" not in row or not isinstance(row.get(f"{col}|ci_level"), str):
        return text
    if isinstance(row.get(f"{col}|best_or_tied"), (bool, np.bool_)) and row.get(f"{col}|best_or_tied"):
        text = f"**{text}**"
    lo, hi = row.get(f"{col}|lo"), row.get(f"{col}|hi")
    if lo == lo and hi == hi and lo is not None:  # not NaN
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    compared = row.get(f"{col}|compared")
    if isinstance(compared, (bool, np.bool_)):
        if not compared:
            text += " ‡"
        elif isinstance(row.get(f"{col}|mc_flag"), (bool, np.bool_)) and row.get(f"{col}|mc_flag"):
            text += " ≈"
    level = row.get(f"{col}|ci_level")
    if level == LEVEL_SAMPLES:
        text += " ¹"
    elif level != LEVEL_FULL:
        text += " †"
    return text
