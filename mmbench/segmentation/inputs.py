"""Depth normalisation by the train split's statistics (ESANet's ``Normalize``), and the input transform of
every batch the segmentation runner hands a method.

ESANet standardises depth with the data set's depth mean and std (NYUv2: constants computed once on its
train set; the release's ``compute_depth_mean_std`` sums over the train images only, over the valid
pixels ``depth > 0`` for raw depth). Here the statistics are those of the *carved* train split (the rows
a run trains on, never validation or test), over its valid pixels, and an invalid pixel (0) stays 0
after normalisation (the release's ``depth_mode="raw"``; for a refined depth map without holes, the two
modes are the same). They are computed by the runner for each run: they depend only on the data set's
content and the carve (``val_fraction``), which the run identity already holds, so no separate key is
needed; the setting ``depth_norm`` is part of the identity.

RGB is fed as stored, in [0, 1] (ESANet's ImageNet mean / std of RGB matter for its ImageNet-pretrained
backbone, which the harness does not load by default).
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

import numpy as np
import torch

CHUNK_ROWS = 32  # frames read at once from a memory map while summing


def depth_statistics(depth: np.ndarray, rows: np.ndarray, chunk: int = CHUNK_ROWS) -> Tuple[float, float]:
    """``(mean, std)`` of the valid (> 0) depth pixels of ``depth[rows]`` (``depth``: ``[N, 1, H, W]``).

    The population std (``ddof = 0``, as the release). Sums in float64, a chunk of frames at a time.
    Raises ``ValueError`` when the rows hold no valid pixel or the valid depth is constant.
    """
    rows = np.asarray(rows)
    count, total, squares = 0, 0.0, 0.0
    for start in range(0, len(rows), chunk):
        block = np.asarray(depth[np.sort(rows[start:start + chunk])], dtype=np.float64)
        valid = block[block > 0]
        count += valid.size
        total += float(valid.sum())
        squares += float(np.square(valid).sum())
    if count == 0:
        raise ValueError("depth_norm='train-stats': the train split has no valid (> 0) depth pixel")
    mean = total / count
    std = float(np.sqrt(max(squares / count - mean * mean, 0.0)))
    if not std > 0:
        raise ValueError(f"depth_norm='train-stats': the train split's valid depth is constant ({mean}); "
                         "it cannot be standardised (use depth_norm=none)")
    return mean, std


def normalise_depth(depth: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(depth - mean) / std`` where ``depth > 0``, 0 where invalid; ``[B, 1, H, W]`` -> same (a new tensor)."""
    return torch.where(depth > 0, (depth - mean) / std, torch.zeros((), dtype=depth.dtype))


Transform = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


def input_transforms(train: dict, data, train_rows: np.ndarray,
                     generator: torch.Generator) -> Tuple[Optional[Transform], Optional[Transform], dict]:
    """``(train_transform, eval_transform, info)`` for a run's settings ``train``.

    ``train_transform`` augments (if ``augment``, drawing from ``generator``) then normalises depth;
    ``eval_transform`` only normalises depth (evaluation is never augmented). Either is None where it
    would do nothing. ``info``: what was applied (``depth_mean`` / ``depth_std`` when normalised), for the
    stored result.
    """
    from mmbench.segmentation.augment import augment_batch

    info: dict = {"depth_norm": train["depth_norm"], "augment": bool(train["augment"])}
    norm = None
    if train["depth_norm"] == "train-stats":
        mean, std = depth_statistics(data.depth, train_rows)
        info.update(depth_mean=mean, depth_std=std)
        norm = lambda r, d, y: (r, normalise_depth(d, mean, std), y)  # noqa: E731
    elif train["depth_norm"] != "none":
        raise ValueError(f"depth_norm={train['depth_norm']!r}: expected 'train-stats' or 'none'")
    if not train["augment"]:
        return norm, norm, info

    def train_transform(rgb, depth, labels):
        out = augment_batch(rgb, depth, labels, generator)
        return norm(*out) if norm else out

    return train_transform, norm, info
