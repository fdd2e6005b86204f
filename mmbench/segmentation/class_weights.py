"""Median-frequency class weights for the class-weighted cross-entropy (ESANet, after Eigen & Fergus 2015).

For each class c over the train split:

* ``freq(c) = pixels of class c / pixels of the images in which c appears`` (an image counts with all
  its pixels, void included, when c occurs in it -- as ESANet counts ``h * w`` per image);
* ``weight(c) = median_c' freq(c') / freq(c)``.

A class that never occurs in the train split has no frequency; ESANet replaces the resulting NaN weight
by 0 (it contributes no pixel to the loss anyway), and so does this module. The median is taken over the
classes that occur.
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np
import torch

from mmbench.segmentation.metrics import VOID_INDEX


def median_frequency_weights(label_maps: Iterable[torch.Tensor], num_classes: int,
                             void_index: Optional[int] = VOID_INDEX) -> torch.Tensor:
    """Weights ``[C]`` (float32) from train label maps.

    Args:
        label_maps: train label maps, each ``[H, W]`` or a batch ``[B, H, W]``; values in ``[0, C)`` or
            ``void_index``.
        num_classes: C.
        void_index: the void label, never counted as a class; None when there is none.
    """
    class_pixels = np.zeros(num_classes, dtype=np.float64)
    image_pixels_with_class = np.zeros(num_classes, dtype=np.float64)
    seen = 0
    for maps in label_maps:
        maps = torch.as_tensor(maps)
        if maps.dim() == 2:
            maps = maps.unsqueeze(0)
        if maps.dim() != 3:
            raise ValueError(f"label maps are [H, W] or [B, H, W]; got shape {tuple(maps.shape)}")
        for one in maps:
            flat = one.reshape(-1).long()
            labelled = flat[flat != void_index] if void_index is not None else flat
            if labelled.numel() and (labelled.min() < 0 or labelled.max() >= num_classes):
                raise ValueError(f"a label is outside [0, {num_classes}) and is not the void index {void_index}")
            counts = torch.bincount(labelled, minlength=num_classes).numpy().astype(np.float64)
            class_pixels += counts
            image_pixels_with_class += (counts > 0) * flat.numel()
            seen += 1
    if seen == 0:
        raise ValueError("no train label map was given")
    present = class_pixels > 0
    if not present.any():
        raise ValueError("the train label maps hold no labelled pixel (all void)")
    freq = np.zeros(num_classes)
    freq[present] = class_pixels[present] / image_pixels_with_class[present]
    weights = np.zeros(num_classes)
    weights[present] = np.median(freq[present]) / freq[present]
    return torch.as_tensor(weights, dtype=torch.float32)
