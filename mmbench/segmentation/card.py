"""``python -m mmbench show <segmentation data set>``: what it holds and how a run on it is set up."""
from __future__ import annotations

from typing import List

import numpy as np


def segmentation_card(name: str, **options) -> str:
    """The card of the segmentation data set ``name`` as text (loads it)."""
    from mmbench.config import _match
    from mmbench.data.registry import dataset_info, load_dataset
    from mmbench.segmentation.methods import SEGMENTATION_METHODS
    from mmbench.segmentation.settings import SEGMENTATION_DATASET_DEFAULTS, SEGMENTATION_DEFAULTS

    data = load_dataset(name, **options)
    train_labels = np.asarray(data.labels[data.split["train"]]).ravel()
    labelled = train_labels[train_labels != data.void_index]
    shares = np.bincount(labelled.astype(np.int64), minlength=data.num_classes) / max(1, labelled.size)
    names = data.class_names or tuple(str(c) for c in range(data.num_classes))
    settings = {**SEGMENTATION_DEFAULTS, **_match(SEGMENTATION_DATASET_DEFAULTS, name)}
    n_val = int(round(settings["val_fraction"] * len(data.split["train"])))
    h, w = data.image_size
    lines: List[str] = [
        f"{name}: {dataset_info(name)}",
        "  task: segmentation (RGB-D, per-pixel labels; scored by mIoU for rgb, depth and rgb+depth)",
        f"  frames: {len(data.labels)} of {h} x {w}; split train {len(data.split['train']) - n_val} / val {n_val} "
        f"(carved from train, val_fraction={settings['val_fraction']}) / test {len(data.split['test'])}",
        f"  classes: {data.num_classes}; void index {data.void_index} "
        f"({1 - labelled.size / max(1, train_labels.size):.1%} of train pixels)",
        "  train pixel shares: " + ", ".join(f"{n} {s:.1%}" for n, s in zip(names, shares)),
        "  methods: " + ", ".join(SEGMENTATION_METHODS.names()),
        "  settings: " + ", ".join(f"{k}={v}" for k, v in sorted(settings.items())),
    ]
    return "\n".join(lines)
