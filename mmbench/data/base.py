"""The in-memory form every data set takes inside mmbench.

A data set is a set of aligned per-modality arrays plus labels and a fixed split. Everything
downstream (patterns, models, methods) sees only this form, so a new data set is one loader that
returns a :class:`MultimodalDataset`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np

ModalityKind = Literal["vector", "series", "image", "video"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ModalitySpec:
    """What one modality looks like for a single sample.

    Attributes:
        name: short modality name, unique within the data set (``"pix"``, ``"accel"``).
        kind: ``"vector"`` (shape ``(D,)``, MLP encoder), ``"series"`` (shape ``(channels, T)``,
            1-D CNN encoder), ``"image"`` (shape ``(channels, H, W)``, small CNN or ResNet-18 encoder)
            or ``"video"`` (frames ``(T, channels, H, W)``, ResNet-18 per frame, mean over time).
        shape: per-sample shape, without the batch dimension.
    """

    name: str
    kind: ModalityKind
    shape: Tuple[int, ...]


@dataclass
class MultimodalDataset:
    """Aligned modalities, labels and a fixed train / val / test split.

    Attributes:
        name: registry name of the data set (``"mfeat-pix-mor"``).
        specs: ordered modality specs; the order is the modality order everywhere in mmbench.
        arrays: modality name -> float32 array ``[N, *spec.shape]``.
        labels: int64 ``[N]`` in ``[0, num_classes)``.
        num_classes: number of classes C.
        split: ``"train" | "val" | "test"`` -> int64 sample indices; disjoint, fixed by a seed.
        class_names: optional human-readable names, length C.
        groups: optional int64 ``[N]`` group ids (subjects) when the split is by group.
        source: where the data comes from (paper / URL-free citation) and its license.
        presence: optional float32 ``[N, M]`` natural presence mask (1 = modality observed, columns in
            modality order) for data that itself lacks some modalities for some samples; the ``natural``
            pattern trains and tests on it (:mod:`mmbench.patterns`). ``None``: the data has no own gaps.
    """

    name: str
    specs: List[ModalitySpec]
    arrays: Dict[str, np.ndarray]
    labels: np.ndarray
    num_classes: int
    split: Dict[str, np.ndarray]
    class_names: Optional[List[str]] = None
    groups: Optional[np.ndarray] = None
    source: str = ""
    meta: Dict[str, object] = field(default_factory=dict)
    presence: Optional[np.ndarray] = None

    @property
    def modalities(self) -> List[str]:
        return [s.name for s in self.specs]

    def __len__(self) -> int:
        return int(self.labels.shape[0])
