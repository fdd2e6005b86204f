"""Imbalance diagnostics per run: modality Shapley values and the under-optimisation gap.

* ``shapley:<m>``: the modality's Shapley value over the run's all-subsets test evaluation
  (:mod:`mmbench.report.shapley`); they sum to the full set's accuracy gain over chance.
* ``gap:<m>``: under-optimisation gap = accuracy of modality m trained alone (the ``unimodal`` run of
  the same data set, pattern and seed: its probe ``uni:<m>``) minus the probe accuracy of m inside
  this run's multimodal model. Positive: the multimodal model left m under-trained, the imbalance
  balancing methods aim to remove. NaN where the matching unimodal run is absent.
"""
from __future__ import annotations

from typing import Any, Dict

import pandas as pd

from mmbench.report.shapley import modality_shapley

UNIMODAL_METHOD = "unimodal"


def shapley_columns(result: Dict[str, Any]) -> Dict[str, float]:
    """``{"shapley:<m>": value}`` of one stored run (empty for runs without C or a subset)."""
    metrics = result.get("metrics", {})
    modalities = list(metrics.get("unimodal_acc", {}))
    num_classes = (result.get("outcomes") or {}).get("num_classes")
    values = modality_shapley(metrics.get("subset_acc", {}), modalities, num_classes)
    return {f"shapley:{m}": v for m, v in values.items()}


def add_gaps(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (one row per run) with ``gap:<m>`` columns from the matching unimodal runs."""
    uni_cols = [c for c in df.columns if c.startswith("uni:")]
    if df.empty or not uni_cols or "method" not in df:
        return df
    keys = ["dataset", "pattern", "seed"]
    alone = df[(df.method == UNIMODAL_METHOD) & (df.status == "ok")][keys + uni_cols]
    alone = alone.drop_duplicates(keys).rename(columns={c: f"alone:{c[4:]}" for c in uni_cols})
    merged = df.merge(alone, on=keys, how="left")
    merged.index = df.index
    out = df.copy()
    for c in uni_cols:
        out[f"gap:{c[4:]}"] = merged[f"alone:{c[4:]}"] - merged[c]
    return out
