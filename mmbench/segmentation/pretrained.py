"""Pretrained backbone weights from a file the user gives (the ``backbone_weights`` setting).

ESANet starts its ResNet-34 branches from ImageNet weights; nothing is downloaded here, so a run starts
from them only when the user points ``backbone_weights`` at a torchvision-layout ``state_dict`` file
(e.g. ``torch.save(torchvision.models.resnet34(weights="IMAGENET1K_V1").state_dict(), path)`` on a
machine with a network; the ``basic`` block then, as the NBt1D blocks have no torchvision weights).
The file is loaded into every :class:`~mmbench.segmentation.backbone.ResNet34Branch` of the method's
networks after they are built (RGB, depth, ShaSpec's shared encoder, a teacher's), with the depth
branch's first kernels summed over RGB as ESANet does.

The result depends on the file's content: the run identity holds the file's SHA-256
(:func:`weights_identity`), so other bytes under the same path make a new key (a stale cache hit is
impossible). The path itself is in the identity only as the user typed it in ``--set`` (the spec's
overrides): the same file under another path is another key for the same run. A run without weights has
no such field, so no key of an existing run changed when the setting was added.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

from mmbench.fingerprint import file_digest

SETTING = "backbone_weights"


def weights_identity(train: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``{"sha256": ..., "bytes": ...}`` of the weights file, or None when the run has none.

    Raises:
        FileNotFoundError: the file named by the setting does not exist.
    """
    path = train.get(SETTING)
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"backbone_weights={path}: no such file (pretrained weights are never downloaded)")
    return {"sha256": file_digest(path), "bytes": path.stat().st_size}  # cached across runs by file stat


def identity_train(train: Dict[str, Any]) -> Dict[str, Any]:
    """The train settings as they enter the identity: the weights' path left out (its hash goes in instead)."""
    return {k: v for k, v in train.items() if k != SETTING}


def apply_backbone_weights(networks: nn.Module, train: Dict[str, Any]) -> int:
    """Load ``train["backbone_weights"]`` into every ResNet-34 branch of ``networks``; returns how many.

    Raises:
        FileNotFoundError / ValueError: the file is missing or does not fit (e.g. ``encoder_layers`` other
        than ResNet-34's, or NBt1D blocks with a torchvision BasicBlock file), naming the file.
    """
    from mmbench.segmentation.backbone import ResNet34Branch

    path = train.get(SETTING)
    if path is None:
        return 0
    branches = [m for m in networks.modules() if isinstance(m, ResNet34Branch)]
    if not branches:
        return 0
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"pretrained backbone weights {path} do not exist (they are never downloaded)")
    state = torch.load(path, map_location="cpu", weights_only=True)  # read once for every branch
    for branch in branches:
        branch.load_torchvision_state(state, path)
    return len(branches)
