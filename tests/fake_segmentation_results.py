"""Segmentation results written by hand in the stored format (``task: "segmentation"``), for the page's
tests: no training, so a site with segmentation pages builds in seconds.

``write_segmentation_results(root)`` adds two data sets to a results folder: ``scenes`` (joint and
unimodal over three seeds, a one-seed modality-dropout cell with an override, joint also under
missing-0.5 with its masked test, class names stored, some classes without an IoU in some runs) and
``rooms`` (one run written before the class names were stored).
"""
from __future__ import annotations

import statistics

from fake_results import HandWrittenStore

COMBOS = ("rgb", "depth", "rgb+depth")
NAMES = ["wall", "warm", "cool"]
# method -> mIoU per combination at seed 0; seed s adds 0.02 s
BASE = {"joint": {"rgb": 0.10, "depth": 0.30, "rgb+depth": 0.60},
        "unimodal": {"rgb": 0.35, "depth": 0.36, "rgb+depth": 0.37}}


def seg_result(dataset, method, pattern, seed, miou, overrides=None, names=NAMES, masked=None, ious=None):
    pixel = {c: min(1.0, v + 0.3) for c, v in miou.items()}
    metrics = {
        "subset_miou": miou, "subset_pixel_acc": pixel,
        "subset_iou": ious or {c: [v + 0.1, v, v - 0.1] for c, v in miou.items()},
        "miou_mean": statistics.fmean(miou.values()), "miou_worst": min(miou.values()),
        "miou_worst_subset": min(miou, key=miou.get),
        "pixel_acc_mean": statistics.fmean(pixel.values()), "pixel_acc_worst": min(pixel.values()),
        "best_epoch": 0, "split_sizes": {"train": 6, "val": 2, "test": 4},
    }
    if names is not None:
        metrics["class_names"] = names
    if masked is not None:
        metrics["masked_test_miou"], metrics["masked_test_pixel_acc"] = masked, masked + 0.3
    return {"key": "0", "status": "ok", "task": "segmentation", "label": f"{method}/{dataset}/{pattern}/seed{seed}",
            "spec": {"method": method, "dataset": dataset, "pattern": pattern, "seed": seed,
                     "overrides": overrides or {}},
            "settings_hash": f"{method}-{sorted((overrides or {}).items())}",
            "env": {"cpu": "Test CPU", "cores": 2, "python": "3.11", "torch": "2.x"},
            "metrics": metrics, "throughput": {"step_ms": 1.0}, "history": [{"epoch": 0, "loss": 1.0, "val": 0.5}]}


def write_segmentation_results(root):
    store = HandWrittenStore(root)
    for method, base in BASE.items():
        for seed in (0, 1, 2):
            miou = {c: v + 0.02 * seed for c, v in base.items()}
            ious = {c: [v + 0.1, v, v - 0.1] for c, v in miou.items()}
            if method == "joint" and seed == 2:
                ious["rgb"][2] = None  # "cool" absent from labels and predictions of this run: no IoU
            if method == "unimodal":
                ious["depth"][1] = None  # "warm" never has an IoU with depth alone
            store.save(seg_result("scenes", method, "complete", seed, miou, ious=ious))
    for seed in (0, 1):
        miou = {c: v + 0.01 * seed for c, v in BASE["joint"].items()}
        store.save(seg_result("scenes", "joint", "missing-0.5", seed, miou, masked=0.40 + 0.01 * seed))
    store.save(seg_result("scenes", "modality-dropout", "complete", 0, {"rgb": 0.3, "depth": 0.3, "rgb+depth": 0.5},
                          overrides={"p": 0.3}))
    store.save(seg_result("rooms", "joint", "complete", 0, {"rgb": 0.2, "depth": 0.2, "rgb+depth": 0.2}, names=None))
    return root
