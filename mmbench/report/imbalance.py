"""Imbalance diagnostics per run: modality Shapley values and the under-optimisation gap.

* ``shapley:<m>``: the modality's Shapley value over the run's all-subsets test evaluation
  (:mod:`mmbench.report.shapley`); they sum to the full set's accuracy gain over chance.
* ``gap:<m>``: under-optimisation gap = accuracy of modality m trained alone (the ``unimodal`` run of
  the same data set, pattern and seed: its probe ``uni:<m>``) minus the probe accuracy of m inside
  this run's multimodal model. Positive: the multimodal model left m under-trained, the imbalance
  balancing methods aim to remove. NaN where the matching unimodal run is absent. This is the
  *shared-head-probe gap*: both sides read m through a fusion head with the others zeroed.
* ``lpgap:<m>``: the *linear-probe gap*: the same difference from frozen-encoder linear probes
  (``lp:<m>``, :mod:`mmbench.engine.linear_probe`): the unimodal run's encoder of m minus this run's
  encoder of m, each with its own linear classifier (OGM-GE's reading of "unimodal accuracy"). It
  measures the encoder's features alone, so a fusion head that under-uses a good encoder shows in
  ``gap`` but not in ``lpgap``. NaN for runs stored before the probes (protocol < 3).
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
    out = df
    for probe, gap in (("uni:", "gap:"), ("lp:", "lpgap:")):
        out = _add_gap_columns(out, probe, gap)
    return out


def _add_gap_columns(df: pd.DataFrame, probe: str, gap: str) -> pd.DataFrame:
    """``df`` with ``<gap><m>`` = the unimodal run's ``<probe><m>`` minus the row's, matched on data set,
    pattern and seed."""
    cols = [c for c in df.columns if c.startswith(probe)]
    if df.empty or not cols or "method" not in df:
        return df
    keys = ["dataset", "pattern", "seed"]
    alone = df[(df.method == UNIMODAL_METHOD) & (df.status == "ok")][keys + cols]
    alone = alone.drop_duplicates(keys).rename(columns={c: f"alone:{c[len(probe):]}" for c in cols})
    merged = df.merge(alone, on=keys, how="left")
    merged.index = df.index
    out = df.copy()
    for c in cols:
        out[f"{gap}{c[len(probe):]}"] = merged[f"alone:{c[len(probe):]}"] - merged[c]
    return out
