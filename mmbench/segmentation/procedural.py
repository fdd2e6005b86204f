"""A procedural RGB-D scene data set that runs offline, built so that neither modality alone suffices.

Each scene is a grey back wall (a tilted depth plane) with 3-5 objects (rectangles or ellipses) in
front of it. The five classes are a 2 x 2 design plus the wall:

=========  ===========  ==================  ===================
class      colour       depth               told apart from ... by
=========  ===========  ==================  ===================
0 wall     grey         far (0.75-1.0)      objects: either modality
1          warm hue     near (0.15-0.35)    2 by depth, 3 by colour
2          warm hue     middle (0.45-0.65)  1 by depth, 4 by colour
3          cool hue     near                4 by depth, 1 by colour
4          cool hue     middle              3 by depth, 2 by colour
=========  ===========  ==================  ===================

Colour is drawn from the same distribution for near and middle objects of a hue family, and depth from
the same distribution for warm and cool objects at a depth level; shape, size and position are drawn
independently of the class (no perspective scaling). So RGB alone cannot tell 1 from 2 or 3 from 4,
depth alone cannot tell 1 from 3 or 2 from 4, and both together determine every class: with the wall
told apart by either, an ideal single-modality predictor has mIoU near (1 + 1/2 + 0 + 1/2 + 0) / 5 = 0.4
while an RGB-D one approaches 1. Objects are painted far to near (the nearer one occludes); pixels on a
class boundary are void (as NYUv2's unlabelled seams), so the void index is exercised.

Pixel noise (colour and depth) and a per-scene brightness keep the task from being a lookup table.
"""
from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from mmbench.segmentation.metrics import VOID_INDEX

CLASS_NAMES = ("wall", "warm-near", "warm-middle", "cool-near", "cool-middle")
NUM_CLASSES = len(CLASS_NAMES)
NEAR, MIDDLE = (0.15, 0.35), (0.45, 0.65)
WALL_DEPTH = (0.75, 1.0)
WARM_HUES, COOL_HUES = (0.0, 0.14), (0.45, 0.66)  # hue in [0, 1): red-yellow, cyan-blue


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB, inputs ``[...]`` in [0, 1], output ``[..., 3]``."""
    i = np.floor(h * 6).astype(int) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    table = np.stack([np.stack(c, -1) for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))])
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


def _object_mask(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, size: int) -> np.ndarray:
    """A random rectangle or ellipse ``[H, W]`` bool, 25-60 % of the side across, centred anywhere in the frame."""
    cy, cx = rng.uniform(0, size, 2)
    ry, rx = rng.uniform(0.25, 0.6, 2) * size / 2
    if rng.random() < 0.5:
        return (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx)
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def make_procedural_rgbd(n: int, size: int = 64, seed: int = 0, noise: float = 0.04) -> Dict[str, torch.Tensor]:
    """``n`` scenes of ``size x size``.

    Returns:
        ``{"rgb": [n, 3, H, W] float32 in [0, 1], "depth": [n, 1, H, W] float32 (0 near .. 1 far),
        "labels": [n, H, W] int64 in [0, 5) or VOID_INDEX}``.
    """
    if n < 1 or size < 8:
        raise ValueError(f"need n >= 1 scenes of size >= 8; got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    rgb = np.empty((n, size, size, 3))
    depth = np.empty((n, size, size))
    labels = np.zeros((n, size, size), dtype=np.int64)
    for k in range(n):
        # the wall: grey, a tilted plane in the far range
        grey = rng.uniform(0.35, 0.65)
        rgb[k] = grey
        d0, d1 = np.sort(rng.uniform(*WALL_DEPTH, 2))
        depth[k] = d0 + (d1 - d0) * (yy if rng.random() < 0.5 else xx) / (size - 1)
        classes = rng.integers(1, NUM_CLASSES, rng.integers(3, 6))
        levels = np.array([rng.uniform(*(NEAR if c in (1, 3) else MIDDLE)) for c in classes])
        for idx in np.argsort(-levels):  # far to near: the nearer object occludes
            c, mask = classes[idx], _object_mask(rng, yy, xx, size)
            hue = rng.uniform(*(WARM_HUES if c in (1, 2) else COOL_HUES))
            colour = _hsv_to_rgb(np.array(hue), np.array(rng.uniform(0.6, 1.0)), np.array(rng.uniform(0.6, 1.0)))
            rgb[k][mask] = colour
            depth[k][mask] = levels[idx]
            labels[k][mask] = c
        rgb[k] *= rng.uniform(0.8, 1.2)  # scene brightness
    rgb += rng.normal(0, noise, rgb.shape)
    depth += rng.normal(0, noise / 2, depth.shape)
    # void on class boundaries: a pixel whose 4-neighbour has another class
    edge = np.zeros_like(labels, dtype=bool)
    edge[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    edge[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    edge[:, 1:, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    edge[:, :-1, :] |= labels[:, 1:, :] != labels[:, :-1, :]
    labels[edge] = VOID_INDEX
    return {
        "rgb": torch.from_numpy(np.clip(rgb, 0, 1).transpose(0, 3, 1, 2).astype(np.float32)),
        "depth": torch.from_numpy(np.clip(depth, 0, 1)[:, None].astype(np.float32)),
        "labels": torch.from_numpy(labels),
    }
