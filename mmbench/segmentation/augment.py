"""ESANet's training augmentations, per image, drawn from the run's seeded generator.

The released ``get_preprocessor(phase="train")`` applies, in this order (constants checked against
TUI-NICR/ESANet ``src/preprocessing.py``):

1. ``RandomRescale((1.0, 1.4))``: a scale ``s ~ U(1.0, 1.4)``, the frame resized to
   ``round(s * H) x round(s * W)``: RGB bilinear, depth and labels nearest neighbour;
2. ``RandomCrop(H, W)``: a random ``H x W`` window (top-left offsets uniform in ``[0, h - H)`` and
   ``[0, w - W)``, NumPy's ``randint``); a frame no larger than the crop in either side is resized to
   ``H x W`` instead;
3. ``RandomHSV((0.9, 1.1), (0.9, 1.1), (0.9, 1.1))`` on RGB: hue, saturation and value each multiplied by
   its own factor ``~ U(0.9, 1.1)`` and clipped to [0, 1];
4. ``RandomFlip``: all three flipped left-right with probability 1/2.

Depth and labels are only moved (nearest neighbour, never blended): a void label stays void, an invalid
depth stays 0. Departures: the release works on uint8 images through OpenCV and re-quantises RGB to
uint8 after the HSV step; here float32 tensors in [0, 1] and PyTorch's ``interpolate`` (bilinear without
corner alignment and nearest, the same sampling as OpenCV's ``INTER_LINEAR`` / ``INTER_NEAREST``),
without re-quantisation. Evaluation is never augmented (:mod:`mmbench.segmentation.inputs`).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import torch
import torch.nn.functional as F

SCALE_RANGE = (1.0, 1.4)
HSV_RANGE = (0.9, 1.1)  # factor range of each of hue, saturation, value
FLIP_PROBABILITY = 0.5


def rgb_to_hsv(rgb: torch.Tensor) -> torch.Tensor:
    """``[..., 3, H, W]`` RGB in [0, 1] -> HSV in [0, 1] (hue as a fraction of the circle, as matplotlib's)."""
    r, g, b = rgb.unbind(-3)
    maxc, _ = rgb.max(-3)
    minc, _ = rgb.min(-3)
    delta = maxc - minc
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    hue = torch.where(maxc == r, ((g - b) / safe) % 6, torch.where(maxc == g, (b - r) / safe + 2, (r - g) / safe + 4))
    hue = torch.where(delta > 0, hue / 6, torch.zeros_like(hue))
    sat = torch.where(maxc > 0, delta / torch.where(maxc > 0, maxc, torch.ones_like(maxc)), torch.zeros_like(maxc))
    return torch.stack([hue, sat, maxc], -3)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`rgb_to_hsv`: ``[..., 3, H, W]`` HSV in [0, 1] -> RGB in [0, 1]."""
    h, s, v = hsv.unbind(-3)
    k = torch.stack([(5 + 6 * h) % 6, (3 + 6 * h) % 6, (1 + 6 * h) % 6], -3)  # per channel, n = 5, 3, 1
    return v.unsqueeze(-3) - (v * s).unsqueeze(-3) * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return float(low + (high - low) * torch.rand((), generator=generator))


def _resize(rgb, depth, labels, size):
    """One frame (``[3, h, w]``, ``[1, h, w]``, ``[h, w]``) resized to ``size``: RGB bilinear, the others nearest."""
    rgb = F.interpolate(rgb[None], size=size, mode="bilinear", align_corners=False)[0]
    depth = F.interpolate(depth[None], size=size, mode="nearest")[0]
    labels = F.interpolate(labels[None, None].float(), size=size, mode="nearest")[0, 0].to(labels.dtype)
    return rgb, depth, labels


def augment_frame(rgb: torch.Tensor, depth: torch.Tensor, labels: torch.Tensor, generator: torch.Generator,
                  scale_range: Sequence[float] = SCALE_RANGE, hsv_range: Sequence[float] = HSV_RANGE
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One frame ``rgb [3, H, W]``, ``depth [1, H, W]``, ``labels [H, W]`` -> the same shapes, augmented
    (module docstring). Draws, in order: the scale, the crop offsets (when cropped), the three HSV
    factors, the flip."""
    height, width = labels.shape[-2:]
    scale = _uniform(generator, min(scale_range), max(scale_range))
    size = (int(round(scale * height)), int(round(scale * width)))
    rgb, depth, labels = _resize(rgb, depth, labels, size)
    if size[0] <= height or size[1] <= width:
        rgb, depth, labels = _resize(rgb, depth, labels, (height, width))
    else:
        i = int(torch.randint(0, size[0] - height, (), generator=generator))
        j = int(torch.randint(0, size[1] - width, (), generator=generator))
        rgb, depth, labels = (x[..., i:i + height, j:j + width] for x in (rgb, depth, labels))
    factors = torch.tensor([_uniform(generator, min(hsv_range), max(hsv_range)) for _ in range(3)])
    hsv = (rgb_to_hsv(rgb.clamp(0, 1)) * factors[:, None, None].to(rgb.dtype)).clamp(0, 1)
    rgb = hsv_to_rgb(hsv)
    if float(torch.rand((), generator=generator)) < FLIP_PROBABILITY:
        rgb, depth, labels = (x.flip(-1) for x in (rgb, depth, labels))
    return rgb.contiguous(), depth.contiguous(), labels.contiguous()


def augment_batch(rgb: torch.Tensor, depth: torch.Tensor, labels: torch.Tensor, generator: torch.Generator
                  ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``rgb [B, 3, H, W]``, ``depth [B, 1, H, W]``, ``labels [B, H, W]`` -> the same shapes, each frame
    augmented on its own (:func:`augment_frame`); new tensors (the inputs may be read-only memory maps).
    Labels are picked by nearest neighbour, so no new label value (and no blend of void) appears."""
    if rgb.dim() != 4 or depth.shape != (rgb.shape[0], 1, *rgb.shape[-2:]) or labels.shape != depth[:, 0].shape:
        raise ValueError(f"expected rgb [B, 3, H, W], depth [B, 1, H, W], labels [B, H, W]; got "
                         f"{tuple(rgb.shape)}, {tuple(depth.shape)}, {tuple(labels.shape)}")
    frames = [augment_frame(r, d, y, generator) for r, d, y in zip(rgb, depth, labels)]
    return tuple(torch.stack(parts) for parts in zip(*frames))
