"""Build a validated :class:`MultimodalDataset` from plain arrays (shared by register_arrays and folders)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.splits import check_every_class_in_every_split, random_split, split_from_codes, stratified_split
from mmbench.data.validate import KIND_NDIM, validate

_NDIM_KIND = {v: k for k, v in KIND_NDIM.items()}

_KIND_WORD = {"U": "text", "S": "bytes", "O": "Python objects", "M": "dates", "m": "time spans", "c": "complex numbers"}

SplitArg = Union[None, str, Mapping[str, np.ndarray], np.ndarray]


def _infer_kind(name: str, arr: np.ndarray) -> str:
    per_sample = arr.ndim - 1
    if per_sample not in _NDIM_KIND:
        raise ValueError(f"modality {name!r}: cannot infer a kind from shape {arr.shape}; give kinds={{{name!r}: ...}} "
                         f"(vector [N, D], series [N, C, T], image [N, C, H, W], video [N, T, C, H, W])")
    return _NDIM_KIND[per_sample]


def _make_split(split: SplitArg, labels: np.ndarray, split_seed: int) -> Dict[str, np.ndarray]:
    if split is None or (isinstance(split, str) and split == "stratified"):
        parts = stratified_split(labels, seed=split_seed)
        check_every_class_in_every_split(labels, parts, "stratified 60/20/20 split")
        return parts
    if isinstance(split, str):
        if split != "random":
            raise ValueError(f"split must be None/'stratified', 'random', a dict of indices or per-sample codes, "
                             f"got {split!r}")
        return random_split(labels.shape[0], seed=split_seed)
    if isinstance(split, Mapping):
        return {k: np.asarray(v, dtype=np.int64) for k, v in split.items()}
    return split_from_codes(np.asarray(split))


def build_dataset(name: str, modalities: Mapping[str, np.ndarray], labels, num_classes: Optional[int] = None,
                  split: SplitArg = None, kinds: Optional[Mapping[str, str]] = None, split_seed: int = 0,
                  class_names: Optional[Sequence[str]] = None, groups=None, source: str = "") -> MultimodalDataset:
    """A validated :class:`MultimodalDataset` from arrays (see :func:`register_arrays` for the arguments).

    A ``[N]`` modality array is taken as a 1-feature vector ``[N, 1]``. Arrays are cast to float32.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D [N], got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        if labels.dtype.kind == "f" and np.array_equal(labels, np.round(labels)):
            labels = labels.astype(np.int64)
        else:
            raise ValueError(f"labels must be integers 0..C-1, got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
    if num_classes is None and class_names is None and labels.size:
        # C inferred from the labels: a gap ({0, 1, 7} -> 8 classes, 5 never seen) is almost surely a
        # labelling slip, and would silently change chance level and macro-F1; declare C to mean it.
        absent = sorted(set(range(int(labels.max()) + 1)) - set(np.unique(labels).tolist()))
        if absent and labels.min() >= 0:
            raise ValueError(f"labels take the values {sorted(np.unique(labels).tolist())[:20]}: classes {absent[:20]} "
                             "have no sample; relabel to 0..C-1, or declare num_classes (meta.json) if some "
                             "classes are truly absent")
    if num_classes is None:
        num_classes = len(class_names) if class_names is not None else int(labels.max()) + 1 if labels.size else 0
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(modalities))
    if unknown:
        raise ValueError(f"kinds given for unknown modality {unknown[0]!r}; modalities: {', '.join(modalities)}")
    specs, arrays = [], {}
    for mname, arr in modalities.items():
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            what = _KIND_WORD.get(arr.dtype.kind, "not numbers")
            raise ValueError(f"modality {mname!r} holds {arr.dtype} values ({what}); a modality must be numeric")
        if arr.ndim == 1:
            arr = arr[:, None]
        kind = kinds.get(mname) or _infer_kind(mname, arr)
        if kind in KIND_NDIM and arr.ndim == KIND_NDIM[kind]:  # [N, H, W] image, [N, T] series: add one channel
            arr = arr[:, None]
        arrays[mname] = np.ascontiguousarray(arr, dtype=np.float32)
        specs.append(ModalitySpec(mname, kind, tuple(int(s) for s in arr.shape[1:])))
    return validate(MultimodalDataset(
        name=name, specs=specs, arrays=arrays, labels=labels, num_classes=int(num_classes),
        split=_make_split(split, labels, split_seed),
        class_names=list(class_names) if class_names is not None else None,
        groups=None if groups is None else np.asarray(groups, dtype=np.int64),
        source=source or "user arrays",
    ))
