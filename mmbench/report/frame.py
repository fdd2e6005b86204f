"""Cached run results -> one pandas row per finished run.

Each row carries ``settings`` (the run's settings hash: everything its result depends on but the seed,
:func:`mmbench.run_key.settings_hash`) and ``row`` (the leaderboard row label: the method, with the
run's overrides as ``method [k=v,...]``). The tables aggregate the seeds of one ``settings`` only.
"""
from __future__ import annotations

from typing import Any, Dict, Iterable

import pandas as pd

from mmbench.environment import machine_line
from mmbench.fingerprint import digest


def run_settings(result: Dict[str, Any]) -> str:
    """The stored settings hash; for results written before it was stored, a hash of the resolved
    settings they recorded (``config``) and their spec without the seed."""
    if result.get("settings_hash"):
        return result["settings_hash"]
    spec = {k: v for k, v in result["spec"].items() if k != "seed"}
    return "legacy-" + digest({"spec": spec, "config": result.get("config")})[:9]


def row_label(method: str, overrides: str) -> str:
    """``"arl"``, or ``"arl [epochs=10,gamma=2]"`` for a run with overrides."""
    return f"{method} [{overrides}]" if overrides else method
from mmbench.report.imbalance import shapley_columns
from mmbench.report.traces import history_coefficients


def flatten(result: Dict[str, Any]) -> Dict[str, Any]:
    spec, metrics, tp = result["spec"], result.get("metrics", {}), result.get("throughput", {})
    overrides = ",".join(f"{k}={v}" for k, v in sorted(spec.get("overrides", {}).items()))
    row: Dict[str, Any] = {
        "method": spec["method"], "dataset": spec["dataset"], "pattern": spec["pattern"], "seed": spec["seed"],
        "overrides": overrides, "row": row_label(spec["method"], overrides), "settings": run_settings(result),
        "status": result.get("status"), "key": result.get("key"), "checksum": result.get("checksum"),
        "test_acc": metrics.get("test_acc"), "test_f1": metrics.get("test_f1"),
        "subset_mean": metrics.get("subset_mean"), "subset_worst": metrics.get("subset_worst"),
        "masked_test_acc": metrics.get("masked_test_acc"), "best_epoch": metrics.get("best_epoch"),
        "masked_test_acc_at": metrics.get("masked_test_acc_at"),  # {eta: acc}: robustness curves
        "step_ms": tp.get("step_ms"), "samples_per_s": tp.get("train_samples_per_s"),
        "peak_mem_mb": tp.get("peak_mem_mb"), "mem_kind": tp.get("mem_kind"), "params": tp.get("params"),
        "wall_seconds": result.get("wall_seconds"), "device": result.get("env", {}).get("gpu", "cpu"),
        "machine": machine_line(result.get("env", {})),
    }
    for m, acc in metrics.get("unimodal_acc", {}).items():
        row[f"uni:{m}"] = acc
    for m, acc in metrics.get("linear_probe_acc", {}).items():  # frozen encoder + own linear classifier
        row[f"lp:{m}"] = acc
    for s, acc in metrics.get("subset_acc", {}).items():
        row[f"subset:{s}"] = acc
    row.update(shapley_columns(result))
    # per-sample outcomes (None for older runs): what intervals and paired tests resample
    row["outcomes"] = result.get("outcomes") or None
    row["coefficients"] = history_coefficients(result.get("history", []))  # balancing coefficients per epoch
    # a data set's extra metrics per subset (CASIA-SURF: apcer / bpcer / acer) -> "acer:rgb+depth" ...
    for per_subset in metrics.get("extra", {}).values():
        for s, values in per_subset.items():
            for name, value in values.items():
                row[f"{name}:{s}"] = value
    return row


def results_frame(results: Iterable[Dict[str, Any]]) -> pd.DataFrame:
    """All classification runs as rows (any status); metric columns are NaN where a run has none.
    Segmentation results (``task: segmentation``) have their own section (:mod:`mmbench.segmentation.table`)."""
    rows = [flatten(r) for r in results if "spec" in r and r.get("task", "classification") == "classification"]
    return pd.DataFrame(rows)
