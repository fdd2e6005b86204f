"""Coefficient traces of balancing methods (OGM-GE's k, ARL's w, AGM's k, MSLR's lr multipliers, MLA's gate, ...).

Each run's history holds, per epoch, the epoch means of what its method logged through
:meth:`mmbench.methods.base.Method.log_coefficients`. Here they are averaged over the seeds of a cell
(epoch by epoch) for the JSON, and summarised at the first, middle and last epoch for the Markdown.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd
from tabulate import tabulate


def history_coefficients(history: List[Dict[str, Any]]) -> Optional[List[Dict[str, float]]]:
    """Per-epoch coefficient dicts of one run's history, or None when its method logs none."""
    traces = [h.get("coefficients", {}) for h in history or []]
    return traces if any(traces) else None


def cell_traces(runs: pd.DataFrame) -> Dict[str, List[float]]:
    """Coefficient name -> per-epoch mean over the runs of ONE cell (``coefficients`` column)."""
    series: Dict[str, List[List[float]]] = {}
    for traces in runs.get("coefficients", pd.Series(dtype=object)).dropna():
        for epoch, values in enumerate(traces):
            for name, v in values.items():
                per_epoch = series.setdefault(name, [])
                per_epoch.extend([] for _ in range(epoch + 1 - len(per_epoch)))
                per_epoch[epoch].append(v)
    return {name: [float(np.mean(v)) if v else float("nan") for v in per_epoch] for name, per_epoch in series.items()}


def all_traces(runs: pd.DataFrame) -> List[Dict[str, Any]]:
    """JSON-ready traces of every cell with any: ``{method, dataset, pattern, name, per_epoch}``."""
    if runs.empty or "coefficients" not in runs or runs["coefficients"].isna().all():
        return []
    out = []
    ok = runs[runs.status == "ok"]
    for (method, dataset, pattern), cell in ok.groupby(["method", "dataset", "pattern"]):
        for name, per_epoch in sorted(cell_traces(cell).items()):
            out.append({"method": method, "dataset": dataset, "pattern": pattern, "name": name, "per_epoch": per_epoch})
    return out


def _num(value: float) -> str:
    return "-" if value != value else f"{value:.3f}"  # NaN: not logged in that epoch (e.g. a warm-up)


def traces_section(runs: pd.DataFrame, pattern: str = "complete") -> List[str]:
    """Markdown lines: each coefficient at the first, middle and last epoch (empty when none is logged)."""
    traces = [t for t in all_traces(runs) if t["pattern"] == pattern]
    if not traces:
        return []
    rows = []
    for t in traces:
        v = t["per_epoch"]
        rows.append([t["method"], t["dataset"], t["name"]] + [_num(v[i]) for i in (0, len(v) // 2, -1)])
    return [
        f"## Balancing coefficients over training, pattern `{pattern}`",
        "",
        "Epoch means of each method's own coefficients, mean over seeds: OGM-GE and AGM `k:m` (gradient scale "
        "of modality m), ARL `w:m`, MMPareto `w_mm:m` / `w_uni:m` (weights of the multimodal and unimodal "
        "gradients), MSLR `lr_mult:m` (MSES also `stopped:m`), PMR `slower:m` (1 = m gets the prototype loss), "
        "MLA `gate:m` (the entropy gate's weight of m on the training batches), Greedy `rebalanced:m` (share of "
        "steps re-balancing m) and `bdr:m` (its log10 bypass / main learning-speed ratio), ReconBoost "
        "`stage:m` / `rectify` (shares of steps boosting m / rectifying) and `boost_weight:m` (mean sample "
        "weight w1 - w2 q), DMRNet `variance:m` (selection variance of {m}), `weak:m` (selected weak "
        "modality) and `hcr_share` (share of samples up-weighted), MMANet `score_without:m` (mining score of "
        "the combination lacking m) and `mar_share` (share of samples with the MAR loss). Methods with "
        "constant weights (DGL, UMT, ...) log none. Every epoch is in `LEADERBOARD.json` "
        "(`coefficient_traces`) and in each run's `history`; `-` = not logged in that epoch "
        "(warm-up, outside the modulation window, no stage of m).",
        "",
        tabulate(rows, headers=["method", "dataset", "coefficient", "first epoch", "middle epoch", "last epoch"],
                 tablefmt="github", disable_numparse=True),
        "",
    ]
