"""What a segmentation data set holds, and the validation split carved from its train split.

A :class:`SegmentationDataset` is what a data set registered with ``task="segmentation"``
(:func:`mmbench.data.registry.register_dataset`) returns: RGB images, depth maps and per-pixel labels
with a void index, and a train / test split. NYUv2 ships only train and test (and the released code
picks its best epoch on test); the harness never does that: :func:`carve_validation` takes a
validation split out of train with a fixed seed, so every method and run seed of a data set shares it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np

from mmbench.segmentation.labels import VOID_INDEX

MODALITIES = ("rgb", "depth")
VALIDATION_SEED = 0  # the carve does not depend on the run seed: all runs of a data set share one split


class SegmentationDatasetError(ValueError):
    """An inconsistent segmentation data set (shapes, labels, split)."""


@dataclass
class SegmentationDataset:
    """RGB-D frames with per-pixel labels.

    Attributes:
        name: registry name.
        rgb: ``[N, 3, H, W]`` float (or a memory map of one).
        depth: ``[N, 1, H, W]`` float.
        labels: ``[N, H, W]`` integer in ``[0, num_classes)`` or ``void_index``.
        split: ``{"train": [n_train] int, "test": [n_test] int}`` row indices, disjoint.
        num_classes: C.
        class_names: C names.
        void_index: the label of pixels no score counts.
    """

    name: str
    rgb: np.ndarray
    depth: np.ndarray
    labels: np.ndarray
    split: Dict[str, np.ndarray]
    num_classes: int
    class_names: Tuple[str, ...] = ()
    void_index: int = VOID_INDEX
    meta: Dict[str, object] = field(default_factory=dict)

    modalities = MODALITIES

    def validated(self) -> "SegmentationDataset":
        """``self`` after checking shapes, split and the first label map; raises :class:`SegmentationDatasetError`."""
        n = len(self.labels)
        if self.rgb.ndim != 4 or self.rgb.shape[1] != 3:
            raise SegmentationDatasetError(f"{self.name}: rgb must be [N, 3, H, W]; got {tuple(self.rgb.shape)}")
        h, w = self.rgb.shape[-2:]
        if tuple(self.depth.shape) != (len(self.rgb), 1, h, w):
            raise SegmentationDatasetError(f"{self.name}: depth {tuple(self.depth.shape)} does not match rgb "
                                           f"{tuple(self.rgb.shape)} as [N, 1, H, W]")
        if tuple(self.labels.shape) != (len(self.rgb), h, w):
            raise SegmentationDatasetError(f"{self.name}: labels {tuple(self.labels.shape)} are not [N, H, W] = "
                                           f"{(len(self.rgb), h, w)}")
        if set(self.split) != {"train", "test"}:
            raise SegmentationDatasetError(f"{self.name}: the split has {sorted(self.split)}; expected train and test")
        for part, idx in self.split.items():
            idx = np.asarray(idx)
            if idx.size == 0 or idx.min() < 0 or idx.max() >= n:
                raise SegmentationDatasetError(f"{self.name}: the {part} split is empty or indexes outside [0, {n})")
        if np.intersect1d(self.split["train"], self.split["test"]).size:
            raise SegmentationDatasetError(f"{self.name}: some frames are in both train and test")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise SegmentationDatasetError(
                f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")
        first = np.asarray(self.labels[0])
        bad = first[(first != self.void_index) & ((first < 0) | (first >= self.num_classes))]
        if bad.size:
            raise SegmentationDatasetError(f"{self.name}: label {bad.flat[0]} is outside [0, {self.num_classes}) "
                                           f"and is not the void index {self.void_index}")
        return self

    @property
    def image_size(self) -> Tuple[int, int]:
        return tuple(self.rgb.shape[-2:])


def carve_validation(train: np.ndarray, fraction: float, seed: int = VALIDATION_SEED) -> Tuple[np.ndarray, np.ndarray]:
    """``(train_rest, val)`` row indices: a random ``fraction`` of ``train`` (at least one frame, at
    least one left to train on), drawn with ``seed``; both in the original order."""
    train = np.asarray(train)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1); got {fraction}")
    n_val = int(round(fraction * len(train)))
    if n_val < 1 or n_val >= len(train):
        raise ValueError(f"val_fraction={fraction} of {len(train)} train frames leaves {n_val} for validation "
                         f"and {len(train) - n_val} for training; both need at least one")
    chosen = np.zeros(len(train), dtype=bool)
    chosen[np.random.default_rng(seed).permutation(len(train))[:n_val]] = True
    return train[~chosen], train[chosen]
