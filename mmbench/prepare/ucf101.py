"""UCF101: RGB frames + stacked TV-L1 optical flow, official splits 1-3 (layout: :mod:`mmbench.data.layouts.ucf101`).

``prepare ucf101 --src DIR [--set split=2]`` writes two ``image`` modalities:

* ``rgb`` ``[3 * n_frames, size, size]``: the centre frame of each of ``n_frames`` equal segments of
  the video (TSN's test-time sampling; ``n_frames=1`` is the middle frame), resized, ImageNet-normalised;
* ``flow`` ``[2 * flow_frames, size, size]``: ``flow_frames`` consecutive (u, v) pairs from the middle
  of the video, interleaved u1 v1 u2 v2 ... (the two-stream input of Simonyan & Zisserman 2014, who
  stack L = 10); the jpgs store flow shifted to 128, so values are mapped to [-1, 1] by ``x / 127.5 - 1``.

Defaults: ``split=1`` (official split 1: 9,537 / 3,783), ``val_groups=2`` (the two highest-numbered
train groups become val: group-disjoint, as the official splits are), ``n_frames=1``, ``flow_frames=10``
(L = 10, Simonyan & Zisserman), ``size=224`` (the ImageNet input size those networks use),
``normalize=true``, ``min_frames=1``. The split is part of the settings, so each split is its own cache.
``val_groups=0`` leaves no group for val; the loader then carves 10% of the train clips (stratified,
``split_seed``), which puts clips of one group on both sides: prefer ``val_groups >= 1``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.data.layouts import scan_ucf101
from mmbench.prepare.base import Item, register_preparer
from mmbench.prepare.scanned import ScannedPreparer, centred, frame_files, middle, read_image, stacked_frames


class UCF101(ScannedPreparer):
    name = "ucf101"
    description = "UCF101 RGB frames + TV-L1 flow (u, v), 101 actions, official split 1/2/3"
    scanner = staticmethod(scan_ucf101)
    scan_settings = ("split", "val_groups", "min_frames")
    scan_fixed: Dict[str, Any] = {}  # val is carved by group in the scan (val_groups)
    defaults = {"split": 1, "val_groups": 2, "n_frames": 1, "flow_frames": 10, "size": 224, "normalize": True,
                "min_frames": 1}
    datasets = {"ucf101": "lists"}
    rgb_modalities = ("rgb",)  # not flow: a flipped flow field would need its u component negated
    dataset_descriptions = {"ucf101": "UCF101 (prepared cache): rgb + stacked TV-L1 flow, 101 classes, "
                                      "official split (setting split=1|2|3), group-disjoint val"}

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        size = int(settings["size"])
        return [ModalitySpec("rgb", "image", (3 * int(settings["n_frames"]), size, size)),
                ModalitySpec("flow", "image", (2 * int(settings["flow_frames"]), size, size))]

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        size, flow_n = int(settings["size"]), int(settings["flow_frames"])
        rgb = stacked_frames(Path(item.paths["frames"]), centred, int(settings["n_frames"]), size, "RGB",
                             bool(settings["normalize"]))
        u, v = frame_files(Path(item.paths["flow_u"])), frame_files(Path(item.paths["flow_v"]))
        pairs = []
        for i in middle(min(len(u), len(v)), flow_n):
            pairs += [read_image(u[i], size, "L"), read_image(v[i], size, "L")]
        flow = np.concatenate(pairs, axis=0) * 2.0 - 1.0  # [0, 1] -> [-1, 1]: x / 127.5 - 1 on the bytes
        return {"rgb": rgb, "flow": flow.astype(np.float32)}


register_preparer(UCF101())
