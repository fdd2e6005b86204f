"""A data set's card (``python -m mmbench show DATASET``): source, licence, views, sizes, split, balance.

Each view's accuracy alone comes from the build script where it stored one (the multi-view tables:
5-fold logistic regression over all rows, :mod:`mmbench.data.tabular`); otherwise it is computed here,
cheaply: a ridge-regression probe on the standardised, flattened view, fit on train + val, scored on
test. The imbalance is the best view's accuracy alone minus the worst's.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np

from mmbench.data.base import MultimodalDataset
from mmbench.data.files_path import FILES
from mmbench.data.registry import DATASETS, _run_hooks, dataset_group, dataset_info, dataset_task, load_dataset

RIDGE = 1.0


def is_dataset(name: str) -> bool:
    """Whether ``name`` is a registered data set (user folders included)."""
    _run_hooks()
    return name in DATASETS


def ridge_probe_accuracy(x_fit: np.ndarray, y_fit: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
                         num_classes: int, ridge: float = RIDGE) -> float:
    """Test accuracy of a ridge regression onto one-hot labels (closed form), inputs ``[N, D]`` standardised by the fit rows."""
    mean, std = x_fit.mean(0), x_fit.std(0) + 1e-6
    a = np.hstack([(x_fit - mean) / std, np.ones((len(x_fit), 1))])
    b = np.hstack([(x_test - mean) / std, np.ones((len(x_test), 1))])
    target = np.eye(num_classes)[y_fit]
    w = np.linalg.solve(a.T @ a + ridge * np.eye(a.shape[1]), a.T @ target)
    return float(((b @ w).argmax(1) == y_test).mean())


def view_accuracies(data: MultimodalDataset) -> Tuple[Dict[str, float], str]:
    """``({view: accuracy alone}, how it was measured)``."""
    stored = data.meta.get("view_acc")
    if isinstance(stored, dict) and set(stored) >= set(data.modalities):
        return {m: float(stored[m]) for m in data.modalities}, "5-fold logistic regression over all rows (build script)"
    fit = np.concatenate([data.split["train"], data.split["val"]])
    test = data.split["test"]
    out = {}
    for m in data.modalities:
        x = np.asarray(data.arrays[m], dtype=np.float64).reshape(len(data), -1)
        out[m] = ridge_probe_accuracy(x[fit], data.labels[fit], x[test], data.labels[test], data.num_classes)
    return out, "ridge probe on the flattened view, fit on train + val, scored on test (computed now)"


def licence_file(name: str, data: MultimodalDataset) -> Optional[str]:
    """The licence / attribution file shipped beside the data, if there is one."""
    candidates = [getattr(DATASETS.get(name), "license_file", None), f"{name}.LICENSE.txt",
                  f"{name.split('-')[0]}.LICENSE.txt"]
    for c in candidates:
        if c and (FILES / c).exists():
            return f"mmbench/data/files/{c}"
    return None


def dataset_card(name: str, **options) -> str:
    """The card of ``name`` as text (loads the data set)."""
    if dataset_task(name) == "segmentation":  # its own card (mmbench/segmentation/card.py)
        from mmbench.segmentation.card import segmentation_card

        return segmentation_card(name, **options)
    data = load_dataset(name, **options)
    counts = np.bincount(data.labels, minlength=data.num_classes)
    names = data.class_names or [str(c) for c in range(data.num_classes)]
    accs, how = view_accuracies(data)
    lines: List[str] = [
        f"{name}: {dataset_info(name)}",
        f"  source: {data.source or '(not given)'}",
        f"  licence and attribution: {licence_file(name, data) or '(no file shipped)'}",
        f"  independence group: {dataset_group(name)}",
        f"  samples: {len(data)}; split train {len(data.split['train'])} / val {len(data.split['val'])} / "
        f"test {len(data.split['test'])}" + (" (the data's own test split)" if data.meta.get("own_split") else ""),
        f"  classes: {data.num_classes}; majority {counts.max() / counts.sum():.1%}: "
        + ", ".join(f"{n} {k}" for n, k in zip(names, counts.tolist())),
        f"  views ({how}):",
    ]
    for spec in data.specs:
        missing = ""
        if data.presence is not None:
            missing = f", naturally missing in {int((data.presence[:, data.modalities.index(spec.name)] == 0).sum())} rows"
        lines.append(f"    {spec.name:14s} {spec.kind} {tuple(spec.shape)}  accuracy alone {accs[spec.name]:.3f}{missing}")
    if "all_acc" in data.meta:
        lines.append(f"  all views together: {data.meta['all_acc']:.3f} (same protocol)")
    best = max(accs, key=accs.get)
    worst = min(accs, key=accs.get)
    lines.append(f"  imbalance (best view minus worst): {accs[best] - accs[worst]:.3f} ({best} {accs[best]:.3f} - "
                 f"{worst} {accs[worst]:.3f})")
    if data.presence is not None:
        incomplete = int((data.presence.min(1) == 0).sum())
        lines.append(f"  natural missing modalities: {incomplete} of {len(data)} samples lack a view "
                     f"(pattern 'natural'; counted missing above {data.meta.get('missing_above', '?')} of its values)")
    return "\n".join(lines)
