"""Paper-scale encoders: one ResNet-18 per modality, from scratch (ARL, DGL, OGM-GE's audio-visual setup).

``torchvision.models.resnet18`` is used as is (no copy of its code); only the stem changes with the
number of input channels (1 for spectrograms, 3 for RGB frames or depth/IR images) and the
classifier ``fc`` is dropped, so the encoder outputs the 512-d average-pooled feature.

Initialisation follows the papers' code (``docs/methods.md``, "Shared set-up", paper scale): conv
kernels Kaiming-normal with ``mode="fan_out"``, BatchNorm weight 1 and bias 0, linear layers
Xavier-normal with zero bias (only the optional projection is linear here).
"""
from __future__ import annotations

import torch
from torch import nn

RESNET_FEATURE_DIM = 512  # ResNet-18's pooled feature width (the papers' feature dim)


def import_torchvision(what: str):
    """``torchvision``, or an error saying which setting needs it and how to install it."""
    try:
        import torchvision
    except ImportError as err:
        raise ImportError(f"{what} needs torchvision: pip install -e '.[paper]' "
                          "(the torchvision build that matches your torch)") from err
    return torchvision


def init_paper_weights(module: nn.Module) -> None:
    """Re-initialise every conv, BatchNorm and linear layer of ``module`` as in the papers' code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight)
            nn.init.zeros_(m.bias)


class ResNet18Encoder(nn.Module):
    """Images ``[B, C, H, W]`` or frame stacks ``[B, T, C, H, W]`` -> features ``[B, feature_dim]``.

    Args:
        in_channels: C; the stem ``conv1`` is rebuilt for C != 3 (a spectrogram "image" has C = 1).
        frames: inputs are ``[B, T, C, H, W]``; every frame goes through the 2-D network as a batch
            of ``B * T`` images and the ``[B, T, 512]`` features are averaged over time (the papers'
            3-D average pool over ``[T, 7, 7]`` is exactly the mean over T of the per-frame 2-D pools).
        feature_dim: output width; 512 is the network's own, any other value adds a linear
            projection + ReLU (so a data set mixing ResNet and small encoders keeps one D).
    """

    def __init__(self, in_channels: int, frames: bool = False, feature_dim: int = RESNET_FEATURE_DIM):
        super().__init__()
        net = import_torchvision("encoder=resnet18").models.resnet18(weights=None)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.frames = frames
        self.channels_last = False  # set by mmbench.engine.accel.use_channels_last
        self.proj = (
            nn.Identity() if feature_dim == RESNET_FEATURE_DIM
            else nn.Sequential(nn.Linear(RESNET_FEATURE_DIM, feature_dim), nn.ReLU())
        )
        init_paper_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        images = x.flatten(0, 1) if self.frames else x  # [B*T, C, H, W] or [B, C, H, W]
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        feats = self.net(images)  # [B*T or B, 512]
        if self.frames:
            feats = feats.view(b, -1, feats.shape[-1]).mean(1)
        return self.proj(feats)
