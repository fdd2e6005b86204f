"""``prepare nyuv2 --src DIR``: NYUv2's labelled frames into a segmentation cache (40 classes).

Reads the three files of :mod:`mmbench.segmentation.nyuv2` (its class mapping and split readers)::

    DIR/
      nyu_depth_v2_labeled.mat   MATLAB v7.3 (HDF5): images, depths (metres), labels (0 = unlabelled, 1..894)
      splits.mat                 trainNdxs (795), testNdxs (654), 1-based
      classMapping40.mat         mapClass: 894 entries in 1..40

Each frame is one item (id ``frame0001`` .. in the .mat's order, split from ``splits.mat``; a frame in
neither list is prepared but in no split). Labels become ``mapClass[l] - 1`` and 0 becomes void 255.
The frames are written at ``height`` x ``width`` (default 240 x 320, half of 480 x 640 per side so a
CPU run is affordable; ``--set height=0 width=0`` keeps the full 480 x 640 of the papers), see
:mod:`mmbench.segmentation.prepared` for the resizing. Depth stays in metres.

Split sizes other than the official 795 / 654 are accepted (a subset, a fixture) and printed as a
note by ``prepare``; the data set is then not the papers' benchmark.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Tuple

import numpy as np

from mmbench.prepare.base import Item, Listing, register_preparer
from mmbench.segmentation.nyuv2 import (
    LABELED_MAT,
    MAPPING_MAT,
    OFFICIAL_SIZES,
    RAW_CLASSES,
    SPLITS_MAT,
    read_class_mapping,
    read_splits,
)
from mmbench.segmentation.prepared import SegmentationPreparer, resize_frame, skip_unless, target_size

# Gupta et al.'s 40 classes, in the order of classMapping40.mat's values 1..40
NYUV2_CLASS_NAMES = (
    "wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
    "counter", "blinds", "desk", "shelves", "curtain", "dresser", "pillow", "mirror", "floor mat", "clothes",
    "ceiling", "books", "refrigerator", "television", "paper", "towel", "shower curtain", "box", "whiteboard",
    "person", "night stand", "toilet", "sink", "lamp", "bathtub", "bag", "otherstructure", "otherfurniture",
    "otherprop",
)
NATIVE_SIZE = (480, 640)
LAYOUT_HINT = ("expected DIR/nyu_depth_v2_labeled.mat (MATLAB v7.3), DIR/splits.mat and DIR/classMapping40.mat "
               "(README: NYUv2)")


def _need(src: Path, name: str) -> Path:
    path = src / name
    if not path.is_file():
        raise FileNotFoundError(f"prepare nyuv2: {path} is missing; {LAYOUT_HINT}")
    return path


def read_labeled_frame(mat: Path, index: int, mapping: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``index`` (0-based) of the labelled .mat: rgb uint8 ``[H, W, 3]``, depth ``[H, W]`` metres,
    labels ``[H, W]`` in [0, 40) or void (h5py sees MATLAB's arrays with the dimensions reversed)."""
    import h5py

    with h5py.File(mat, "r") as f:
        rgb = np.asarray(f["images"][index]).transpose(2, 1, 0)  # [3, W, H] -> [H, W, 3]
        depth = np.asarray(f["depths"][index], dtype=np.float32).T
        raw = np.asarray(f["labels"][index]).T.astype(np.int64)
    skip_unless(raw.max(initial=0) <= RAW_CLASSES, "label out of range",
                f"frame {index + 1}: raw label {raw.max()} > {RAW_CLASSES}")
    return rgb, depth, mapping[raw]


class NYUv2(SegmentationPreparer):
    name = "nyuv2"
    description = "NYUv2 labelled RGB-D frames (nyu_depth_v2_labeled.mat), 40-class segmentation"
    defaults = {"height": 240, "width": 320}
    datasets = {"nyuv2": "official"}
    dataset_descriptions = {"nyuv2": "segmentation: NYUv2 RGB-D, 40 classes, the user's 795 / 654 split "
                                     "(prepare nyuv2 --src DIR)"}
    class_names = NYUV2_CLASS_NAMES
    rgb_modalities = ("rgb",)
    native: Tuple[int, int] = NATIVE_SIZE  # the .mat's frame size, read by list_items

    def frame_size(self, settings: Dict[str, Any]) -> Tuple[int, int]:
        return target_size(settings, self.native)

    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        try:
            import h5py
        except ImportError as err:
            raise ImportError("h5py is needed to read nyu_depth_v2_labeled.mat (MATLAB v7.3): "
                              "pip install -e \".[rgbd]\" (or pip install h5py)") from err
        from mmbench.prepare.frontends import require

        require("PIL")
        if not src.is_dir():
            raise NotADirectoryError(f"prepare nyuv2: --src {str(src)!r} is not a folder; {LAYOUT_HINT}")
        mat = _need(src, LABELED_MAT)
        mapping_path, splits_path = _need(src, MAPPING_MAT), _need(src, SPLITS_MAT)
        read_class_mapping(mapping_path)  # a bad mapping file fails here, naming it
        splits = read_splits(splits_path, official=False)
        try:
            with h5py.File(mat, "r") as f:
                missing = [k for k in ("images", "depths", "labels") if k not in f]
                if missing:
                    raise ValueError(f"prepare nyuv2: {mat} has no {missing} (found {sorted(f.keys())}); is it the "
                                     "labelled subset's file?")
                n, channels, w, h = f["images"].shape
                if channels != 3 or f["depths"].shape != (n, w, h) or f["labels"].shape != (n, w, h):
                    raise ValueError(f"prepare nyuv2: {mat}: images {f['images'].shape}, depths {f['depths'].shape}, "
                                     f"labels {f['labels'].shape} are not H x W x 3 x N, H x W x N, H x W x N")
        except OSError as err:
            raise ValueError(f"prepare nyuv2: {mat} is not a MATLAB v7.3 (HDF5) file ({err}); {LAYOUT_HINT}") from None
        for part, idx in splits.items():
            if idx.size and (idx.min() < 0 or idx.max() >= n):
                raise ValueError(f"prepare nyuv2: {splits_path} lists {part} frame {idx.max() + 1}; the .mat has {n}")
        self.native = (int(h), int(w))
        target_size(settings, self.native)  # a bad height / width fails before any work
        part_of = {int(i): part for part, idx in splits.items() for i in idx}
        sources = {"mat": str(mat), "mapping": str(mapping_path), "splits": str(splits_path)}
        items = [Item(id=f"frame{i + 1:04d}", label=0, split=part_of.get(i, ""), paths=dict(sources), payload=i)
                 for i in range(n)]
        sizes = {part: int(idx.size) for part, idx in splits.items()}
        notes: Dict[str, Any] = {"split_sizes": sizes, "native_size": list(self.native)}
        if sizes != OFFICIAL_SIZES:
            notes["split_check"] = {"message": f"{splits_path.name} lists {sizes['train']} train / {sizes['test']} "
                                               f"test frames, not the official 795 / 654: not the papers' benchmark"}
        return Listing(items, list(NYUV2_CLASS_NAMES), notes=notes)

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        mapping = read_class_mapping(Path(item.paths["mapping"]))
        rgb, depth, labels = read_labeled_frame(Path(item.paths["mat"]), int(item.payload), mapping)
        return resize_frame(rgb, depth, labels, self.frame_size(settings))


register_preparer(NYUv2())
