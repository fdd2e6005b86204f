""""Which method should I use?": the opening section of LEADERBOARD.md, generated from the numbers.

Per scenario (all modalities present; modalities missing at test; missing in training and test; cost)
it names the methods that are best or tied (the leaderboard's bold, family-wise 5% per data set) in
the most independent data-set groups, and their probability of being better than joint training from
the cross-data-set Bayesian comparison (only with enough independent groups). A group with several data
sets (the mfeat presets share their samples) counts as one: a method best or tied on one of its two
data sets gets half of it. :func:`recommendation` returns the Markdown section; the page renders it
first and the README quotes it.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from mmbench.data.registry import dataset_group
from mmbench.report.ranks import CONTROL, MIN_GROUPS

TITLE = "## Which method should I use?"
CHEAP = 1.5  # "cheap": a training step at most this many times joint training's
MAX_NAMED = 8


def _default_rows(agg: pd.DataFrame) -> pd.DataFrame:
    return agg[agg["overrides"].fillna("") == ""] if "overrides" in agg else agg


def group_counts(agg: pd.DataFrame, pattern: str, metric: str) -> Dict[str, Any]:
    """Per method, in how many independent groups it is best or tied (a group's share of its data sets).

    Returns ``{"counts": Series method -> groups (float), "n_groups": int, "n_datasets": int}``.
    """
    col = f"{metric}|best_or_tied"
    sub = _default_rows(agg)
    sub = sub[(sub.pattern == pattern)] if "pattern" in sub else sub.iloc[:0]
    if sub.empty or col not in sub:
        return {"counts": pd.Series(dtype=float), "n_groups": 0, "n_datasets": 0}
    sub = sub[sub[f"{metric}|mean"].notna()]
    datasets = sorted(sub.dataset.unique())
    size = pd.Series({d: sum(dataset_group(e) == dataset_group(d) for e in datasets) for d in datasets})
    marked = sub[sub[col].fillna(False).astype(bool)]
    counts = pd.Series({m: 0.0 for m in sorted(sub.method.unique())}, dtype=float)
    for m, d in zip(marked.method, marked.dataset):
        counts[m] += 1.0 / size[d]
    return {"counts": counts.sort_values(ascending=False), "n_groups": len({dataset_group(d) for d in datasets}),
            "n_datasets": len(datasets)}


def _by_mean(agg: pd.DataFrame, pattern: str, metric: str, methods) -> List[str]:
    """``methods`` ordered by their mean ``metric`` over the pattern's data sets, highest first."""
    sub = _default_rows(agg)
    mean = sub[sub.pattern == pattern].groupby("method")[f"{metric}|mean"].mean()
    return sorted(methods, key=lambda m: (-mean.get(m, float("-inf")), m))


def _fmt_groups(x: float) -> str:
    return f"{x:.0f}" if float(x).is_integer() else f"{x:.1f}"


def _names(methods: Sequence[str], extra: Dict[str, str]) -> str:
    named = [f"`{m}`{extra.get(m, '')}" for m in methods[:MAX_NAMED]]
    more = len(methods) - len(named)
    text = ", ".join(named[:-1]) + (" and " if len(named) > 1 else "") + named[-1] if named else "none"
    return text + (f" (and {more} more)" if more > 0 else "")


def _p_better(summary: Optional[Dict[str, Any]]) -> Dict[str, float]:
    if not summary or not summary.get("verdict"):
        return {}
    return {e["method"]: e["p_better"] for e in summary["methods"] if "p_better" in e}


def scenario_line(title: str, agg: pd.DataFrame, pattern: str, metric: str, what: str,
                  summary: Optional[Dict[str, Any]]) -> Optional[str]:
    """One bullet: the methods best or tied in the most groups for this pattern and metric."""
    g = group_counts(agg, pattern, metric)
    counts, n = g["counts"], g["n_groups"]
    if counts.empty or n == 0:
        return None
    top = counts.max()
    leaders = _by_mean(agg, pattern, metric, counts[counts == top].index)
    pb = _p_better(summary)
    extra = {m: f" (P(better than {CONTROL}) = {pb[m]:.2f})" for m in leaders if m in pb}
    line = (f"- **{title}** ({what}, pattern `{pattern}`, {g['n_datasets']} data sets in {n} independent groups): "
            f"{_names(leaders, extra)} {'is' if len(leaders) == 1 else 'are'} best or tied in "
            f"{_fmt_groups(top)} of {n} groups.")
    if CONTROL in counts.index and CONTROL not in leaders:
        line += f" `{CONTROL}` is best or tied in {_fmt_groups(counts[CONTROL])}."
    elif CONTROL in leaders and len(leaders) > 1:
        line += f" `{CONTROL}` is among them: these runs do not show any of them beating joint training there."
    if pb:
        sure = [m for m, p in sorted(pb.items(), key=lambda kv: -kv[1]) if p >= 0.95]
        line += (f" Across data sets, {_names(sure, {})} {'is' if len(sure) == 1 else 'are'} better than "
                 f"`{CONTROL}` with probability >= 0.95." if sure else
                 f" No method is better than `{CONTROL}` across data sets with probability >= 0.95.")
    elif summary is not None:
        line += (f" No cross-data-set probability: {summary.get('reason') or 'not computed'}.")
    return line


def cost_line(agg: pd.DataFrame, summary: Optional[Dict[str, Any]]) -> Optional[str]:
    """The cheap methods (step time <= CHEAP x joint's, median over data sets) best or tied in the most groups."""
    sub = _default_rows(agg)
    sub = sub[sub.pattern == "complete"] if "pattern" in sub else sub.iloc[:0]
    if sub.empty or "step_ms|mean" not in sub:
        return None
    base = sub[sub.method == CONTROL].set_index("dataset")["step_ms|mean"]
    if base.empty:
        return None
    ratio = (sub["step_ms|mean"] / sub.dataset.map(base)).groupby(sub.method).median().dropna()
    g = group_counts(agg, "complete", "test_acc")
    counts = g["counts"].reindex(ratio.index).dropna()
    cheap = counts[ratio.reindex(counts.index) <= CHEAP]
    if cheap.empty:
        return None
    top = cheap.max()
    leaders = sorted(cheap[cheap == top].index, key=lambda m: ratio[m])
    extra = {m: f" ({ratio[m]:.2f}x)" for m in leaders}
    return (f"- **If training cost matters** (median step time relative to `{CONTROL}` over the data sets, "
            f"at most {CHEAP:g}x): {_names(leaders, extra)} {'is' if len(leaders) == 1 else 'are'} best or tied "
            f"with all modalities present in {_fmt_groups(top)} of {g['n_groups']} groups. Step times are noisy "
            "(see Throughput); STEPTIME.md times them in interleaved rounds.")


def missing_patterns(agg: pd.DataFrame) -> List[str]:
    """The train-and-test missing patterns with the most cells (method x data set) in the suite, and
    ``natural`` where run: the robustness rates cover a few methods only and are left out."""
    if agg.empty or "pattern" not in agg:
        return []
    rows = _default_rows(agg)
    per = rows[rows.pattern != "complete"].groupby("pattern").size()
    if per.empty:
        return []
    return sorted(p for p, n in per.items() if n == per.max() or p == "natural")


def recommendation(agg: pd.DataFrame, summaries: Sequence[Dict[str, Any]] = ()) -> List[str]:
    """Markdown lines of the "Which method should I use?" section (the first section of LEADERBOARD.md)."""
    by = {(s["pattern"], s["metric"]): s for s in summaries if s}
    lines = [TITLE, "",
             "Generated from the tables below. *Best or tied* = the bold of the tables: not found worse than any "
             "other method on that data set, with a 5% family-wise error over all methods of the data set. A "
             "group of data sets that share samples counts once. Few seeds make ties common: a tie means these "
             "runs cannot tell the methods apart, not that they are equal.", ""]
    bullets = [
        scenario_line("All modalities present", agg, "complete", "test_acc", "fused test accuracy",
                      by.get(("complete", "test_acc"))),
        scenario_line("Modalities missing at test", agg, "complete", "subset_mean",
                      "trained on complete data, mean accuracy over the modality subsets at test",
                      by.get(("complete", "subset_mean"))),
    ]
    for p in missing_patterns(agg):
        bullets.append(scenario_line("Modalities missing in training and test", agg, p, "subset_mean",
                                     "mean accuracy over the modality subsets at test", by.get((p, "subset_mean"))))
    bullets.append(cost_line(agg, by.get(("complete", "test_acc"))))
    bullets = [b for b in bullets if b]
    if not bullets:
        return lines + ["_no finished runs with per-sample outcomes_", ""]
    groups = len({dataset_group(d) for d in agg.dataset.unique()}) if "dataset" in agg else 0
    if groups < MIN_GROUPS:
        bullets.append(f"- Across data sets: only {groups} independent groups, so no method is declared better "
                       f"than `{CONTROL}` across data sets (that needs at least {MIN_GROUPS}).")
    return lines + bullets + [""]
