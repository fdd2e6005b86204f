"""Per-cell intervals and best-or-tied marks for the leaderboard, from the runs' per-sample outcomes.

Composes :func:`mmbench.report.intervals.cell_interval` (one cell's runs) and
:func:`mmbench.report.paired.best_or_tied` (the cells of one data set and pattern) over a frame of
runs. ``GROUP_KEYS`` is what makes a cell; change it in one place if cells gain keys (settings hash).
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

import numpy as np
import pandas as pd

from mmbench.report.intervals import CONFIDENCE, FUSED, MASKED, N_BOOT, SUBSET_MEAN, cell_interval
from mmbench.report.paired import ALPHA, best_or_tied
from mmbench.report.stats_cache import StatisticsCache, group_digest

GROUP_KEYS = ["method", "overrides", "dataset", "pattern", "settings"]  # a cell: identical resolved settings
COMPARE_KEYS = ["dataset", "pattern"]  # cells compared with one another
METRICS = (FUSED, SUBSET_MEAN, MASKED)


def _label(key):
    """A groupby key as a cell label: the bare value for one key (pandas gives a 1-tuple or a scalar)."""
    return key[0] if isinstance(key, tuple) and len(key) == 1 else key


def cell_statistics(runs: pd.DataFrame, metrics: Sequence[str] = METRICS, cache: Optional[StatisticsCache] = None,
                    progress: Optional[Callable[[int, int], None]] = None) -> pd.DataFrame:
    """One row per cell: ``<metric>|lo``, ``|hi``, ``|ci_level``, ``|best_or_tied``, ``|p_holm`` for each metric.

    Args:
        runs: finished runs (``status == "ok"``), one row each, with an ``outcomes`` column where stored.
        cache: where the statistics of unchanged groups are read from (see :mod:`mmbench.report.stats_cache`).
        progress: called with (groups done, groups in all) after each data set and pattern.
    """
    rows: List[dict] = []
    if runs.empty:
        return pd.DataFrame(columns=GROUP_KEYS)
    cache = cache or StatisticsCache()
    constants = {"n_boot": N_BOOT, "confidence": CONFIDENCE, "alpha": ALPHA}
    groups = list(runs.groupby(COMPARE_KEYS))
    for done, (_, group) in enumerate(groups, 1):
        rows += cache.get_or_compute(group_digest(group, metrics, constants),
                                     lambda group=group: _group_statistics(group, metrics))
        if progress:
            progress(done, len(groups))
    return pd.DataFrame(rows)


def _group_statistics(group: pd.DataFrame, metrics: Sequence[str]) -> List[dict]:
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
        marks = best_or_tied(cells, metric)
        for _, mark in marks.iterrows():
            per_method[mark.method].update({
                f"{metric}|best": bool(mark.best), f"{metric}|best_or_tied": bool(mark.best_or_tied),
                f"{metric}|p_holm": mark.p_holm, f"{metric}|paired_seeds": int(mark.paired_seeds),
            })
    return list(per_method.values())


STATISTICS_NOTE = (
    "Intervals: `[lo, hi]` after a cell is its 95% interval from a two-level bootstrap (2000 replicates): "
    "resample the seeds, then the test samples within each seed, from the per-sample outcomes each run stores; "
    "it counts both seed and test-set sampling (simulated coverage of the 95% interval: 97% when seeds agree, "
    "about 85% with 3 seeds whose accuracies differ by 4 points sd: too narrow when few seeds disagree). **Bold** = the best method of the data set and pattern or one "
    "indistinguishable from it: a paired two-level bootstrap of the per-sample differences on the same seeds, "
    "test samples and masks, Holm-corrected over the methods compared with the best (family-wise 5%). A paired "
    "bootstrap rather than McNemar pooled over seeds, because McNemar ignores the seed-to-seed variance of "
    "training (larger than most gaps here) and needs 0/1 outcomes, which the subset mean is not. "
    "† = some runs of the cell lack per-sample outcomes (older runs): its interval is over seeds only and it is "
    "not tested. `gap m` = accuracy of m trained alone (the `unimodal` run of the same seed) minus its probe in "
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
    """``mean ± std`` -> ``**mean ± std** [lo, hi]`` (bold: best or tied), ``†`` without per-sample outcomes."""
    if text in ("-", "") or f"{col}|ci_level" not in row or not isinstance(row.get(f"{col}|ci_level"), str):
        return text
    if isinstance(row.get(f"{col}|best_or_tied"), (bool, np.bool_)) and row.get(f"{col}|best_or_tied"):
        text = f"**{text}**"
    lo, hi = row.get(f"{col}|lo"), row.get(f"{col}|hi")
    if lo == lo and hi == hi and lo is not None:  # not NaN
        text += f" [{100 * lo:.1f}, {100 * hi:.1f}]"
    if row.get(f"{col}|ci_level") != "seeds+samples":
        text += " †"
    return text
