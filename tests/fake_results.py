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


def write_scale_results(root: Path, datasets: int = 14, methods: int = 26, patterns=("complete", "missing-0.5"),
                        seeds: int = 5, modalities: int = 3, seed: int = 0) -> Path:
    """A results folder the size of the full default suite (14 data sets x 26 methods x 2 patterns x 5 seeds
    = 3,640 runs), with per-sample outcomes on shared test sets of 240-2,000 samples and every modality
    subset (7 for 3 modalities): what the leaderboard's statistics must digest within a minute."""
    import itertools

    import numpy as np

    from mmbench.engine.outcomes import pack_correct
    from mmbench.result_check import seal

    rng = np.random.default_rng(seed)
    runs = root / "runs"
    runs.mkdir(parents=True)
    mods = [f"m{i}" for i in range(modalities)]
    subsets = ["+".join(c) for k in range(1, modalities + 1) for c in itertools.combinations(mods, k)]
    k = 0
    for d in range(datasets):
        n = int(np.linspace(240, 2000, datasets)[d])
        items = rng.normal(1.5, 2.5, n)
        for m in range(methods):
            name = "joint" if m == 0 else f"method{m:02d}"
            skill = rng.normal(0, 0.2)
            mi = rng.normal(0, 0.9, n)
            for pattern in patterns:
                for s in range(seeds):
                    logit = items + mi + skill + rng.normal(0, 0.1)
                    correct = {"fused": rng.random(n) < 1 / (1 + np.exp(-logit))}
                    for sub in subsets:
                        drop = 1.5 * (modalities - sub.count("+") - 1)
                        correct[f"subset:{sub}"] = rng.random(n) < 1 / (1 + np.exp(-(logit - drop)))
                    acc = {key: float(v.mean()) for key, v in correct.items()}
                    result = {
                        "key": f"{k:016x}", "status": "ok", "label": f"{name}/d{d}/{pattern}/seed{s}",
                        "spec": {"method": name, "dataset": f"data{d:02d}", "pattern": pattern, "seed": s,
                                 "overrides": {}},
                        "env": {"cpu": "Test CPU", "cores": 2, "python": "3.11", "torch": "2.x"},
                        "metrics": {"test_acc": acc["fused"], "test_f1": acc["fused"],
                                    "subset_mean": float(np.mean([acc[f"subset:{x}"] for x in subsets])),
                                    "subset_worst": min(acc[f"subset:{x}"] for x in subsets),
                                    "unimodal_acc": {x: acc[f"subset:{x}"] for x in mods},
                                    "subset_acc": {x: acc[f"subset:{x}"] for x in subsets}},
                        "throughput": {"step_ms": 1.0 + 0.01 * m, "train_samples_per_s": 1000.0, "peak_mem_mb": 1.0,
                                       "mem_kind": "test"},
                        "outcomes": {"version": 1, "n": n, "num_classes": 4, "test_ids_sha": f"ids{d}",
                                     "mask_seed": s, "test_mask_sha": None if pattern == "complete" else f"mask{d}-{s}",
                                     "correct": {key: pack_correct(v) for key, v in correct.items()}},
                    }
                    # given an identity, key and checksum as the runner writes them, so the results validate
                    result = seal(with_identity(result))
                    (runs / f"{result['key']}.json").write_text(json.dumps(result))
                    k += 1
    return root
