"""Segmentation data sets in the shared data-set registry (``task="segmentation"``).

* ``procedural-rgbd``: the offline procedural RGB-D scenes of :mod:`mmbench.segmentation.procedural`,
  96 train and 48 test scenes of 32 x 32 (train and test drawn from separate generator seeds), so a
  run takes seconds on a CPU.

Each entry's fingerprint is the SHA-256 of the generated arrays and split (the generation is memoised,
so computing a run key and training read the same arrays once), so a change of the generator changes
every key of the data set, as an edited data file does for classification.
"""
from __future__ import annotations

import functools
import hashlib

import numpy as np

from mmbench.data.registry import register_dataset

# Registration imports no torch (``import mmbench.data`` stays light for the tables); the generator and
# the data set type are imported when a data set is built.

PROCEDURAL = "procedural-rgbd"
PROCEDURAL_SEEDS = {"train": 1000, "test": 2000}  # separate generator streams: no scene is in both splits


@functools.lru_cache(maxsize=4)
def procedural_rgbd(n_train: int = 96, n_test: int = 48, size: int = 32):
    """The procedural scenes as a :class:`~mmbench.segmentation.dataset.SegmentationDataset`: rows
    ``[0, n_train)`` train, the next ``n_test`` test."""
    from mmbench.segmentation.dataset import SegmentationDataset
    from mmbench.segmentation.procedural import CLASS_NAMES, NUM_CLASSES, make_procedural_rgbd

    train = make_procedural_rgbd(n_train, size, seed=PROCEDURAL_SEEDS["train"])
    test = make_procedural_rgbd(n_test, size, seed=PROCEDURAL_SEEDS["test"])
    arrays = {k: np.concatenate([train[k].numpy(), test[k].numpy()]) for k in ("rgb", "depth", "labels")}
    arrays["labels"] = arrays["labels"].astype(np.uint8)  # classes 0..4 and void 255
    split = {"train": np.arange(n_train), "test": np.arange(n_train, n_train + n_test)}
    return SegmentationDataset(PROCEDURAL, arrays["rgb"], arrays["depth"], arrays["labels"], split, NUM_CLASSES,
                               CLASS_NAMES)


def content_digest(data) -> str:
    """SHA-256 (hex) of what training reads: the arrays, the split, the classes and the void index."""
    h = hashlib.sha256(f"classes={data.num_classes}|void={data.void_index}".encode())
    for name, arr in (("rgb", data.rgb), ("depth", data.depth), ("labels", data.labels),
                      ("split:test", data.split["test"]), ("split:train", data.split["train"])):
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


register_dataset(
    PROCEDURAL, procedural_rgbd, task="segmentation",
    fingerprint=lambda **options: content_digest(procedural_rgbd(**options)),
    description="segmentation: procedural RGB-D scenes, 5 classes told apart by colour and depth together "
                "(96 train / 48 test, 32x32, offline)",
)
