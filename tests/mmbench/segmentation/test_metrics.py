"""mIoU, pixel accuracy and the per-combination summary (mmbench.segmentation.metrics)."""
import math

import numpy as np
import pytest
import torch

from mmbench.segmentation.metrics import (
    VOID_INDEX,
    ConfusionAccumulator,
    combination_summary,
    confusion_matrix,
    segmentation_scores,
)


def test_hand_computed_example_with_void_and_an_absent_class():
    # 4 classes; class 3 occurs neither in the truth nor in the prediction -> left out of the mean.
    true = torch.tensor([[0, 0, 1, 1],
                         [2, 2, 2, VOID_INDEX]])
    pred = torch.tensor([[0, 1, 1, 1],
                         [2, 0, 2, 2]])  # the void pixel's prediction (2) is never counted
    m = confusion_matrix(pred, true, num_classes=4)
    expected = torch.tensor([[1, 1, 0, 0],
                             [0, 2, 0, 0],
                             [1, 0, 2, 0],
                             [0, 0, 0, 0]])
    torch.testing.assert_close(m, expected)
    s = segmentation_scores(m)
    # class 0: TP 1, FP 1 (a 2 predicted 0), FN 1 -> 1/3; class 1: TP 2, FP 1, FN 0 -> 2/3;
    # class 2: TP 2, FP 0, FN 1 -> 2/3; class 3: no union -> NaN.
    np.testing.assert_allclose(s["iou"][:3], [1 / 3, 2 / 3, 2 / 3])
    assert math.isnan(s["iou"][3])
    assert s["miou"] == pytest.approx((1 / 3 + 2 / 3 + 2 / 3) / 3)
    assert s["pixel_acc"] == pytest.approx(5 / 7)  # 7 labelled pixels, 5 right


def test_a_class_only_predicted_still_counts_with_iou_zero():
    true = torch.tensor([0, 0, 0, 0])
    pred = torch.tensor([0, 0, 0, 1])
    s = segmentation_scores(confusion_matrix(pred, true, num_classes=3))
    np.testing.assert_allclose(s["iou"][:2], [0.75, 0.0])
    assert s["miou"] == pytest.approx(0.375)


def test_accumulating_batches_equals_one_matrix_over_all_pixels():
    g = torch.Generator().manual_seed(0)
    true = torch.randint(0, 5, (6, 8, 8), generator=g)
    pred = torch.randint(0, 5, (6, 8, 8), generator=g)
    acc = ConfusionAccumulator(5)
    for b in range(0, 6, 2):
        acc.update(pred[b:b + 2], true[b:b + 2])
    torch.testing.assert_close(acc.matrix, confusion_matrix(pred, true, 5))


def test_bad_labels_and_shapes_are_named():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.tensor([0]), torch.tensor([7]), num_classes=3)
    with pytest.raises(ValueError, match="shape"):
        confusion_matrix(torch.zeros(2, 2), torch.zeros(2, 3), num_classes=3)


def test_combination_summary_mean_and_worst():
    per = {"rgb": {"miou": 0.434}, "depth": {"miou": 0.413}, "rgb+depth": {"miou": 0.490}}
    out = combination_summary(per)
    assert out["miou_mean"] == pytest.approx((0.434 + 0.413 + 0.490) / 3)
    assert out["miou_worst"] == pytest.approx(0.413)
    with pytest.raises(ValueError, match="no modality combination"):
        combination_summary({})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_torchmetrics_jaccard_on_random_maps_with_void(seed):
    pytest.importorskip("torchmetrics", reason="torchmetrics is the reference mIoU (pip install torchmetrics)")
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    g = torch.Generator().manual_seed(seed)
    num_classes = 8  # class 7 occurs in neither map: both sides leave it out of the mean
    true = torch.randint(0, num_classes - 1, (3, 16, 20), generator=g)
    true[torch.rand(true.shape, generator=g) < 0.1] = VOID_INDEX
    pred = torch.randint(0, num_classes - 1, true.shape, generator=g)
    pred = torch.where(torch.rand(true.shape, generator=g) < 0.5, true.clamp(max=num_classes - 2), pred)
    s = segmentation_scores(confusion_matrix(pred, true, num_classes))
    ref_miou = MulticlassJaccardIndex(num_classes, average="macro", ignore_index=VOID_INDEX)(pred, true)
    ref_acc = MulticlassAccuracy(num_classes, average="micro", ignore_index=VOID_INDEX)(pred, true)
    assert s["miou"] == pytest.approx(ref_miou.item(), abs=1e-6)
    assert s["pixel_acc"] == pytest.approx(ref_acc.item(), abs=1e-6)
    per_class = MulticlassJaccardIndex(num_classes, average="none", ignore_index=VOID_INDEX)(pred, true)
    np.testing.assert_allclose(s["iou"][:-1], per_class.numpy()[:-1], atol=1e-6)
    assert math.isnan(s["iou"][-1])
