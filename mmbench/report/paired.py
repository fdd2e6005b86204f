"""Which methods are indistinguishable from the best one: a paired two-level bootstrap, Holm-corrected.

Test used, and why. For each data set and pattern, the best method (highest mean) is compared with
every other method on the SAME seeds, test samples and masks (pairing removes the variance the two
share: hard test samples, the seed's masks). The statistic is the mean per-sample difference of the
two runs' scores. Its null distribution comes from a paired two-level bootstrap: resample seeds, then
test samples within each seed, with the same draws for both methods, and centre the replicates on
the observed difference; the two-sided p-value is the share of centred replicates at least as far
from zero as the observed difference. We use it rather than an exact McNemar test pooled over seeds
because (1) McNemar treats the seeds' test predictions as independent trials and so ignores the
seed-to-seed variance of training, which moves cells of this leaderboard by up to 2.5 points on a
retrain, and (2) it only applies to 0/1 outcomes, while the subset-mean metric of the missing
patterns is a per-sample fraction. The p-values of the k-1 comparisons of a cell are Holm-corrected
(family-wise error 5% over the methods compared with the best); a method whose corrected p is above
0.05 is "tied" with the best. With few seeds the bootstrap over seeds understates the seed variance
(by (S-1)/S), so a tie is the honest reading and a difference found with 3 seeds is a lead, not a law.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from mmbench.engine.outcomes import OUTCOMES_VERSION  # noqa: F401  (the record layout this reads)
from mmbench.report.intervals import N_BOOT, sample_scores, two_level_bootstrap

ALPHA = 0.05


def paired_bootstrap_p(diffs: Sequence[np.ndarray], n_boot: int = N_BOOT, seed: int = 0) -> float:
    """Two-sided p-value of "mean difference = 0" from per-seed ``[N_s]`` per-sample differences."""
    diffs = [np.asarray(d, dtype=float) for d in diffs]
    observed = float(np.mean([d.mean() for d in diffs]))
    # the same draws for both methods: resampling the per-sample differences is the paired bootstrap
    centred = two_level_bootstrap(diffs, n_boot, seed) - observed
    if np.all(centred == 0) and observed == 0:
        return 1.0
    # +1 in numerator and denominator: a p-value is never exactly 0 from finitely many replicates.
    return float((np.sum(np.abs(centred) >= abs(observed) - 1e-12) + 1) / (n_boot + 1))


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.nonzero(~np.isnan(p))[0]
    order = valid[np.argsort(p[valid])]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))  # monotone step-down
        out[i] = running
    return out


def _paired_scores(best: pd.DataFrame, other: pd.DataFrame, metric: str) -> Optional[List[np.ndarray]]:
    """Per-seed differences best - other on the seeds both have, when split and masks match."""
    diffs = []
    for _, b in best.iterrows():
        match = other[other.seed == b.seed]
        if match.empty:
            continue
        o = match.iloc[0]
        rb, ro = b.get("outcomes"), o.get("outcomes")
        sb, so = sample_scores(rb, metric), sample_scores(ro, metric)
        if sb is None or so is None or len(sb) != len(so):
            return None
        same = all(rb.get(k) == ro.get(k) for k in ("test_ids_sha", "mask_seed", "test_mask_sha"))
        if not same:
            return None  # different split or masks: no sample-by-sample comparison
        diffs.append(sb - so)
    return diffs or None


def best_or_tied(cells: Dict[str, pd.DataFrame], metric: str, alpha: float = ALPHA,
                 n_boot: int = N_BOOT) -> pd.DataFrame:
    """Mark the best method of one data set and pattern and those indistinguishable from it.

    Args:
        cells: method -> that method's runs in this data set and pattern (ONE cell each; columns
            ``seed``, ``metric``, ``outcomes``).
        metric: ``test_acc``, ``masked_test_acc``, ``subset_mean`` or an outcome name.
    Returns:
        one row per method: ``method``, ``best`` (bool), ``p`` (raw paired-bootstrap p against the
        best), ``p_holm``, ``best_or_tied`` (best, or Holm-corrected p > alpha; False when untestable,
        and False for every method when the best cell lacks per-sample outcomes),
        ``paired_seeds`` (seeds compared; 0 = no per-sample outcomes to pair on).
    """
    means = {m: float(r[metric].mean()) for m, r in cells.items() if metric in r and r[metric].notna().any()}
    if not means:
        return pd.DataFrame(columns=["method", "best", "p", "p_holm", "best_or_tied", "paired_seeds"])
    best = max(means, key=means.get)
    rows = []
    for method in sorted(means):
        if method == best:
            rows.append({"method": method, "best": True, "p": np.nan, "paired_seeds": len(cells[method])})
            continue
        diffs = _paired_scores(cells[best], cells[method], metric)
        p = paired_bootstrap_p(diffs, n_boot) if diffs else np.nan
        rows.append({"method": method, "best": False, "p": p, "paired_seeds": len(diffs) if diffs else 0})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p"].to_numpy())
    table["best_or_tied"] = table["best"] | (table["p_holm"] > alpha)
    if not all(sample_scores(o, metric) is not None for o in cells[best].get("outcomes", [None])):
        # the best cell's runs lack per-sample outcomes (older runs): nothing can be tested, mark nothing
        table["best_or_tied"] = False
    return table
