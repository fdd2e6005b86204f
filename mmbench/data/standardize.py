"""Standardisation with statistics from the training split only (no test leakage)."""
from __future__ import annotations

import dataclasses

import numpy as np

from mmbench.data.base import MultimodalDataset
from mmbench.data.standardize_cache import load_stats, save_stats, stats_path
from mmbench.data.standardized_array import StandardizedArray

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


def standardize(dataset: MultimodalDataset, lazy: bool = False) -> MultimodalDataset:
    """A copy of ``dataset`` with every modality shifted and scaled to zero mean, unit std on TRAIN.

    Vectors ``[N, D]`` get per-feature statistics, series ``[N, C, T]`` and images ``[N, C, H, W]``
    per-channel statistics, all computed on ``split["train"]`` only and applied to every sample.
    std is floored at 1e-6. The input is not modified. ``meta["standardize"]`` holds, per modality,
    the ``(mean, std)`` float32 arrays used (broadcastable to one sample).

    ``lazy=False``: each modality becomes a standardised float32 array in memory. ``lazy=True``
    (``loader=stream``): each becomes a :class:`StandardizedArray` that standardises the rows it is
    indexed with, so a memory-mapped data set is never copied; the values are bit-identical.
    The statistics of a prepared data set are stored beside its cache (:mod:`mmbench.data.standardize_cache`).
    """
    train = np.sort(dataset.split["train"])  # sorted: chunked reads of a memmap go forward
    path = stats_path(dataset, train, STD_FLOOR)
    stats = load_stats(path, dataset.modalities)
    if stats is None:
        stats = {}
        for spec in dataset.specs:
            x = dataset.arrays[spec.name]
            stats[spec.name] = _train_stats(x, train, _reduce_axes(spec.kind, x.ndim))
            if not all(np.isfinite(v).all() for v in stats[spec.name]):
                _raise_nonfinite(dataset, spec.name)
        save_stats(path, stats)  # only finite statistics are ever stored
    arrays = {}
    for spec in dataset.specs:
        x, (mean, std) = dataset.arrays[spec.name], stats[spec.name]
        arrays[spec.name] = StandardizedArray(x, mean, std) if lazy else _materialize(x, mean, std)
    used = {m: (mean[0].astype(np.float32), std[0].astype(np.float32)) for m, (mean, std) in stats.items()}
    return dataclasses.replace(dataset, arrays=arrays, meta={**dataset.meta, "standardize": used})


def _raise_nonfinite(dataset: MultimodalDataset, modality: str) -> None:
    """Non-finite training input is a data error naming the file and the position, never a run that
    trains on NaN and is stored as ``diverged``."""
    from mmbench.data.validate import DatasetError, _nonfinite_count

    count, first = _nonfinite_count(dataset.arrays[modality])
    folder = dataset.meta.get("cache")
    where = f"{folder}/{modality}.npy" if folder else f"data set {dataset.name!r} ({dataset.source}), modality {modality!r}"
    fix = (f"rebuild it: python -m mmbench prepare <name> --src DIR --force (python -m mmbench verify checks "
           "every prepared cache)" if folder else "fix the data")
    raise DatasetError(f"{where}: {count} NaN/inf values in the input, the first at position {first} "
                       f"(sample {first[0] if first else '?'}); {fix}")


def _materialize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=np.float32)
    for start in range(0, x.shape[0], _chunk_rows(x)):  # never a float64 copy of the whole array
        rows = slice(start, start + _chunk_rows(x))
        out[rows] = (x[rows] - mean) / std
    return out


CHUNK_BYTES = 256 << 20  # float64 working set per chunk: data sets from disk (CREMA-D frames, 4.5 GB)


def _chunk_rows(x: np.ndarray) -> int:
    return max(1, CHUNK_BYTES // max(1, 8 * int(np.prod(x.shape[1:]))))


def _train_stats(x: np.ndarray, train: np.ndarray, axes: tuple):
    """Mean and std (floored) over ``axes`` of the train rows, in float64 (no drift on long series),
    two passes over row chunks, so a memory-mapped modality is never loaded whole."""
    step = _chunk_rows(x)
    count = train.size * int(np.prod([x.shape[a] for a in axes[1:]], dtype=np.int64))
    total = sum(x[train[i:i + step]].astype(np.float64).sum(axis=axes, keepdims=True)
                for i in range(0, train.size, step))
    mean = total / count
    sq = sum(((x[train[i:i + step]].astype(np.float64) - mean) ** 2).sum(axis=axes, keepdims=True)
             for i in range(0, train.size, step))
    return mean, np.maximum(np.sqrt(sq / count), STD_FLOOR)
