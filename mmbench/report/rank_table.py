"""The leaderboard's across-data-sets section: mean ranks, their bootstrap spread, Friedman p, Nemenyi CD."""
from __future__ import annotations

from typing import Any, Dict, List

import pandas as pd
from tabulate import tabulate

from mmbench.report.ranks import critical_difference_data, rank_bootstrap, score_matrix


def rank_summary(agg: pd.DataFrame, pattern: str, metric: str) -> Dict[str, Any]:
    """JSON-ready ranks of one pattern and metric: per method mean rank and spread, CD, Friedman p."""
    scores = score_matrix(agg, pattern, metric)
    if scores.shape[0] < 2 or scores.shape[1] < 2:
        return {}
    summary = critical_difference_data(scores)
    spread = rank_bootstrap(scores)
    return {"pattern": pattern, "metric": metric, "datasets": list(scores.index), "cd": summary.cd,
            "friedman_p": summary.friedman_p, "methods": spread.to_dict(orient="records")}


def rank_section(agg: pd.DataFrame, pattern: str, metric: str, label: str) -> List[str]:
    """Markdown lines of the rank table (empty when fewer than 2 data sets or methods share the pattern)."""
    s = rank_summary(agg, pattern, metric)
    if not s:
        return []
    best = s["methods"][0]["mean_rank"]
    rows = [[r["method"], f"{r['mean_rank']:.2f}", f"[{r['rank_lo']:.2f}, {r['rank_hi']:.2f}]",
             "yes" if r["mean_rank"] - best <= s["cd"] else "no"] for r in s["methods"]]
    friedman = f"{s['friedman_p']:.3g}" if s["friedman_p"] == s["friedman_p"] else "n/a (needs 3 methods)"
    return [
        f"## Mean rank across data sets, {label}, pattern `{pattern}`",
        "",
        f"Methods ranked within each of the {len(s['datasets'])} data sets ({', '.join(s['datasets'])}) by "
        f"{label} (mean over seeds; 1 = best, ties averaged); only methods run on all of them. "
        "Spread: 2.5-97.5% of the mean rank "
        f"over 2000 resamples of the data sets. Friedman test p = {friedman}; Nemenyi critical difference "
        f"(alpha 0.05, Demšar 2006) CD = {s['cd']:.2f}: methods whose mean ranks differ by less are not "
        "distinguishable across data sets. Few data sets make CD large.",
        "",
        tabulate(rows, headers=["method", "mean rank", "spread (95%)", "within CD of the best"], tablefmt="github"),
        "",
    ]
