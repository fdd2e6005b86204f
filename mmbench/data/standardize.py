"""Standardisation with statistics from the training split only (no test leakage)."""
from __future__ import annotations

import dataclasses

import numpy as np

from mmbench.data.base import MultimodalDataset

STD_FLOOR = 1e-6  # a constant feature (std 0) is centred, not blown up


def _reduce_axes(kind: str, ndim: int) -> tuple:
    """Axes the statistics are pooled over: samples for vectors (per feature); samples and every
    position for series ``[N, C, T]`` and images ``[N, C, H, W]`` (per channel); samples, frames and
    positions for videos ``[N, T, C, H, W]`` (per channel: the channel axis is 2)."""
    if kind == "vector":
        return (0,)
    if kind == "video":
        return (0, 1) + tuple(range(3, ndim))
    return (0,) + tuple(range(2, ndim))


def standardize(dataset: MultimodalDataset) -> MultimodalDataset:
    """A copy of ``dataset`` with every modality shifted and scaled to zero mean, unit std on TRAIN.

    Vectors ``[N, D]`` get per-feature statistics, series ``[N, C, T]`` and images ``[N, C, H, W]``
    per-channel statistics, all computed on ``split["train"]`` only and applied to every sample.
    std is floored at 1e-6. The input is not modified. ``meta["standardize"]`` holds, per modality,
    the ``(mean, std)`` float32 arrays used (broadcastable to one sample).
    """
    train = dataset.split["train"]
    arrays, stats = {}, {}
    for spec in dataset.specs:
        x = dataset.arrays[spec.name]
        axes = _reduce_axes(spec.kind, x.ndim)
        ref = x[train].astype(np.float64)  # float64 sums: no drift on long series
        mean = ref.mean(axis=axes, keepdims=True)
        std = np.maximum(ref.std(axis=axes, keepdims=True), STD_FLOOR)
        arrays[spec.name] = ((x - mean) / std).astype(np.float32)
        stats[spec.name] = (mean[0].astype(np.float32), std[0].astype(np.float32))
    return dataclasses.replace(dataset, arrays=arrays, meta={**dataset.meta, "standardize": stats})
