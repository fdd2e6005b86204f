"""Segmentation scores from a confusion matrix: mIoU (void ignored), pixel accuracy, per-combination summary.

The released ESANet / DMRNet / MMANet evaluation accumulates one confusion matrix over the whole test
set and reads every score off it at the end (not a mean of per-image scores), so this module does the
same: :func:`confusion_matrix` for one batch, summed by the caller (or by :class:`ConfusionAccumulator`),
then :func:`segmentation_scores`.

Definitions, with ``M[t, p]`` the number of non-void pixels of true class t predicted as p:

* IoU of class c = ``M[c, c] / (sum_p M[c, p] + sum_t M[t, c] - M[c, c])`` (TP / (TP + FP + FN));
* mIoU = the mean IoU over the classes *present*, i.e. with a non-empty union (in the truth or in the
  prediction); a class absent from both has no IoU (NaN) and is left out of the mean, as the released
  code's ``nanmean`` does;
* pixel accuracy = trace(M) / sum(M).

Pixels whose true label is the void index are dropped before counting (NYUv2's "unlabeled", Cityscapes'
255); a void *prediction* cannot occur (the network predicts one of the C classes).
"""
from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import torch

from mmbench.segmentation.labels import VOID_INDEX  # noqa: F401  (re-exported: the metrics' default void label)


def confusion_matrix(pred: torch.Tensor, true: torch.Tensor, num_classes: int,
                     void_index: Optional[int] = VOID_INDEX) -> torch.Tensor:
    """Confusion matrix ``[C, C]`` (int64, rows = true class, columns = predicted class).

    Args:
        pred: ``[...]`` predicted class indices in ``[0, C)`` (e.g. ``logits.argmax(1)`` of ``[B, H, W]``).
        true: ``[...]`` true labels, same shape; values in ``[0, C)`` or ``void_index``.
        num_classes: C.
        void_index: the label of pixels left out of every score; None when every pixel is labelled.
    """
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(true.shape)}")
    pred, true = pred.reshape(-1).long(), true.reshape(-1).long()
    if void_index is not None:
        keep = true != void_index
        pred, true = pred[keep], true[keep]
    for name, values in (("label", true), ("prediction", pred)):
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0].item()
            raise ValueError(f"{name} {bad} is outside [0, {num_classes}) and is not the void index {void_index}")
    flat = true * num_classes + pred
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


class ConfusionAccumulator:
    """Sums :func:`confusion_matrix` over batches; ``scores()`` reads the totals (as the released eval does)."""

    def __init__(self, num_classes: int, void_index: Optional[int] = VOID_INDEX):
        self.num_classes, self.void_index = num_classes, void_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, true: torch.Tensor) -> None:
        self.matrix += confusion_matrix(pred.detach().cpu(), true.detach().cpu(), self.num_classes, self.void_index)

    def scores(self) -> Dict[str, object]:
        return segmentation_scores(self.matrix)


def segmentation_scores(matrix: torch.Tensor) -> Dict[str, object]:
    """``{"miou": float, "pixel_acc": float, "iou": [C] float array (NaN for absent classes)}``.

    Args:
        matrix: ``[C, C]`` confusion matrix, rows true, columns predicted (void already left out).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"a confusion matrix is square; got shape {m.shape}")
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, np.nan)
    total = m.sum()
    return {
        "miou": float(np.nanmean(iou)) if np.any(union > 0) else float("nan"),
        "pixel_acc": float(tp.sum() / total) if total > 0 else float("nan"),
        "iou": iou,
    }


def combination_summary(per_combination: Mapping[str, Mapping[str, float]], key: str = "miou") -> Dict[str, float]:
    """Mean and worst of one score over the modality combinations evaluated (MMANet's [[1,0],[0,1],[1,1]]).

    Args:
        per_combination: combination name (e.g. ``"rgb"``, ``"depth"``, ``"rgb+depth"``) -> scores from
            :func:`segmentation_scores`.
        key: the score summarised.

    Returns:
        ``{"<key>_mean": float, "<key>_worst": float}``; the mean is unweighted over combinations (the
        papers' "mean" column, e.g. DMRNet's (43.4 + 41.3 + 49.0) / 3 = 44.55 on NYUv2).
    """
    if not per_combination:
        raise ValueError("no modality combination was evaluated")
    values = np.array([float(s[key]) for s in per_combination.values()])
    return {f"{key}_mean": float(values.mean()), f"{key}_worst": float(values.min())}
