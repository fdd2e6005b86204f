"""``prepare cityscapes --src DIR``: Cityscapes' finely annotated frames into a segmentation cache (19 classes).

Layout read (the official packages leftImg8bit_trainvaltest, disparity_trainvaltest, gtFine_trainvaltest
and, optionally, camera_trainvaltest, unpacked into one folder)::

    DIR/
      leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png   8-bit RGB
      disparity/{train,val}/<city>/<city>_<seq>_<frame>_disparity.png       16-bit, 0 = invalid
      gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    8-bit label ids 0..33
      camera/{train,val}/<city>/<city>_<seq>_<frame>_camera.json            optional

Splits: ``train`` (2,975 frames) is train and ``val`` (500) is test, as the papers report Cityscapes
(the test split's labels are withheld, so ``leftImg8bit/test`` is not read). Validation is carved from
train by the runner, never taken from val.

Labels: the label ids become the 19 train ids of cityscapesScripts' ``labels.py`` (road 7 -> 0, ...,
bicycle 33 -> 18); every other id (unlabelled, ego vehicle, ..., license plate) is void 255.

Depth (metres) from disparity, the Cityscapes conversion ESANet's preparation also uses:
``d = (p - 1) / 256`` for a stored value ``p > 0``, ``depth = baseline * fx / d`` where ``d > 0``, and 0
(invalid) where ``p`` is 0 or 1. ``baseline`` and ``fx`` are read from the frame's camera json
(``extrinsic.baseline``, ``intrinsic.fx``) when ``DIR/camera`` exists (then a frame without one is
skipped), else the common values 0.209313 m and 2262.52 px are used; the cache's notes say which.
Depths above ``max_depth`` (300 m, as ESANet's loader) are set to 0 (invalid).

``depth_input``: ``depth`` (default, the metres above, as the issue and the papers describe the
input) or ``disparity``: the stored 16-bit disparity values as they are (0 = invalid), which is what
ESANet's Cityscapes loader feeds by default (``disparity_instead_of_depth=True``).

Frames are written at ``height`` x ``width`` (default 256 x 512, a quarter of 1024 x 2048 per side,
for CPU runs; ESANet trains at 512 x 1024; ``--set height=0 width=0`` keeps the source size).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Tuple

import numpy as np

from mmbench.prepare.base import Item, Listing, register_preparer
from mmbench.segmentation.labels import VOID_INDEX
from mmbench.segmentation.prepared import SegmentationPreparer, resize_frame, skip_unless, target_size

CITYSCAPES_CLASS_NAMES = ("road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
                          "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
                          "motorcycle", "bicycle")
# label id -> train id for the 19 evaluated classes (cityscapesScripts labels.py); every other id is void
TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}
STANDARD_CAMERA = {"baseline": 0.209313, "fx": 2262.52}
SPLIT_OF = {"train": "train", "val": "test"}  # Cityscapes folder -> the harness's split
NATIVE_SIZE = (1024, 2048)
DEPTH_INPUTS = ("depth", "disparity")
FOLDERS = ("leftImg8bit", "disparity", "gtFine")
SUFFIX = {"rgb": "_leftImg8bit.png", "disparity": "_disparity.png", "labels": "_gtFine_labelIds.png",
          "camera": "_camera.json"}
LAYOUT_HINT = ("expected DIR/{leftImg8bit,disparity,gtFine}/{train,val}/<city>/<frame>_{leftImg8bit,disparity,"
               "gtFine_labelIds}.png (README: Cityscapes)")


def label_ids_to_train_ids(label_ids: np.ndarray) -> np.ndarray:
    """uint8 ``[H, W]``: the 19 train ids, void 255 for every other label id."""
    lut = np.full(256, VOID_INDEX, dtype=np.uint8)
    for label_id, train_id in TRAIN_IDS.items():
        lut[label_id] = train_id
    return lut[np.asarray(label_ids, dtype=np.uint8)]


def disparity_to_depth(raw: np.ndarray, baseline: float, fx: float, max_depth: float) -> np.ndarray:
    """float32 ``[H, W]`` metres from the stored 16-bit disparity (module docstring); 0 = invalid."""
    disparity = np.where(raw > 0, (raw.astype(np.float64) - 1.0) / 256.0, 0.0)
    depth = np.zeros(raw.shape, dtype=np.float64)
    valid = disparity > 0
    depth[valid] = baseline * fx / disparity[valid]
    depth[depth > max_depth] = 0.0
    return depth.astype(np.float32)


def read_camera(path: Path) -> Tuple[float, float]:
    """``(baseline, fx)`` from a Cityscapes camera json."""
    try:
        cam = json.loads(path.read_text())
        return float(cam["extrinsic"]["baseline"]), float(cam["intrinsic"]["fx"])
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a Cityscapes camera file with extrinsic.baseline and intrinsic.fx ({err})") \
            from None


class Cityscapes(SegmentationPreparer):
    name = "cityscapes"
    description = "Cityscapes fine annotations with disparity-derived depth, 19-class segmentation"
    defaults = {"height": 256, "width": 512, "max_depth": 300.0, "depth_input": "depth"}
    datasets = {"cityscapes": "official"}
    dataset_descriptions = {"cityscapes": "segmentation: Cityscapes RGB-D (depth from disparity), 19 classes, "
                                          "train / val as test (prepare cityscapes --src DIR)"}
    class_names = CITYSCAPES_CLASS_NAMES
    rgb_modalities = ("rgb",)
    native: Tuple[int, int] = NATIVE_SIZE  # the first frame's size, read by list_items

    def frame_size(self, settings: Dict[str, Any]) -> Tuple[int, int]:
        return target_size(settings, self.native)

    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        from mmbench.prepare.frontends import require

        require("PIL")  # an ImportError naming the extra, not a failure per frame
        from PIL import Image
        if not src.is_dir():
            raise NotADirectoryError(f"prepare cityscapes: --src {str(src)!r} is not a folder; {LAYOUT_HINT}")
        for folder in FOLDERS:
            for split in SPLIT_OF:
                if not (src / folder / split).is_dir():
                    raise FileNotFoundError(f"prepare cityscapes: folder {src / folder / split} is missing; "
                                            f"{LAYOUT_HINT}")
        use_json = (src / "camera").is_dir()
        items: List[Item] = []
        skipped: List[Tuple[str, str]] = []
        for split, part in SPLIT_OF.items():
            frames = sorted((src / "leftImg8bit" / split).glob(f"*/*{SUFFIX['rgb']}"))
            if not frames:
                raise ValueError(f"prepare cityscapes: no <city>/*{SUFFIX['rgb']} under {src / 'leftImg8bit' / split}; "
                                 f"{LAYOUT_HINT}")
            for rgb in frames:
                city, stem = rgb.parent.name, rgb.name[: -len(SUFFIX["rgb"])]
                paths = {"rgb": str(rgb)}
                for role, folder in (("disparity", "disparity"), ("labels", "gtFine")) + (
                        (("camera", "camera"),) if use_json else ()):
                    path = src / folder / split / city / f"{stem}{SUFFIX[role]}"
                    paths[role] = str(path)
                    if not path.is_file():
                        skipped.append((str(path), f"no {folder} file for {rgb.name}"))
                        break
                else:
                    items.append(Item(id=f"{split}/{city}/{stem}", label=0, split=part, group=city, paths=paths))
        if items:
            with Image.open(items[0].paths["rgb"]) as first:
                self.native = (first.height, first.width)
        target_size(settings, self.native)  # a bad height / width fails before any work
        if settings["depth_input"] not in DEPTH_INPUTS:
            raise ValueError(f"prepare cityscapes: depth_input={settings['depth_input']!r}; one of "
                             f"{', '.join(DEPTH_INPUTS)}")
        camera = "per-frame camera json (DIR/camera)" if use_json else \
            f"standard baseline {STANDARD_CAMERA['baseline']} m, fx {STANDARD_CAMERA['fx']} px (no DIR/camera)"
        notes = {"camera": camera, "splits": "train -> train, val -> test; leftImg8bit/test not read (no labels)",
                 "native_size": list(self.native)}
        return Listing(items, list(CITYSCAPES_CLASS_NAMES), skipped=skipped, notes=notes)

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        from PIL import Image

        with Image.open(item.paths["rgb"]) as im:
            rgb = np.asarray(im.convert("RGB"))
        with Image.open(item.paths["disparity"]) as im:
            raw = np.asarray(im).astype(np.int64)
        with Image.open(item.paths["labels"]) as im:
            label_ids = np.asarray(im)
        shape = rgb.shape[:2]
        skip_unless(raw.shape == shape and label_ids.shape == shape, "sizes disagree",
                    f"{item.id}: rgb {shape}, disparity {raw.shape}, labels {label_ids.shape}")
        skip_unless(label_ids.ndim == 2 and label_ids.dtype == np.uint8, "not a label-id image",
                    f"{item.id}: {item.paths['labels']} is {label_ids.dtype} {label_ids.shape}, not 8-bit ids")
        if settings["depth_input"] == "disparity":  # ESANet's default input: the stored values, 0 invalid
            depth = raw.astype(np.float32)
        else:
            baseline, fx = (read_camera(Path(item.paths["camera"])) if "camera" in item.paths
                            else (STANDARD_CAMERA["baseline"], STANDARD_CAMERA["fx"]))
            depth = disparity_to_depth(raw, baseline, fx, float(settings["max_depth"]))
        return resize_frame(rgb, depth, label_ids_to_train_ids(label_ids), self.frame_size(settings))


register_preparer(Cityscapes())
