"""A small results folder written by hand: two data sets, three methods, two seeds, robustness
rates and coefficient traces, so the site can be built in a second without training."""
from __future__ import annotations

import json
from pathlib import Path

from mmbench.results_store import ResultsStore

METHODS = {"joint": 0.80, "arl": 0.85, "unimodal": 0.70}


def write_fake_results(root: Path) -> Path:
    runs = root / "runs"
    runs.mkdir(parents=True)
    k = 0
    for dataset in ("alpha", "beta"):
        for method, acc in METHODS.items():
            for seed in (0, 1):
                for pattern, eta in (("complete", 0.0), ("missing-0.3", 0.3), ("missing-0.5", 0.5)):
                    base = acc - 0.1 * eta + 0.01 * seed + (0.02 if dataset == "beta" else 0.0)
                    result = {
                        "key": f"{k:016x}", "status": "ok", "label": f"{method}/{dataset}/{pattern}/seed{seed}",
                        "spec": {"method": method, "dataset": dataset, "pattern": pattern, "seed": seed, "overrides": {}},
                        "env": {"cpu": "Test CPU", "cores": 2, "python": "3.11", "torch": "2.x"},
                        "metrics": {
                            "test_acc": base, "test_f1": base, "subset_mean": base - 0.1, "subset_worst": base - 0.3,
                            "unimodal_acc": {"x": base - 0.2 + (0.1 if method == "unimodal" else 0.0), "y": base - 0.3},
                            "subset_acc": {"x+y": base, "x": base - 0.2, "y": base - 0.3},
                            "masked_test_acc_at": {"0.1": base - 0.01, "0.3": base - 0.03, "0.5": base - 0.05,
                                                   "0.7": base - 0.07},
                        },
                        "throughput": {"step_ms": {"joint": 1.0, "arl": 1.5, "unimodal": 1.2}[method],
                                       "train_samples_per_s": 1000.0, "peak_mem_mb": 1.0, "mem_kind": "test"},
                        "history": [{"epoch": e, "loss": 1.0 / (e + 1), "val": base,
                                     **({"coefficients": {"w_x": 0.5 + 0.1 * e, "w_y": 0.5 - 0.1 * e}} if method == "arl" else {})}
                                    for e in range(3)],
                    }
                    HandWrittenStore(root).save(result)
                    k += 1
    return root


def with_identity(result: dict) -> dict:
    """``result`` (hand-written, for table tests) given an identity and the key computed from it, as
    the runner writes them, so it validates (:mod:`mmbench.result_check`) once stored and sealed."""
    from mmbench.run_key import identity_key

    # the settings hash a test gives stands for settings that differ: part of the identity, as it would be
    result["identity"] = {**result["spec"], "hand_written_test_result": True, "settings": result.get("settings_hash")}
    result["key"] = identity_key(result["identity"])
    return result


class HandWrittenStore(ResultsStore):
    """A :class:`ResultsStore` whose ``save`` first gives a hand-written result its identity and key."""

    def save(self, result: dict):
        return super().save(with_identity(result))
