"""ESANet's building blocks (Seichter et al., ICRA 2021), as the DMRNet / MMANet segmentation code uses them.

Written from the paper's description and the released code's structure (no code copied):

* :class:`NonBottleneck1D` -- ERFNet's factorised residual block: 3x1 conv, ReLU, 1x3 conv, BN, ReLU,
  3x1 conv, ReLU, 1x3 conv, BN, + shortcut, ReLU (convs with bias; a stride is split over the 3x1 and
  the 1x3 conv);
* :class:`SqueezeExcitation` and :class:`SEFusionAdd` -- channel attention on each modality, then the sum
  (depth fused into the RGB stream);
* :class:`PyramidPooling` -- PSPNet's context module over bins (ESANet's default bins 1 and 5);
* :class:`LearnedUpsample` -- nearest 2x upsampling then a depthwise 3x3 conv initialised as a
  bilinear-like blur and trained (ESANet's "learned-3x3-zeropad").
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU with 'same' padding: ``[B, c_in, H, W]`` -> ``[B, c_out, H, W]``."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class NonBottleneck1D(nn.Module):
    """``[B, c_in, H, W]`` -> ``[B, c_out, H / stride, W / stride]``; drop-in for a ResNet BasicBlock.

    Args:
        c_in, c_out: channels; a 1x1 conv + BN projects the shortcut when they differ or stride > 1
            (as torchvision's ``downsample``, which the caller may pass instead).
        stride: 1 or 2.
        downsample: the shortcut's projection (torchvision passes its own 1x1 conv + BN).
        dilation: dilation of the second 3x1 / 1x3 pair (1 in ESANet's encoder).
    """

    expansion = 1  # torchvision's block interface

    def __init__(self, c_in: int, c_out: int, stride: int = 1, downsample: Optional[nn.Module] = None,
                 groups: int = 1, base_width: int = 64, dilation: int = 1, norm_layer=None):
        # groups / base_width / norm_layer: torchvision's block signature (``ResNet._make_layer`` passes
        # them); ESANet's block has no groups and always uses BatchNorm, so they must be the defaults.
        if groups != 1 or base_width != 64:
            raise ValueError("NonBottleneck1D has no grouped or widened variant")
        super().__init__()
        self.conv3x1_1 = nn.Conv2d(c_in, c_out, (3, 1), stride=(stride, 1), padding=(1, 0), bias=True)
        self.conv1x3_1 = nn.Conv2d(c_out, c_out, (1, 3), stride=(1, stride), padding=(0, 1), bias=True)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv3x1_2 = nn.Conv2d(c_out, c_out, (3, 1), padding=(dilation, 0), dilation=(dilation, 1), bias=True)
        self.conv1x3_2 = nn.Conv2d(c_out, c_out, (1, 3), padding=(0, dilation), dilation=(1, dilation), bias=True)
        self.bn2 = nn.BatchNorm2d(c_out)
        if downsample is None and (stride != 1 or c_in != c_out):
            downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out))
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.conv3x1_1(x))
        out = F.relu(self.bn1(self.conv1x3_1(out)))
        out = F.relu(self.conv3x1_2(out))
        out = self.bn2(self.conv1x3_2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class SqueezeExcitation(nn.Module):
    """``[B, C, H, W]`` -> same, each channel scaled by a sigmoid gate from the global average (reduction 16)."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                  nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class SEFusionAdd(nn.Module):
    """ESANet's fusion: ``SE_rgb(rgb) + SE_depth(depth)``, both ``[B, C, H, W]``; the sum feeds the RGB branch on."""

    def __init__(self, channels: int):
        super().__init__()
        self.se_rgb = SqueezeExcitation(channels)
        self.se_depth = SqueezeExcitation(channels)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.se_rgb(rgb) + self.se_depth(depth)


class PyramidPooling(nn.Module):
    """``[B, c_in, h, w]`` -> ``[B, c_out, h, w]``: the input concatenated with its average pools over
    ``bins`` (each 1x1 conv-BN-ReLU to ``c_in / len(bins)`` channels, upsampled back bilinearly), then a
    3x3 conv-BN-ReLU. A bin larger than the feature map is clipped to it (small test inputs)."""

    def __init__(self, c_in: int, c_out: int, bins: Sequence[int] = (1, 5)):
        super().__init__()
        reduced = c_in // len(bins)
        self.bins = tuple(bins)
        self.branches = nn.ModuleList(conv_bn_relu(c_in, reduced, 1) for _ in self.bins)
        self.out = conv_bn_relu(c_in + reduced * len(self.bins), c_out, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        parts = [x]
        for b, branch in zip(self.bins, self.branches):
            pooled = F.adaptive_avg_pool2d(x, (min(b, h), min(b, w)))
            parts.append(F.interpolate(branch(pooled), size=(h, w), mode="bilinear", align_corners=False))
        return self.out(torch.cat(parts, 1))


class LearnedUpsample(nn.Module):
    """``[B, C, H, W]`` -> ``[B, C, 2H, 2W]``: nearest 2x, then a trainable depthwise 3x3 conv (zero padding)
    initialised with the separable blur [1, 2, 1]/4 x [1, 2, 1]/4, which turns nearest into near-bilinear."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        k1 = torch.tensor([0.25, 0.5, 0.25])
        with torch.no_grad():
            self.conv.weight.copy_((k1[:, None] * k1[None, :]).expand(channels, 1, 3, 3))
            self.conv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))
