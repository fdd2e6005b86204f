"""95% intervals of a cell's accuracy that count both seed and test-sample sampling.

A cell is one (method, data set, pattern) group of runs that differ only in their seed. Its
accuracy varies with the training seed (initialisation, data order, masks) and with which test
samples happen to be in the test split. The two-level bootstrap resamples both: each replicate
draws S seeds with replacement, then, for each drawn seed, N test samples with replacement from
that seed's per-sample outcomes, and averages. The 2.5% and 97.5% percentiles of the replicate
means are the interval. ``scipy.stats.bootstrap`` resamples one level only (or pairs of equal-length
samples), so the nesting is written here; the percentiles are numpy's.

Per-sample scores come from the outcomes each run stores (:mod:`mmbench.engine.outcomes`). Runs
without them (older runs) give a seed-only interval, flagged by ``level == "seeds"``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from mmbench.engine.outcomes import unpack_correct

N_BOOT = 2000
CONFIDENCE = 0.95
MAX_INDICES = 4_000_000  # resampling indices drawn at once (32 MB)
MAX_DISTINCT = 256  # scores with at most this many distinct values are resampled through their counts

# Leaderboard metric -> how its per-sample score is built from the stored outcomes.
FUSED, MASKED, SUBSET_MEAN = "test_acc", "masked_test_acc", "subset_mean"


def sample_scores(outcomes: Optional[Dict[str, Any]], metric: str) -> Optional[np.ndarray]:
    """``[N]`` per-sample score of ``metric`` from one run's outcome record, or None if it has none.

    ``test_acc`` -> the fused prediction's 0/1 correctness; ``masked_test_acc`` -> that of the
    masked test; ``subset_mean`` -> each sample's fraction of modality subsets it is right under
    (its mean is the subset-mean accuracy); ``subset:<s>`` / ``uni:<m>`` -> that outcome.
    """
    if not isinstance(outcomes, dict) or "correct" not in outcomes:
        return None
    n, correct = int(outcomes["n"]), outcomes["correct"]
    if metric == SUBSET_MEAN:
        names = [k for k in correct if k.startswith("subset:")]
        if not names:
            return None
        return np.mean([unpack_correct(correct[k], n) for k in names], axis=0)
    name = {FUSED: "fused", MASKED: "masked"}.get(metric, metric)
    return unpack_correct(correct[name], n).astype(float) if name in correct else None


def two_level_bootstrap(per_seed: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0,
                        rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """``[n_boot]`` replicate means: resample seeds, then test samples within each drawn seed.

    Args:
        per_seed: S arrays ``[N_s]`` of per-sample scores (one per seed).
        n_boot: number of replicates.
        seed: seed of the resampling generator (the interval is reproducible), unless ``rng`` given.
    """
    rng = np.random.default_rng(seed) if rng is None else rng
    S = len(per_seed)
    seed_draw = rng.integers(0, S, size=(n_boot, S))  # [B, S] which seed fills each slot
    means = np.empty((n_boot, S))
    for s, scores in enumerate(per_seed):
        scores = np.asarray(scores, dtype=float)
        rows, cols = np.nonzero(seed_draw == s)  # every (replicate, slot) that drew seed s
        values, counts = np.unique(scores, return_counts=True)
        if len(values) <= MAX_DISTINCT:
            # N draws with replacement from scores taking V distinct values: how often each value is
            # drawn is Multinomial(N, counts / N), so the resample mean is (draw counts . values) / N,
            # the same distribution as averaging N drawn indices at O(V) instead of O(N) per replicate
            # (0/1 correctness: V = 2; a subset-mean fraction or a paired difference: a few dozen).
            drawn = _multinomial(rng, len(scores), counts / len(scores), len(rows))  # [R, V]
            means[rows, cols] = drawn @ values / len(scores)
            continue
        # in chunks, so a large test split never needs a [B*S, N] index array at once
        chunk = max(1, MAX_INDICES // max(1, len(scores)))
        for start in range(0, len(rows), chunk):
            r, c = rows[start:start + chunk], cols[start:start + chunk]
            idx = rng.integers(0, len(scores), size=(len(r), len(scores)))
            means[r, c] = scores[idx].mean(axis=1)
    return means.mean(axis=1)


def _multinomial(rng: np.random.Generator, n: int, p: np.ndarray, size: int) -> np.ndarray:
    """``[size, V]`` Multinomial(n, p) draws, one vectorised binomial per category.

    The conditional method: count_j ~ Binomial(n - drawn so far, p_j / (1 - p of the earlier
    categories)), exact, and V calls over ``size`` rows are far faster than ``rng.multinomial``'s
    per-row loop when V is small.
    """
    out = np.zeros((size, len(p)), dtype=np.int64)
    left = np.full(size, n, dtype=np.int64)
    mass_left = 1.0
    for j in range(len(p) - 1):
        share = min(1.0, p[j] / mass_left) if mass_left > 0 else 0.0
        out[:, j] = rng.binomial(left, share)
        left -= out[:, j]
        mass_left -= p[j]
    out[:, -1] = left
    return out


def seed_bootstrap(values: Sequence[float], n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """``[n_boot]`` replicate means resampling the seeds only (runs without per-sample outcomes)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    return values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)


def percentile_interval(replicates: np.ndarray, confidence: float = CONFIDENCE) -> tuple:
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(replicates, [tail, 100 - tail])
    return float(lo), float(hi)


def cell_interval(runs: pd.DataFrame, metric: str, n_boot: int = N_BOOT, seed: int = 0) -> Dict[str, Any]:
    """n, mean, std and the 95% interval of ``metric`` over the runs of ONE cell.

    Args:
        runs: one row per finished run of the cell (columns ``metric`` and, where stored,
            ``outcomes``: the run's outcome record).
    Returns:
        ``{"n", "mean", "std", "lo", "hi", "level"}`` with ``level`` = ``"seeds+samples"`` (every run
        has per-sample outcomes), ``"seeds"`` (some lack them: seed-only bootstrap) or ``"none"``.
    """
    values = runs[metric].dropna().astype(float) if metric in runs else pd.Series(dtype=float)
    out: Dict[str, Any] = {"n": int(len(values)), "mean": float(values.mean()) if len(values) else float("nan"),
                           "std": float(values.std()) if len(values) > 1 else float("nan"),
                           "lo": float("nan"), "hi": float("nan"), "level": "none"}
    if values.empty:
        return out
    scores: List[Optional[np.ndarray]] = [
        sample_scores(o, metric) for o in runs.loc[values.index, "outcomes"]
    ] if "outcomes" in runs else [None]
    if all(s is not None for s in scores):
        out["lo"], out["hi"] = percentile_interval(two_level_bootstrap(scores, n_boot, seed))
        out["level"] = "seeds+samples"
    elif len(values) > 1:
        out["lo"], out["hi"] = percentile_interval(seed_bootstrap(values.to_numpy(), n_boot, seed))
        out["level"] = "seeds"
    return out
