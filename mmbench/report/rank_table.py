"""The leaderboard's across-data-sets section: exact mean ranks; with enough independent groups the
Friedman / Iman-Davenport test, every method against joint training (Holm) and the Bayesian comparison."""
from __future__ import annotations

from typing import Any, Dict, List

import pandas as pd
from tabulate import tabulate

from mmbench.report.ranks import ALPHA, MIN_GROUPS, ROPE, cross_dataset_summary


def rank_summary(agg: pd.DataFrame, pattern: str, metric: str, cache=None) -> Dict[str, Any]:
    """JSON-ready comparison across data sets of one pattern and metric (see :mod:`mmbench.report.ranks`);
    ``cache``: where the Bayesian comparisons of unchanged scores are read from."""
    return cross_dataset_summary(agg, pattern, metric, cache=cache)


def _verdict(entry: Dict[str, Any]) -> str:
    if "p_holm" not in entry:
        return "control"
    if entry["p_holm"] > ALPHA:
        return "not distinguishable"
    return "ranked above" if entry["z"] < 0 else "ranked below"


def rank_section(agg: pd.DataFrame, pattern: str, metric: str, label: str, summary: Dict[str, Any] = None) -> List[str]:
    """Markdown lines of the across-data-sets section (empty when no two methods share the data sets)."""
    s = summary if summary is not None else rank_summary(agg, pattern, metric)
    if not s:
        return []
    groups = "; ".join(f"{g}: {', '.join(ds)}" if len(ds) > 1 else g for g, ds in s["groups"].items())
    head = [f"## Across data sets, {label}, pattern `{pattern}`", ""]
    if not s["verdict"]:
        return head + [
            f"No cross-data-set verdict: {s['reason']}. Data sets that share samples count once "
            f"(groups: {groups}). With fewer than {MIN_GROUPS} independent blocks the Friedman test, the "
            "comparisons with joint training and the Bayesian signed-rank test have next to no power, and "
            "a ranking over them would read as a verdict the design does not support. The per-data-set "
            "tables above, with their best-or-tied marks, are what these runs show.", ""]
    rows = []
    for e in s["methods"]:
        rows.append([e["method"], f"{e['mean_rank']:.2f}", f"{100 * e.get('diff_vs_control', 0):+.1f}",
                     f"{e['z']:+.2f}" if "z" in e else "", f"{e['p_holm']:.3g}" if "p_holm" in e else "",
                     _verdict(e)] + ([f"{e['p_better']:.2f}", f"{e['p_equiv']:.2f}", f"{e['p_worse']:.2f}"]
                                     if "p_better" in e else ["", "", ""]))
    return head + [
        f"{len(s['datasets'])} data sets in {s['n_groups']} independent groups ({groups}); a group's score is "
        f"the mean of its data sets' {label} (mean over seeds), methods ranked within each group (1 = best, "
        "ties averaged exactly on the correct counts); only methods run on every data set. "
        f"Friedman chi2 = {s['friedman_chi2']:.2f}, Iman-Davenport F({s['df1']}, {s['df2']}) = "
        f"{s['iman_davenport_f']:.2f}, p = {s['friedman_p']:.3g}. Every method against `{s['control']}` "
        "(Demšar 2006, §3.2.2): z of the mean-rank difference, Holm-adjusted p over the comparisons "
        f"(family-wise 5%). Bayesian signed-rank test (baycomp) on the per-group differences with a "
        f"{ROPE:g}-point region of practical equivalence: P(better), P(equivalent), P(worse) than "
        f"`{s['control']}`.", "",
        tabulate(rows, headers=["method", "mean rank", f"Δ vs {s['control']} (points)", "z", "Holm p", "verdict",
                                "P(better)", "P(equiv.)", "P(worse)"], tablefmt="github", disable_numparse=True),
        ""]
