"""Seeded train / val / test splits: stratified, plain random, by group, or from per-sample codes.

Every function returns ``{"train", "val", "test"} -> sorted int64 index arrays``. Sorting keeps the
sample order of the source inside each split, so a split is determined by its membership alone.
"""
from __future__ import annotations

from typing import Dict, Iterable, Sequence

import numpy as np

from mmbench.data.base import SPLITS

DEFAULT_FRACTIONS = (0.6, 0.2, 0.2)
# Spellings accepted for split codes in a user's split.npy.
_CODE_NAMES = {"none": -1, "train": 0, "val": 1, "valid": 1, "validation": 1, "dev": 1, "test": 2}


def _cuts(n: int, fractions: Sequence[float]) -> tuple:
    f = np.asarray(fractions, dtype=float)
    if f.shape != (3,) or (f < 0).any() or f.sum() <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {fractions}")
    c = np.round(np.cumsum(f / f.sum()) * n).astype(int)
    return int(c[0]), int(c[1])


def _pack(parts: Iterable[np.ndarray]) -> Dict[str, np.ndarray]:
    return {name: np.sort(np.asarray(p, dtype=np.int64)) for name, p in zip(SPLITS, parts)}


def random_split(n: int, fractions: Sequence[float] = DEFAULT_FRACTIONS, seed: int = 0) -> Dict[str, np.ndarray]:
    """A plain seeded random split of ``n`` samples in the given proportions."""
    perm = np.random.default_rng(seed).permutation(n)
    a, b = _cuts(n, fractions)
    return _pack([perm[:a], perm[a:b], perm[b:]])


def stratified_split(labels: np.ndarray, fractions: Sequence[float] = DEFAULT_FRACTIONS,
                     seed: int = 0) -> Dict[str, np.ndarray]:
    """A seeded split that keeps every class's proportions, with exact overall sizes.

    Each sample gets a key (rank within its class, shuffled) / class size; samples are ordered by
    that key and the order is cut at the overall sizes. Every class is thus cut at the same
    quantiles (off by at most one sample per class), and even a class too small to put a sample
    in every split cannot leave a split empty overall, as per-class rounding could.

    Args:
        labels: ``[N]`` class labels.
        fractions: train / val / test proportions (normalised to sum to 1).
        seed: the split seed; the same seed always gives the same split.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    keys = np.empty(n)
    for c in np.unique(labels):  # classes in sorted order, so the rng stream is reproducible
        idx = np.flatnonzero(labels == c)
        keys[idx[rng.permutation(idx.size)]] = (np.arange(idx.size) + 0.5) / idx.size
    order = np.lexsort((rng.random(n), keys))  # random tie-break between classes at equal quantiles
    a, b = _cuts(n, fractions)
    return _pack([order[:a], order[a:b], order[b:]])


def check_every_class_in_every_split(labels: np.ndarray, split: Dict[str, np.ndarray], how: str) -> None:
    """Raise ``ValueError`` naming each class that a stratified split left out of a split.

    A class with too few samples cannot be cut into train, val and test; silently training on it
    and never validating or testing it would make its accuracy (and the macro-F1) meaningless.
    """
    labels = np.asarray(labels)
    lacking = []
    for c in np.unique(labels):
        absent = [name for name in SPLITS if split[name].size and not (labels[split[name]] == c).any()]
        if absent:
            lacking.append(f"class {c} ({int((labels == c).sum())} samples, none in {'/'.join(absent)})")
    if lacking:
        raise ValueError(
            f"{how}: too few samples to put every class in train, val and test: {'; '.join(lacking)}. "
            "Add samples, merge or drop the class, or give the split explicitly (split.npy or split=...)"
        )


def group_split(groups: np.ndarray, test_groups: Sequence, val_groups: Sequence) -> Dict[str, np.ndarray]:
    """Split by group (e.g. subject): every sample of a group lands in the same split.

    Samples of ``test_groups`` go to test, of ``val_groups`` to val, all others to train.
    """
    groups = np.asarray(groups)
    known = set(np.unique(groups).tolist())
    for g in list(test_groups) + list(val_groups):
        if g not in known:
            raise ValueError(f"group {g!r} does not occur in the data (groups: {sorted(known)})")
    if set(test_groups) & set(val_groups):
        raise ValueError(f"groups {sorted(set(test_groups) & set(val_groups))} are in both val and test")
    test = np.isin(groups, list(test_groups))
    val = np.isin(groups, list(val_groups))
    return _pack([np.flatnonzero(~test & ~val), np.flatnonzero(val), np.flatnonzero(test)])


def split_from_codes(codes: np.ndarray) -> Dict[str, np.ndarray]:
    """A split from per-sample codes: 0/1/2 or the strings train/val/test (also valid/validation/dev);
    -1 (or ``"none"``) leaves a sample out of every split."""
    codes = np.asarray(codes)
    if codes.ndim != 1:
        raise ValueError(f"split codes must be 1-D (one per sample), got shape {codes.shape}")
    if codes.dtype.kind in "USO":
        lowered = [str(c).strip().lower() for c in codes]
        bad = sorted({c for c in lowered if c not in _CODE_NAMES})
        if bad:
            raise ValueError(f"unknown split code(s) {bad}; use 0/1/2 or train/val/test")
        codes = np.array([_CODE_NAMES[c] for c in lowered], dtype=np.int64)
    else:
        bad = sorted(set(np.unique(codes).tolist()) - {-1, 0, 1, 2})
        if bad:
            raise ValueError(f"unknown split code(s) {bad}; use 0 (train), 1 (val), 2 (test), -1 (none)")
    return _pack(np.flatnonzero(codes == k) for k in range(3))
