"""Cached run results -> one pandas row per finished run."""
from __future__ import annotations

from typing import Any, Dict, Iterable

import pandas as pd

from mmbench.environment import machine_line


def flatten(result: Dict[str, Any]) -> Dict[str, Any]:
    spec, metrics, tp = result["spec"], result.get("metrics", {}), result.get("throughput", {})
    row: Dict[str, Any] = {
        "method": spec["method"], "dataset": spec["dataset"], "pattern": spec["pattern"], "seed": spec["seed"],
        "overrides": ",".join(f"{k}={v}" for k, v in sorted(spec.get("overrides", {}).items())),
        "status": result.get("status"), "key": result.get("key"),
        "test_acc": metrics.get("test_acc"), "test_f1": metrics.get("test_f1"),
        "subset_mean": metrics.get("subset_mean"), "subset_worst": metrics.get("subset_worst"),
        "masked_test_acc": metrics.get("masked_test_acc"), "best_epoch": metrics.get("best_epoch"),
        "step_ms": tp.get("step_ms"), "samples_per_s": tp.get("train_samples_per_s"),
        "peak_mem_mb": tp.get("peak_mem_mb"), "mem_kind": tp.get("mem_kind"), "params": tp.get("params"),
        "wall_seconds": result.get("wall_seconds"), "device": result.get("env", {}).get("gpu", "cpu"),
        "machine": machine_line(result.get("env", {})),
    }
    for m, acc in metrics.get("unimodal_acc", {}).items():
        row[f"uni:{m}"] = acc
    for s, acc in metrics.get("subset_acc", {}).items():
        row[f"subset:{s}"] = acc
    # a data set's extra metrics per subset (CASIA-SURF: apcer / bpcer / acer) -> "acer:rgb+depth" ...
    for per_subset in metrics.get("extra", {}).values():
        for s, values in per_subset.items():
            for name, value in values.items():
                row[f"{name}:{s}"] = value
    return row


def results_frame(results: Iterable[Dict[str, Any]]) -> pd.DataFrame:
    """All runs as rows (any status); metric columns are NaN where a run has none."""
    rows = [flatten(r) for r in results if "spec" in r]
    return pd.DataFrame(rows)
