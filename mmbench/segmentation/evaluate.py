"""Class-weighted cross-entropy and the per-modality-combination evaluation of a segmentation model.

The evaluation follows MMANet's loop: the same test images are scored once per combination of present
modalities -- RGB only ``(1, 0)``, depth only ``(0, 1)`` and both ``(1, 1)`` -- by passing the mask to
the model (which zeroes the absent input), with one confusion matrix per combination accumulated over
the whole test set; then the mean and the worst over combinations.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Tuple

import torch
import torch.nn.functional as F

from mmbench.segmentation.metrics import VOID_INDEX, ConfusionAccumulator, combination_summary

#: name -> (RGB present, depth present), in MMANet's order [[1,0],[0,1],[1,1]]
COMBINATIONS: Dict[str, Tuple[int, int]] = {"rgb": (1, 0), "depth": (0, 1), "rgb+depth": (1, 1)}


def weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weights: Optional[torch.Tensor] = None,
                           void_index: int = VOID_INDEX) -> torch.Tensor:
    """Mean class-weighted cross-entropy over non-void pixels.

    Args:
        logits: ``[B, C, H, W]``.
        labels: ``[B, H, W]`` in ``[0, C)`` or ``void_index``.
        class_weights: ``[C]`` (e.g. :func:`~mmbench.segmentation.class_weights.median_frequency_weights`);
            the mean is normalised by the summed weights of the counted pixels (PyTorch's weighted mean).
    """
    return F.cross_entropy(logits, labels.long(), weight=class_weights, ignore_index=void_index)


@torch.no_grad()
def evaluate_combinations(model: torch.nn.Module, batches: Iterable[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
                          num_classes: int, combinations: Dict[str, Tuple[int, int]] = COMBINATIONS,
                          void_index: int = VOID_INDEX) -> Dict[str, object]:
    """Scores per combination plus their summary.

    Args:
        model: ``model(rgb, depth, present) -> logits [B, C, H, W]`` (e.g. :class:`ESANetRGBD`); put in eval mode.
        batches: an iterable (re-iterable: it is walked once per combination) of ``(rgb [B, 3, H, W],
            depth [B, 1, H, W], labels [B, H, W])``.

    Returns:
        ``{"per_combination": {name: scores}, "miou_mean", "miou_worst", "pixel_acc_mean", "pixel_acc_worst"}``.
    """
    was_training = model.training
    model.eval()
    per = {}
    try:
        for name, (has_rgb, has_depth) in combinations.items():
            acc = ConfusionAccumulator(num_classes, void_index)
            for rgb, depth, labels in batches:
                present = torch.tensor([[has_rgb, has_depth]], device=rgb.device).expand(rgb.shape[0], 2)
                acc.update(model(rgb, depth, present).argmax(1), labels)
            per[name] = acc.scores()
    finally:
        model.train(was_training)
    out: Dict[str, object] = {"per_combination": per}
    out.update(combination_summary(per, "miou"))
    out.update(combination_summary(per, "pixel_acc"))
    return out
