"""One ResNet-34 branch per modality: torchvision's network, or ESANet's variant with NonBottleneck1D blocks.

The branch exposes the stages ESANet fuses after: ``stem`` (7x7 conv, BN, ReLU -> 1/2, 64 ch), then
max-pool and ``layer1`` .. ``layer4`` (1/4 64, 1/8 128, 1/16 256, 1/32 512 ch).

Pretrained weights come only from a file the user gives (a torchvision-layout ``state_dict`` for
ResNet-34, e.g. ImageNet weights saved with ``torch.save(resnet34(weights=...).state_dict(), path)``);
nothing is downloaded. For a 1-channel depth branch the stem's RGB kernels are summed over the input
channels (what ESANet does with ImageNet weights for depth). The NBt1D variant has no torchvision
weights; its file must hold this module's own keys (ESANet ships such ImageNet weights).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence, Union

import torch
from torch import nn

from mmbench.models.resnet import import_torchvision
from mmbench.segmentation.blocks import NonBottleneck1D

STAGE_CHANNELS = (64, 64, 128, 256, 512)  # stem, layer1 .. layer4
BLOCKS = ("basic", "nbt1d")
RESNET34_LAYERS = (3, 4, 6, 3)  # residual blocks per stage


class ResNet34Branch(nn.Module):
    """Images ``[B, in_channels, H, W]`` -> the five stage outputs (see module docstring).

    Args:
        in_channels: 3 for RGB, 1 for depth.
        block: ``"basic"`` (torchvision's BasicBlock) or ``"nbt1d"`` (ESANet's NonBottleneck1D in every
            residual block, the released segmentation code's choice).
        weights: path of a user state_dict to start from, or None (random init).
        layers: residual blocks per stage; ResNet-34's ``(3, 4, 6, 3)`` by default. Fewer blocks (e.g.
            ``(1, 1, 1, 1)``) keep the stages, widths and fusion points but make a small network for tiny
            CPU runs; pretrained weights then do not fit (an error).
    """

    def __init__(self, in_channels: int, block: str = "nbt1d", weights: Optional[Union[str, Path]] = None,
                 layers: Sequence[int] = RESNET34_LAYERS):
        super().__init__()
        if block not in BLOCKS:
            raise ValueError(f"unknown ResNet-34 block {block!r}; choose one of {BLOCKS}")
        layers = [int(n) for n in layers]
        if len(layers) != 4 or min(layers) < 1:
            raise ValueError(f"layers are 4 positive block counts (layer1 .. layer4); got {layers}")
        tv = import_torchvision("the segmentation ResNet-34 backbone")
        net = tv.models.resnet.ResNet(tv.models.resnet.BasicBlock if block == "basic" else NonBottleneck1D, layers)
        self.block = block
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu)
        self.maxpool = net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if weights is not None:
            self.load_pretrained(weights)

    def load_pretrained(self, path: Union[str, Path]) -> None:
        """Load a torchvision-layout ResNet-34 ``state_dict`` file into this (already built) branch.

        Raises ``FileNotFoundError`` naming the file; see :meth:`load_torchvision_state` for the rest.
        """
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"pretrained backbone weights {path} do not exist (they are never downloaded)")
        self.load_torchvision_state(torch.load(path, map_location="cpu", weights_only=True), path)

    def load_torchvision_state(self, state: Dict[str, torch.Tensor], source: Union[str, Path]) -> None:
        """Load a torchvision-layout ResNet-34 ``state_dict`` (read from ``source``, named in errors).

        The ImageNet classifier is dropped; with other than 3 input channels the first convolution
        gets the loaded RGB kernels summed over the channels (ESANet, depth). Raises ``ValueError``
        when the state does not fit (e.g. a smaller ``layers=`` network, or NBt1D blocks with a
        torchvision BasicBlock file).
        """
        ours = {"conv1.": "stem.0.", "bn1.": "stem.1."}
        mapped = {}
        for key, value in state.items():
            if key.startswith("fc."):
                continue  # the ImageNet classifier
            for theirs, mine in ours.items():
                if key.startswith(theirs):
                    key = mine + key[len(theirs):]
                    break
            mapped[key] = value
        conv = self.stem[0].weight
        loaded = mapped.get("stem.0.weight")
        if loaded is not None and loaded.shape[1] != conv.shape[1] and loaded.shape[1] == 3:
            mapped["stem.0.weight"] = loaded.sum(1, keepdim=True).expand(-1, conv.shape[1], -1, -1).clone()
        try:
            missing, unexpected = self.load_state_dict(mapped, strict=False)
        except RuntimeError as err:  # a shape mismatch
            raise ValueError(f"{source} does not fit this ResNet-34 branch: {str(err).splitlines()[0]}") from None
        if missing or unexpected:
            raise ValueError(f"{source} does not fit this ResNet-34 branch: missing {missing[:5]}, "
                             f"unexpected {unexpected[:5]}")

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Stage ``index`` (0 = stem, 1..4 = layer1..4; the max-pool runs before layer1)."""
        if index == 0:
            return self.stem(x)
        if index == 1:
            x = self.maxpool(x)
        return getattr(self, f"layer{index}")(x)
