"""95% intervals of a cell's accuracy under the benchmark's crossed design: seeds x test samples.

A cell is one (method, data set, pattern) group of runs that differ only in their seed. Every seed is
scored on the SAME test samples (one split per data set), so seeds and samples are crossed, not
nested: a hard sample is hard for every seed (per-sample correctness correlates 0.57-0.74 across
seeds in the committed runs). With ``x[s, n]`` the score of seed s on sample n, the two-way
random-effects model ``x = mu + a_s + b_n + e_sn`` gives the variance of the cell mean as

    Var(mean) = sigma_a^2 / S + sigma_b^2 / N + sigma_e^2 / (S N)
              = (MS_seed + MS_sample - MS_resid) / (S N)           (unbiased, ANOVA mean squares)

The interval is ``mean +- t_nu * sqrt(V)`` (on the logit scale, mapped back) with Satterthwaite's
degrees of freedom ``nu`` (dominated
by the S - 1 of the seed term: with 3 seeds the quantile is about 4, not 1.96, which is what keeps
coverage at 95% when seeds disagree). The sample part is clipped at zero when ``MS_sample <
MS_resid``. One seed: no seed variance can be estimated; the interval counts the test samples only
(``level == "samples"``) and says so. Runs without per-sample outcomes (older runs) give a seed-only
t interval (``level == "seeds"``).

Why not a bootstrap: resampling samples inside each seed (the old two-level bootstrap) treats the
seeds' shared test set as independent test sets and shrinks with every copy of a run; a crossed
bootstrap (:func:`crossed_bootstrap`, kept as the independent check) resamples the seeds' spread with
S - 1 of S of its variance and only C(2S-1, S) distinct seed draws (10 for 3 seeds), so its tails are
too short when seeds disagree. ``mmbench.report.simulate`` measures both on the real design.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from mmbench.engine.outcomes import unpack_correct

CONFIDENCE = 0.95

# Leaderboard metric -> how its per-sample score is built from the stored outcomes.
FUSED, MASKED, SUBSET_MEAN = "test_acc", "masked_test_acc", "subset_mean"

LEVEL_FULL, LEVEL_SAMPLES, LEVEL_SEEDS, LEVEL_NONE = "seeds+samples", "samples", "seeds", "none"


@lru_cache(maxsize=65_536)
def _bits(text: str, n: int) -> np.ndarray:
    """Unpacked outcome, cached: intervals, marks and exact counts each read every run (read-only)."""
    bits = unpack_correct(text, n)
    bits.setflags(write=False)
    return bits


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
        return np.mean([_bits(correct[k], n) for k in names], axis=0)
    name = {FUSED: "fused", MASKED: "masked"}.get(metric, metric)
    return _bits(correct[name], n).astype(float) if name in correct else None


def variance_parts(x: np.ndarray) -> Dict[str, float]:
    """ANOVA parts of a ``[S, N]`` score table (seeds x shared test samples).

    Returns ``mean``, ``seed`` (= MS_seed / (S N): the seed term's share of Var(mean), with the
    residual noise the seed means carry), ``sample`` (= max(MS_sample - MS_resid, 0) / (S N)),
    ``var`` (their sum: the estimate of Var(mean)) and ``df`` (Satterthwaite).
    """
    x = np.asarray(x, dtype=float)
    S, N = x.shape
    mean = float(x.mean())
    sample_dev = x.mean(axis=0) - mean  # [N]
    ms_sample = S * float(sample_dev @ sample_dev) / max(N - 1, 1)
    if S == 1:
        var = ms_sample / N
        return {"mean": mean, "seed": 0.0, "sample": var, "var": var, "df": float(max(N - 1, 1))}
    seed_dev = x.mean(axis=1) - mean  # [S]
    ms_seed = N * float(seed_dev @ seed_dev) / (S - 1)
    total = float(((x - mean) ** 2).sum())
    ms_resid = max(total - N * float(seed_dev @ seed_dev) - S * float(sample_dev @ sample_dev), 0.0) \
        / ((S - 1) * max(N - 1, 1))
    seed, sample = ms_seed / (S * N), max(ms_sample - ms_resid, 0.0) / (S * N)
    # Satterthwaite: V = sum_i c_i MS_i with df_i; nu = V^2 / sum_i (c_i MS_i)^2 / df_i
    terms = [(seed, S - 1)]
    if sample > 0:
        terms += [(ms_sample / (S * N), N - 1), (ms_resid / (S * N), (S - 1) * (N - 1))]
    var = seed + sample
    denom = sum(v * v / d for v, d in terms if d > 0)
    df = var * var / denom if denom > 0 else float(max(N - 1, 1))
    return {"mean": mean, "seed": seed, "sample": sample, "var": var, "df": float(df)}


def crossed_interval(x: np.ndarray, confidence: float = CONFIDENCE) -> tuple:
    """``(lo, hi)``: the Satterthwaite t interval of the mean of a ``[S, N]`` score table.

    Built on the logit scale (delta method: se / (m (1 - m))) and mapped back, so it stays in [0, 1]
    and is asymmetric near the ceiling, where a few errors make the mean's distribution skewed (in the
    simulation at 98% accuracy this lifts coverage from 86% to 90% with 3 seeds); at a mean of exactly
    0 or 1 the linear interval, clipped.
    """
    parts = variance_parts(x)
    q, m, se = float(stats.t.ppf(0.5 + confidence / 2, parts["df"])), parts["mean"], np.sqrt(parts["var"])
    if 0.0 < m < 1.0:
        centre, half = np.log(m / (1 - m)), q * se / (m * (1 - m))
        return float(1 / (1 + np.exp(-(centre - half)))), float(1 / (1 + np.exp(-(centre + half))))
    return max(0.0, m - q * se), min(1.0, m + q * se)


def crossed_bootstrap(x: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> np.ndarray:
    """``[n_boot]`` replicate means of a ``[S, N]`` table: seeds AND one set of samples drawn per replicate.

    Count weights: seeds ``c ~ Multinomial(S, 1/S)`` ``[B, S]``, samples ``w ~ Multinomial(N, 1/N)``
    ``[B, N]``; the replicate mean is ``c x w^T / (S N)``. The same sample draw applies to every drawn
    seed (the design's shared test set). The leaderboard's check of its intervals, not their source.
    """
    x = np.asarray(x, dtype=float)
    S, N = x.shape
    rng = np.random.default_rng(seed)
    out = np.empty(n_boot)
    for start in range(0, n_boot, 1000):
        b = min(1000, n_boot - start)
        c = rng.multinomial(S, np.full(S, 1.0 / S), size=b)  # [b, S]
        w = rng.multinomial(N, np.full(N, 1.0 / N), size=b)  # [b, N]
        out[start:start + b] = np.einsum("bs,sn,bn->b", c, x, w) / (S * N)
    return out


def seed_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple:
    """t interval over seed values only (runs without per-sample outcomes; needs 2 seeds)."""
    v = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(0.5 + confidence / 2, len(v) - 1)) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean() - half), float(v.mean() + half)


def score_table(runs: pd.DataFrame, metric: str) -> Optional[np.ndarray]:
    """``[S, N]`` per-sample scores of a cell's runs (one row per seed), or None when a run lacks
    outcomes or the runs were not scored on the same test samples."""
    if "outcomes" not in runs:
        return None
    recs = list(runs["outcomes"])
    scores = [sample_scores(r, metric) for r in recs]
    if not scores or any(s is None for s in scores):
        return None
    if len({len(s) for s in scores}) != 1 or len({r.get("test_ids_sha") for r in recs}) != 1:
        return None
    return np.stack(scores)


def cell_interval(runs: pd.DataFrame, metric: str) -> Dict[str, Any]:
    """n, mean, std and the 95% interval of ``metric`` over the runs of ONE cell.

    Args:
        runs: one row per finished run of the cell (columns ``metric`` and, where stored,
            ``outcomes``: the run's outcome record).
    Returns:
        ``{"n", "mean", "std", "lo", "hi", "level"}`` with ``level`` = ``"seeds+samples"`` (2+ seeds
        with per-sample outcomes on one test set), ``"samples"`` (one seed: test-sample variance only),
        ``"seeds"`` (some lack outcomes: seed-only interval) or ``"none"``.
    """
    values = runs[metric].dropna().astype(float) if metric in runs else pd.Series(dtype=float)
    out: Dict[str, Any] = {"n": int(len(values)), "mean": float(values.mean()) if len(values) else float("nan"),
                           "std": float(values.std()) if len(values) > 1 else float("nan"),
                           "lo": float("nan"), "hi": float("nan"), "level": LEVEL_NONE}
    if values.empty:
        return out
    table = score_table(runs.loc[values.index], metric)
    if table is not None:
        out["lo"], out["hi"] = crossed_interval(table)
        out["level"] = LEVEL_FULL if len(table) > 1 else LEVEL_SAMPLES
    elif len(values) > 1:
        out["lo"], out["hi"] = seed_interval(values.to_numpy())
        out["level"] = LEVEL_SEEDS
    return out


def interval_width_ratio(tables: List[np.ndarray], n_boot: int = 10_000, seed: int = 0) -> np.ndarray:
    """Width of the published interval over that of a crossed bootstrap, per ``[S, N]`` table."""
    ratios = []
    for i, x in enumerate(tables):
        lo, hi = crossed_interval(x)
        reps = crossed_bootstrap(x, n_boot, seed + i)
        blo, bhi = np.percentile(reps, [2.5, 97.5])
        ratios.append((hi - lo) / (bhi - blo) if bhi > blo else np.nan)
    return np.asarray(ratios)
