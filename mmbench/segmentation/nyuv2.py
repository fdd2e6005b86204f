"""NYUv2 (labelled subset, 1,449 RGB-D frames) from the user's files, for the 40-class segmentation task.

Layout read from ``--src DIR`` (nothing is downloaded; the three files are the ones ESANet's and the
papers' preparation scripts fetch)::

    DIR/
      nyu_depth_v2_labeled.mat   MATLAB v7.3 (HDF5): images H x W x 3 x N uint8, depths H x W x N
                                 float (metres), labels H x W x N uint16 (0 = unlabelled, 1..894)
      splits.mat                 MATLAB v5: trainNdxs (795) and testNdxs (654), 1-based frame indices
      classMapping40.mat         MATLAB v5: mapClass, 894 entries in 1..40 (Gupta et al.'s 40 classes)

h5py sees a MATLAB array with its dimensions reversed (``images`` as ``[N, 3, W, H]``), so every frame
is transposed back to ``[3, H, W]``. Labels become ``mapClass[l] - 1`` in ``[0, 40)`` and unlabelled
pixels (0) the void index 255, the convention of :mod:`mmbench.segmentation.metrics`.

:func:`prepare_nyuv2` writes ``<out>/{train,test}_{rgb,depth,labels}.npy`` (uint8 ``[N, 3, H, W]``,
float32 ``[N, 1, H, W]``, uint8 ``[N, H, W]``), frame by frame into memory-mapped files (the labelled
set is about 1.3 GB of RGB at 480 x 640). Not wired into ``python -m mmbench prepare`` yet
(``docs/segmentation.md``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import numpy as np

from mmbench.segmentation.labels import VOID_INDEX

LABELED_MAT, SPLITS_MAT, MAPPING_MAT = "nyu_depth_v2_labeled.mat", "splits.mat", "classMapping40.mat"
NUM_CLASSES = 40
RAW_CLASSES = 894
OFFICIAL_SIZES = {"train": 795, "test": 654}
MAPPING_KEYS = ("mapClass", "mapping")  # the name in classMapping40.mat, and in some re-distributions


def _require(src: Path, name: str) -> Path:
    path = src / name
    if not path.is_file():
        raise FileNotFoundError(f"nyuv2: {path} is missing (expected layout: see mmbench.segmentation.nyuv2)")
    return path


def read_class_mapping(path: Path) -> np.ndarray:
    """``[895]`` int lookup: raw label (0..894) -> 40-class label in [0, 40), or VOID_INDEX for 0."""
    from scipy.io import loadmat

    mat = loadmat(path)
    key = next((k for k in MAPPING_KEYS if k in mat), None)
    if key is None:
        found = [k for k in mat if not k.startswith("__")]
        raise ValueError(f"nyuv2: {path} holds {found}, none of {MAPPING_KEYS} (the 894 -> 40 class mapping)")
    mapping = np.asarray(mat[key]).ravel().astype(np.int64)
    if mapping.size != RAW_CLASSES or mapping.min() < 1 or mapping.max() > NUM_CLASSES:
        raise ValueError(f"nyuv2: {path}:{key} has {mapping.size} entries in [{mapping.min()}, {mapping.max()}]; "
                         f"expected {RAW_CLASSES} entries in [1, {NUM_CLASSES}]")
    return np.concatenate([[VOID_INDEX], mapping - 1])


def read_splits(path: Path, official: bool = True) -> Dict[str, np.ndarray]:
    """``{"train": [795], "test": [654]}`` 0-based frame indices from ``splits.mat`` (1-based inside).

    Args:
        official: require the official 795 / 654 sizes (False for a fixture or a custom split).
    """
    from scipy.io import loadmat

    mat = loadmat(path)
    out = {}
    for part, key in (("train", "trainNdxs"), ("test", "testNdxs")):
        if key not in mat:
            raise ValueError(f"nyuv2: {path} has no {key}")
        out[part] = np.asarray(mat[key]).ravel().astype(np.int64) - 1
        if official and out[part].size != OFFICIAL_SIZES[part]:
            raise ValueError(f"nyuv2: {path}:{key} lists {out[part].size} frames, the official split "
                             f"{OFFICIAL_SIZES[part]}")
    if np.intersect1d(out["train"], out["test"]).size:
        raise ValueError(f"nyuv2: {path} lists some frames in both train and test")
    return out


def prepare_nyuv2(src: Union[str, Path], out: Union[str, Path], official: bool = True) -> Dict[str, int]:
    """Read the three files under ``src`` and write the split arrays under ``out``; returns frames per split."""
    import h5py

    src, out = Path(src), Path(out)
    mapping = read_class_mapping(_require(src, MAPPING_MAT))
    splits = read_splits(_require(src, SPLITS_MAT), official)
    out.mkdir(parents=True, exist_ok=True)
    with h5py.File(_require(src, LABELED_MAT), "r") as f:
        for name in ("images", "depths", "labels"):
            if name not in f:
                raise ValueError(f"nyuv2: {src / LABELED_MAT} has no '{name}' (found {sorted(f.keys())})")
        images, depths, labels = f["images"], f["depths"], f["labels"]
        n, _, w, h = images.shape  # MATLAB H x W x 3 x N, reversed
        if depths.shape != (n, w, h) or labels.shape != (n, w, h):
            raise ValueError(f"nyuv2: images {images.shape}, depths {depths.shape}, labels {labels.shape} disagree")
        for part, idx in splits.items():
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"nyuv2: the {part} split indexes frame {idx.max() + 1}, the .mat has {n}")
            rgb = np.lib.format.open_memmap(out / f"{part}_rgb.npy", "w+", np.uint8, (idx.size, 3, h, w))
            dep = np.lib.format.open_memmap(out / f"{part}_depth.npy", "w+", np.float32, (idx.size, 1, h, w))
            lab = np.lib.format.open_memmap(out / f"{part}_labels.npy", "w+", np.uint8, (idx.size, h, w))
            for j, i in enumerate(idx):
                rgb[j] = np.asarray(images[i]).transpose(0, 2, 1)
                dep[j, 0] = np.asarray(depths[i]).T
                raw = np.asarray(labels[i]).T.astype(np.int64)
                if raw.max() > RAW_CLASSES:
                    raise ValueError(f"nyuv2: frame {i + 1} has label {raw.max()} > {RAW_CLASSES}")
                lab[j] = mapping[raw]
            for arr in (rgb, dep, lab):
                arr.flush()
    return {part: int(idx.size) for part, idx in splits.items()}
