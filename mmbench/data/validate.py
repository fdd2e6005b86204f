"""Checks every loader's output passes before anyone trains on it.

Each check fails with a :class:`DatasetError` whose message names the data set, the modality (or
split) and the offending value, so a broken loader or a user's folder is fixed from the message alone.
"""
from __future__ import annotations

import numpy as np

from mmbench.data.base import SPLITS, MultimodalDataset

# The number of per-sample dimensions each kind has: vector (D,), series (C, T), image (C, H, W),
# video (T, C, H, W).
KIND_NDIM = {"vector": 1, "series": 2, "image": 3, "video": 4}


class DatasetError(ValueError):
    """A data set that breaks the :class:`MultimodalDataset` contract."""


def validate(dataset: MultimodalDataset) -> MultimodalDataset:
    """Check ``dataset`` and return it unchanged; raise :class:`DatasetError` on the first problem.

    Checked: modality names unique and matching ``arrays``; each array ``[N, *spec.shape]`` float32
    with the kind's number of dimensions, N equal to ``len(labels)``, and no NaN/inf (scanned in row
    chunks; skipped when ``meta["checked_finite"]``: a prepared cache checks each row as it writes it); labels int64
    ``[N]`` in ``[0, num_classes)``; ``class_names`` / ``groups`` of the right length; the split
    has exactly train/val/test, each a non-empty int64 index array inside ``[0, N)`` with no repeats,
    and the three are disjoint.
    """
    where = f"data set {dataset.name!r}"
    labels = dataset.labels
    if not isinstance(labels, np.ndarray) or labels.ndim != 1:
        raise DatasetError(f"{where}: labels must be a 1-D array, got {getattr(labels, 'shape', type(labels))}")
    if labels.dtype != np.int64:
        raise DatasetError(f"{where}: labels must be int64, got {labels.dtype}")
    n = labels.shape[0]
    if n == 0:
        raise DatasetError(f"{where}: no samples")
    c = dataset.num_classes
    if not isinstance(c, (int, np.integer)) or c < 1:
        raise DatasetError(f"{where}: num_classes must be a positive int, got {c!r}")
    bad = labels[(labels < 0) | (labels >= c)]
    if bad.size:
        raise DatasetError(f"{where}: label {int(bad[0])} is outside [0, {c}) (num_classes={c})")
    if dataset.class_names is not None and len(dataset.class_names) != c:
        raise DatasetError(f"{where}: {len(dataset.class_names)} class names for {c} classes")
    if dataset.groups is not None and np.shape(dataset.groups) != (n,):
        raise DatasetError(f"{where}: groups have shape {np.shape(dataset.groups)}, expected ({n},)")

    names = [s.name for s in dataset.specs]
    if not names:
        raise DatasetError(f"{where}: no modalities")
    if len(set(names)) != len(names):
        raise DatasetError(f"{where}: duplicate modality names in {names}")
    extra = sorted(set(dataset.arrays) - set(names))
    if extra:
        raise DatasetError(f"{where}: arrays for modalities without a spec: {extra} (specs: {names})")
    # A prepared cache's rows were each checked finite when written (mmbench.prepare.run): no rescan of GBs.
    checked_finite = bool(dataset.meta.get("checked_finite"))
    for spec in dataset.specs:
        _check_modality(where, spec, dataset.arrays.get(spec.name), n, checked_finite)

    _check_split(where, dataset.split, n)
    _check_presence(where, dataset.presence, n, len(names))
    return dataset


def _check_presence(where: str, presence, n: int, m: int) -> None:
    """A natural presence mask is ``[N, M]`` of 0/1 with at least one modality per sample."""
    if presence is None:
        return
    if not isinstance(presence, np.ndarray) or presence.shape != (n, m):
        raise DatasetError(f"{where}: presence mask has shape {np.shape(presence)}, expected ({n}, {m})")
    if not np.isin(presence, (0, 1)).all():
        raise DatasetError(f"{where}: presence mask holds values other than 0 and 1")
    empty = np.flatnonzero(presence.sum(1) == 0)
    if empty.size:
        raise DatasetError(f"{where}: {empty.size} samples have no modality present (first: {int(empty[0])})")


def _check_modality(where: str, spec, arr, n: int, checked_finite: bool = False) -> None:
    what = f"{where}, modality {spec.name!r}"
    if spec.kind not in KIND_NDIM:
        raise DatasetError(f"{what}: unknown kind {spec.kind!r} (expected one of {sorted(KIND_NDIM)})")
    if arr is None:
        raise DatasetError(f"{what}: no array")
    if not isinstance(arr, np.ndarray):
        raise DatasetError(f"{what}: expected a numpy array, got {type(arr).__name__}")
    if arr.shape[0] != n:
        raise DatasetError(f"{what} has {arr.shape[0]} samples but the labels have {n}")
    if len(spec.shape) != KIND_NDIM[spec.kind]:
        raise DatasetError(f"{what}: kind {spec.kind!r} needs {KIND_NDIM[spec.kind]} per-sample dims, "
                           f"spec shape is {spec.shape}")
    if tuple(arr.shape[1:]) != tuple(spec.shape):
        raise DatasetError(f"{what}: per-sample shape {tuple(arr.shape[1:])} "
                           f"does not match the spec {tuple(spec.shape)}")
    if any(int(d) == 0 for d in spec.shape):
        raise DatasetError(f"{what}: per-sample shape {tuple(spec.shape)} has no features (a 0-sized "
                           "dimension); drop the modality or give it data")
    if arr.dtype != np.float32:
        raise DatasetError(f"{what}: dtype {arr.dtype}, expected float32")
    if not checked_finite:
        count, first = _nonfinite_count(arr)
        if count:
            raise DatasetError(f"{what}: {count} NaN/inf values, the first at position {first} "
                               f"(sample {first[0]}); non-finite input is a data error, fix the data")


FINITE_CHUNK_BYTES = 64 << 20  # a memory-mapped modality (GBs from prepare) is scanned in row chunks


def _nonfinite_count(arr: np.ndarray):
    """``(count, first)``: NaN/inf values in ``arr`` ``[N, ...]`` and the index tuple of the first (or
    ``None``), counted over row chunks (no whole-array temporary)."""
    step = max(1, FINITE_CHUNK_BYTES // max(1, arr.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))))
    count, first = 0, None
    for start in range(0, arr.shape[0], step):
        bad = ~np.isfinite(arr[start:start + step])
        n_bad = int(bad.sum())
        if n_bad and first is None:
            where = np.argwhere(bad)[0]
            first = (start + int(where[0]), *(int(i) for i in where[1:]))
        count += n_bad
    return count, first


def _check_split(where: str, split, n: int) -> None:
    if set(split) != set(SPLITS):
        raise DatasetError(f"{where}: split keys {sorted(split)}, expected {list(SPLITS)}")
    seen = np.zeros(n, dtype=np.int8)
    for name in SPLITS:
        idx = split[name]
        what = f"{where}, split {name!r}"
        if not isinstance(idx, np.ndarray) or idx.ndim != 1 or idx.dtype != np.int64:
            raise DatasetError(f"{what}: expected a 1-D int64 index array, got {getattr(idx, 'dtype', type(idx))} "
                               f"{getattr(idx, 'shape', '')}")
        if idx.size == 0:
            raise DatasetError(f"{what} is empty")
        out = idx[(idx < 0) | (idx >= n)]
        if out.size:
            raise DatasetError(f"{what}: index {int(out[0])} outside [0, {n})")
        if np.unique(idx).size != idx.size:
            raise DatasetError(f"{what}: repeated indices")
        if seen[idx].any():
            other = int(idx[seen[idx] > 0][0])
            raise DatasetError(f"{what}: index {other} is also in another split (splits must be disjoint)")
        seen[idx] = 1
