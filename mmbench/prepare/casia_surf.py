"""CASIA-SURF: aligned RGB / depth / IR face images, live vs spoof (layout: :mod:`mmbench.data.layouts.casia_surf`).

``prepare casia-surf --src DIR`` writes three ``image`` modalities: ``rgb`` ``[3, size, size]``,
``depth`` ``[1, size, size]``, ``ir`` ``[1, size, size]``, scaled to [0, 1] (``normalize=false``: the
harness standardises every modality with train-split statistics; ``true`` applies ImageNet mean / std
to ``rgb``).

Defaults: ``size=112`` (the input size of the DMRNet / MMANet CASIA-SURF code, docs methods.md;
their train-time resize-144 / rotate / crop augmentation is not applied to a fixed cache),
``resize=released`` (their test transform's ``cv2.resize``: bilinear without antialiasing, which
aliases when a face crop larger than 112 is shrunk; ``pillow``: Pillow's antialiased bilinear, up to
76 grey levels apart on textured crops, ``docs/data-pipelines.md``), ``normalize=false``,
``val_fraction=0.1`` (used only when no labelled val list exists; then val is carved from train,
stratified, with the loader's ``split_seed``). The released loaders read every image as 3-channel BGR
and scale to ``(x - 127.5) / 128``; here depth and IR have one channel, RGB is in RGB order and the
scale is [0, 1], which the harness's per-modality standardisation makes equivalent.

Evaluation: the data set declares ``extra_metrics="anti_spoofing"``, so every run also reports APCER,
BPCER and ACER (live = class 1) for each modality combination (``metrics["extra"]``), beside accuracy.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.data.layouts import scan_casia_surf
from mmbench.data.layouts.casia_surf import MODALITIES
from mmbench.prepare import frontends
from mmbench.prepare.base import Item, register_preparer
from mmbench.prepare.scanned import ScannedPreparer, read_image

CHANNELS = {"rgb": 3, "depth": 1, "ir": 1}
RESIZES = ("released", "pillow")


def read_image_unsmoothed(path: Path, size: int, mode: str) -> np.ndarray:
    """``read_image`` with the released loaders' resize: ``cv2.resize`` (bilinear, half-pixel centres,
    no antialiasing) to ``size`` x ``size``, rounded to 8 bits, as float32 ``[channels, size, size]``
    in [0, 1]. Done with ``torch.nn.functional.interpolate(bilinear, align_corners=False,
    antialias=False)``, the same sampling, so OpenCV is not needed."""
    import torch

    full = read_image(path, 0, mode)  # size 0: the decoded image as is
    x = torch.from_numpy(full.astype(np.float64) * 255.0).unsqueeze(0)
    y = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=False)
    return (y[0].round().clamp(0, 255) / 255.0).numpy().astype(np.float32)


class CasiaSurf(ScannedPreparer):
    name = "casia-surf"
    description = "CASIA-SURF RGB + depth + IR faces, live / spoof; challenge list files"
    scanner = staticmethod(scan_casia_surf)
    extra_metrics = "anti_spoofing"
    defaults = {"size": 112, "normalize": False, "val_fraction": 0.1, "resize": "released"}
    datasets = {"casia-surf": "lists"}
    rgb_modalities = ("rgb",)
    dataset_descriptions = {"casia-surf": "CASIA-SURF (prepared cache): rgb [3,112,112] + depth + ir [1,112,112], "
                                          "live/spoof, APCER/BPCER/ACER per modality combination"}

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        size = int(settings["size"])
        return [ModalitySpec(m, "image", (CHANNELS[m], size, size)) for m in MODALITIES]

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        size, resize = int(settings["size"]), str(settings["resize"])
        if resize not in RESIZES:
            raise ValueError(f"casia-surf: resize={resize!r}; expected one of {', '.join(RESIZES)}")
        read = read_image if resize == "pillow" else read_image_unsmoothed
        out = {m: read(Path(item.paths[m]), size, "RGB" if m == "rgb" else "L") for m in MODALITIES}
        if settings["normalize"]:
            out["rgb"] = (out["rgb"] - frontends.IMAGENET_MEAN[:, None, None]) / frontends.IMAGENET_STD[:, None, None]
        return {m: x.astype(np.float32) for m, x in out.items()}


register_preparer(CasiaSurf())
