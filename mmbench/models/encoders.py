"""One encoder per modality, chosen by the modality's kind, identical for every method.

Every encoder maps ``[B, *shape]`` to a feature ``[B, feature_dim]``. They are deliberately small:
the benchmark compares training methods, not backbones, and must run on a laptop CPU.
"""
from __future__ import annotations

import torch
from torch import nn

from mmbench.data.base import ModalitySpec
from mmbench.models.resnet import ResNet18Encoder


class MLPEncoder(nn.Module):
    """Feature vectors ``[B, D_in]`` -> ``[B, feature_dim]`` through one hidden layer (128, ReLU)."""

    def __init__(self, in_dim: int, feature_dim: int = 64, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


class SeriesEncoder(nn.Module):
    """Sensor series ``[B, channels, T]`` -> ``[B, feature_dim]``: two strided 1-D convolutions, global mean pool."""

    def __init__(self, channels: int, feature_dim: int = 64, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(channels, width, kernel_size=7, stride=2, padding=3),
            nn.ReLU(),
            nn.Conv1d(width, 2 * width, kernel_size=5, stride=2, padding=2),
            nn.ReLU(),
            nn.AdaptiveAvgPool1d(1),
            nn.Flatten(),
            nn.Linear(2 * width, feature_dim),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MaxPool2x2(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` that pools a CPU tensor in channels-last layout and returns it row-major.

    torch's CPU max-pool over a row-major ``[B, C, H, W]`` map with few channels is slow: on the
    small image encoder's ``[128, 8, 16, 15]`` map it took 0.96 ms against 0.31 ms with the layout
    change and back. Both kernels scan each window in the same order and keep the first maximum, so
    the output and the gradient (which input gets it, ties included) are the same bits; the
    gradient leaves row-major, as the convolution before it expects.
    """

    def __init__(self):
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type != "cpu" or x.dim() != 4:
            return super().forward(x)
        return super().forward(x.contiguous(memory_format=torch.channels_last)).contiguous()


class ImageEncoder(nn.Module):
    """Small images ``[B, channels, H, W]`` -> ``[B, feature_dim]``: two 3x3 conv + max-pool blocks, then a linear layer.

    The flattened map keeps the spatial layout (a global mean pool would discard where the strokes
    of a digit are, which is most of what a 16x15 digit image says).
    """

    def __init__(self, channels: int, feature_dim: int = 64, width: int = 8, image_hw=(16, 16)):
        super().__init__()
        h, w = image_hw
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, kernel_size=3, padding=1),
            nn.ReLU(),
            MaxPool2x2(),
            nn.Conv2d(width, 2 * width, kernel_size=3, padding=1),
            nn.ReLU(),
            MaxPool2x2(),
        )
        self.fc = nn.Sequential(nn.Linear(2 * width * (h // 4) * (w // 4), feature_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


ENCODERS = ("small", "resnet18")


def build_encoder(spec: ModalitySpec, feature_dim: int = 64, encoder: str = "small") -> nn.Module:
    """The encoder for one modality.

    ``encoder="small"`` (default): MLP for vectors, 1-D CNN for series, small CNN for images.
    ``encoder="resnet18"``: a from-scratch ResNet-18 (:mod:`mmbench.models.resnet`) for images
    ``(C, H, W)`` (C = 1 spectrograms, C = 3 frames / depth / IR) and frame stacks ``(T, C, H, W)``;
    vectors and series keep their small encoders (no 2-D structure for a ResNet to use).
    Frame stacks (kind ``"video"``) always get the ResNet: no small encoder pools over time.
    """
    if encoder not in ENCODERS:
        raise ValueError(f"encoder={encoder!r}: expected one of {', '.join(ENCODERS)}")
    if spec.kind == "video":
        if len(spec.shape) != 4:
            raise ValueError(f"video modality {spec.name!r} needs shape (T, C, H, W), got {spec.shape}")
        return ResNet18Encoder(spec.shape[1], frames=True, feature_dim=feature_dim)
    if spec.kind == "image" and encoder == "resnet18":
        if len(spec.shape) != 3:
            raise ValueError(f"image modality {spec.name!r} needs shape (C, H, W), got {spec.shape}")
        return ResNet18Encoder(spec.shape[0], feature_dim=feature_dim)
    if spec.kind == "vector":
        return MLPEncoder(int(torch.Size(spec.shape).numel()), feature_dim)
    if spec.kind == "series":
        return SeriesEncoder(spec.shape[0], feature_dim)
    if spec.kind == "image":
        if len(spec.shape) != 3 or min(spec.shape[1:]) < 4:
            raise ValueError(f"image modality {spec.name!r} needs shape (channels, H, W) with H, W >= 4, got {spec.shape}")
        return ImageEncoder(spec.shape[0], feature_dim, image_hw=spec.shape[1:])
    raise ValueError(f"modality {spec.name!r} has unknown kind {spec.kind!r} (expected vector, series, image or video)")
