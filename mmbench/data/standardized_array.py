"""A standardised view of an array that is computed per read: ``(x[rows] - mean) / std``, never stored.

``standardize(dataset, lazy=True)`` wraps each modality in one, so a prepared data set (CREMA-D frames:
4.5 GB as a memory map) trains through ``loader=stream`` without a standardised copy in RAM: a
DataLoader item reads one row of the memory map and standardises it. The arithmetic is the one
``standardize`` applies to a materialised copy (float32 minus float64 statistics, cast to float32),
so both give bit-identical values.
"""
from __future__ import annotations

import mmap
from typing import Any, Tuple

import numpy as np


class StandardizedArray:
    """Read-only ``[N, *shape]`` float32 view ``(source - mean) / std`` of ``source``, row-indexed.

    Args:
        source: ``[N, *shape]`` array (``np.ndarray`` or a read-only ``np.memmap``); only the rows an
            index names are read.
        mean, std: float64 statistics with a leading 1 (``[1, *broadcast shape]``, as ``standardize``
            computes them with ``keepdims``).

    Pickles by reference when ``source`` is a whole ``.npy`` memory map (a DataLoader worker started
    with ``spawn`` reopens the file instead of receiving the array's bytes).
    """

    def __init__(self, source: np.ndarray, mean: np.ndarray, std: np.ndarray):
        if mean.shape[0] != 1 or std.shape != mean.shape:
            raise ValueError(f"statistics need a leading axis of 1 and equal shapes, got {mean.shape} and {std.shape}")
        self.source, self.mean, self.std = source, mean, std

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.source.shape)

    @property
    def ndim(self) -> int:
        return len(self.source.shape)

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(np.float32)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * 4

    def __len__(self) -> int:
        return int(self.source.shape[0])

    def __getitem__(self, rows: Any) -> np.ndarray:
        """Rows ``rows`` (an int -> ``[*shape]``; a slice or an index array -> ``[k, *shape]``), standardised."""
        if isinstance(rows, tuple):
            raise TypeError("a StandardizedArray is indexed by rows only (an int, a slice or an index array); "
                            "index the returned rows for anything finer")
        x = self.source[rows]
        one_row = np.ndim(x) == self.ndim - 1
        mean, std = (self.mean[0], self.std[0]) if one_row else (self.mean, self.std)
        return ((x - mean) / std).astype(np.float32)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        # Materialises the whole array: only for small data or explicit use, never on the training path.
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def __reduce__(self):
        src = self.source
        if isinstance(src, np.memmap) and isinstance(src.base, mmap.mmap) and src.filename:
            order = "F" if src.flags.f_contiguous and not src.flags.c_contiguous else "C"
            return _reopen, (src.filename, src.dtype.str, src.shape, int(src.offset), order, self.mean, self.std)
        return StandardizedArray, (np.asarray(src), self.mean, self.std)

    def __repr__(self) -> str:
        return f"StandardizedArray(shape={self.shape}, source={type(self.source).__name__})"


def _reopen(filename: str, dtype: str, shape, offset: int, order: str, mean: np.ndarray,
            std: np.ndarray) -> StandardizedArray:
    return StandardizedArray(np.memmap(filename, dtype=np.dtype(dtype), mode="r", shape=tuple(shape), offset=offset,
                                       order=order), mean, std)
