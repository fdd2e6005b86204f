"""Across data sets: exact mean ranks, Friedman with Iman-Davenport's F, every method against a control
under Holm, and a Bayesian signed-rank comparison with the control.

Only what the design supports (Demšar 2006, JMLR 7, §3.2.2; Benavoli et al. 2017, JMLR 18):

* **Independence groups.** Data sets that share samples (the mfeat presets are views of one set of
  digits) are one block, not several: :func:`mmbench.data.registry.dataset_group` names the group, and a
  group's score is the mean of its data sets' scores.
* **Exact ranks.** Scores are exact fractions of correct counts (``|num`` / ``|den`` columns of the
  aggregate, from the per-sample outcomes), so two methods with the same counts tie exactly (no last-bit
  float difference) and share the average rank, itself an exact fraction.
* **Friedman + Iman-Davenport.** Friedman's chi-square is a poor approximation with few blocks; Iman and
  Davenport's ``F = (N - 1) chi2 / (N (k - 1) - chi2)`` on ``(k - 1, (k - 1)(N - 1))`` df is the one
  Demšar recommends.
* **Against the control, not all pairs.** Nemenyi's all-pairs critical difference for 22 methods over 4
  blocks spans most of the rank range and can separate nothing; each method is compared with the control
  (joint training), ``z = (R_i - R_c) / sqrt(k (k + 1) / (6 N))``, Holm over the k - 1 comparisons.
* **Bayesian.** baycomp's signed-rank test (Benavoli et al. 2014) on the per-group score differences with a
  region of practical equivalence of :data:`ROPE` points: P(worse), P(equivalent), P(better) than the control.
* **Below** :data:`MIN_GROUPS` **independent groups no verdict** is given: the tests have next to no power and
  autorank refuses fewer than 5 data sets; the section says so instead.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from scipy import stats

from mmbench.data.registry import dataset_group
from mmbench.report.paired import cell_seed, holm

ALPHA = 0.05
MIN_GROUPS = 5
ROPE = 1.0  # points of accuracy: differences smaller than this are "equivalent" in practice
CONTROL = "joint"
BAYES_SAMPLES = 5_000  # Monte Carlo sd of a probability <= 0.007; baycomp loops in Python


def exact_ranks(scores: pd.DataFrame) -> pd.DataFrame:
    """Block x method scores (exact Fractions, higher is better) -> ranks (1 = best), ties averaged exactly."""
    out = []
    for _, row in scores.iterrows():
        values = list(row)
        ranked = {}
        for v in set(values):
            better = sum(1 for w in values if w > v)
            equal = sum(1 for w in values if w == v)
            ranked[v] = Fraction(2 * better + equal + 1, 2)  # mean of ranks better+1 .. better+equal
        out.append([ranked[v] for v in values])
    return pd.DataFrame(out, index=scores.index, columns=scores.columns)


def cell_fraction(row: pd.Series, metric: str) -> Optional[Fraction]:
    """A leaderboard cell's exact mean score: ``|num`` / ``|den`` where stored, else its float mean."""
    num, den = row.get(f"{metric}|num"), row.get(f"{metric}|den")
    if num is not None and den is not None and num == num and den == den and den:
        return Fraction(int(num), int(den))
    mean = row.get(f"{metric}|mean")
    return Fraction(float(mean)) if mean is not None and mean == mean else None


def score_matrix(agg: pd.DataFrame, pattern: str, metric: str) -> pd.DataFrame:
    """Data set x leaderboard row table of exact scores, rows run on every data set of the pattern."""
    sub = agg[agg.pattern == pattern] if "pattern" in agg else agg.iloc[:0]
    if sub.empty or f"{metric}|mean" not in sub:
        return pd.DataFrame()
    # one column per leaderboard row: runs with other settings (`arl [epochs=1]`) are other entries
    column = "row" if "row" in sub else "method"
    cells: Dict[str, Dict[str, Fraction]] = {}
    for _, r in sub.iterrows():
        value = cell_fraction(r, metric)
        if value is not None:
            cells.setdefault(r.dataset, {})[r[column]] = value
    table = pd.DataFrame(cells).T.sort_index()
    return table.dropna(axis=1, how="any") if not table.empty else table


def group_scores(scores: pd.DataFrame) -> pd.DataFrame:
    """Data set x method -> independence group x method: the exact mean over each group's data sets."""
    groups = pd.Series([dataset_group(d) for d in scores.index], index=scores.index)
    rows = {g: [sum(scores.loc[ds, c] for ds in members.index) / len(members) for c in scores.columns]
            for g, members in groups.groupby(groups)}
    return pd.DataFrame(rows, index=scores.columns).T.sort_index()


def friedman_iman_davenport(scores: pd.DataFrame) -> Dict[str, float]:
    """Friedman chi-square (tie-corrected, scipy) and Iman-Davenport's F with its p-value."""
    n, k = scores.shape
    chi2, _ = stats.friedmanchisquare(*[scores[c].astype(float).to_numpy() for c in scores.columns])
    df1, df2 = k - 1, (k - 1) * (n - 1)
    denom = n * (k - 1) - chi2
    f = (n - 1) * chi2 / denom if denom > 0 else math.inf
    p = float(stats.f.sf(f, df1, df2)) if math.isfinite(f) else 0.0
    return {"friedman_chi2": float(chi2), "iman_davenport_f": float(f), "df1": df1, "df2": df2, "friedman_p": p}


def control_comparisons(ranks: pd.DataFrame, control: str) -> pd.DataFrame:
    """Every method vs ``control`` (Demšar §3.2.2): z of the mean-rank difference, two-sided p, Holm."""
    n, k = ranks.shape
    mean = ranks.sum() / n  # Fractions: the sum over blocks divided by n stays exact
    se = math.sqrt(k * (k + 1) / (6.0 * n))
    others = [m for m in ranks.columns if m != control]
    z = np.array([float(mean[m] - mean[control]) / se for m in others])  # > 0: ranked below the control
    p = 2 * stats.norm.sf(np.abs(z))
    return pd.DataFrame({"method": others, "z": z, "p": p, "p_holm": holm(p)})


def bayes_vs_control(scores: pd.DataFrame, control: str, seed: int = 0, cache=None) -> pd.DataFrame:
    """P(worse), P(equivalent), P(better) than ``control`` per method: baycomp's Bayesian signed-rank test
    on the per-block scores in points, with a ROPE of :data:`ROPE` points.

    ``cache`` (a :class:`mmbench.report.stats_cache.StatisticsCache`): the probabilities are read from it
    when the same scores, control, seed and settings were compared before (baycomp's import and Monte Carlo
    cost about 4 s per table rebuild), else computed and kept there.
    """
    if cache is not None:
        from mmbench.report.stats_cache import bayes_digest

        digest = bayes_digest(scores, control, seed, {"rope": ROPE, "nsamples": BAYES_SAMPLES})
        return pd.DataFrame(cache.get_or_compute(digest, lambda: _bayes_rows(scores, control, seed)))
    return pd.DataFrame(_bayes_rows(scores, control, seed))


def _bayes_rows(scores: pd.DataFrame, control: str, seed: int) -> List[Dict[str, Any]]:
    import baycomp  # imported here: 2-3 s, only when a verdict is computed

    x = 100 * scores[control].astype(float).to_numpy()
    rows = []
    for m in scores.columns:
        if m == control:
            continue
        y = 100 * scores[m].astype(float).to_numpy()
        p_worse, p_equiv, p_better = baycomp.SignedRankTest.probs(x, y, rope=ROPE, nsamples=BAYES_SAMPLES,
                                                                  random_state=seed)
        rows.append({"method": m, "p_worse": float(p_worse), "p_equiv": float(p_equiv), "p_better": float(p_better)})
    return rows


def cross_dataset_summary(agg: pd.DataFrame, pattern: str, metric: str, control: str = CONTROL,
                          cache=None) -> Dict[str, Any]:
    """JSON-ready comparison across data sets of one pattern and metric ({} when nothing to compare).

    Always: data sets, their groups, exact mean ranks. With at least :data:`MIN_GROUPS` groups and the
    control present (``verdict`` True): Friedman / Iman-Davenport, control comparisons under Holm and the
    Bayesian probabilities; otherwise ``reason`` says why there is no verdict.
    """
    scores = score_matrix(agg, pattern, metric)
    if scores.shape[0] < 1 or scores.shape[1] < 2:
        return {}
    blocks = group_scores(scores)
    ranks = exact_ranks(blocks)
    mean = (ranks.sum() / len(ranks)).sort_values()
    groups = {g: [d for d in scores.index if dataset_group(d) == g] for g in blocks.index}
    out: Dict[str, Any] = {
        "pattern": pattern, "metric": metric, "datasets": list(scores.index), "groups": groups,
        "n_groups": len(blocks), "control": control, "verdict": False, "reason": None,
        "methods": [{"method": m, "mean_rank": float(r), "mean_rank_exact": str(r),
                     "mean_score": float(sum(blocks[m]) / len(blocks))} for m, r in mean.items()],
    }
    if len(blocks) < MIN_GROUPS:
        out["reason"] = (f"only {len(blocks)} independent data-set group(s) ({', '.join(blocks.index)}); "
                         f"a cross-data-set verdict needs at least {MIN_GROUPS}")
        return out
    if control not in blocks.columns or blocks.shape[1] < 3:
        out["reason"] = f"the control `{control}` or 3 methods are not on every data set"
        return out
    out.update(friedman_iman_davenport(blocks))
    vs = control_comparisons(ranks, control).set_index("method")
    bayes = bayes_vs_control(blocks, control, seed=cell_seed(pattern, metric, "bayes"), cache=cache).set_index("method")
    for entry in out["methods"]:
        m = entry["method"]
        entry["diff_vs_control"] = float(sum(blocks[m] - blocks[control]) / len(blocks))
        if m in vs.index:
            entry.update({k: float(vs.loc[m, k]) for k in ("z", "p", "p_holm")})
            entry.update({k: float(bayes.loc[m, k]) for k in ("p_worse", "p_equiv", "p_better")})
    out["verdict"] = True
    return out
