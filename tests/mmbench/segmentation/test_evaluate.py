"""Per-combination evaluation and the class-weighted loss (mmbench.segmentation.evaluate)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmbench.segmentation.evaluate import COMBINATIONS, evaluate_combinations, weighted_cross_entropy
from mmbench.segmentation.metrics import VOID_INDEX


class _PickByMask(nn.Module):
    """Predicts class 0 from RGB only, class 1 from depth only, the true map when both are present --
    so each combination's score is known exactly."""

    def __init__(self, truth):
        super().__init__()
        self.truth = truth
        self.seen = []

    def forward(self, rgb, depth, present):
        self.seen.append(tuple(present[0].tolist()))
        both = present[:, 0].bool() & present[:, 1].bool()
        pred = torch.where(both[:, None, None], self.truth, torch.where(present[:, 0, None, None].bool(), 0, 1))
        return F.one_hot(pred, 2).permute(0, 3, 1, 2).float()


def test_each_combination_is_scored_with_its_mask_and_summarised():
    truth = torch.tensor([[[0, 0], [1, 1]]])  # one 2x2 image, half class 0, half class 1
    model = _PickByMask(truth)
    rgb, depth = torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)
    out = evaluate_combinations(model, [(rgb, depth, truth)], num_classes=2)
    assert model.seen == list(COMBINATIONS.values())  # MMANet's order (1,0), (0,1), (1,1)
    per = out["per_combination"]
    assert per["rgb"]["miou"] == pytest.approx(0.25)  # all 0: IoU 0.5 and 0
    assert per["depth"]["miou"] == pytest.approx(0.25)
    assert per["rgb+depth"]["miou"] == pytest.approx(1.0)
    assert out["miou_mean"] == pytest.approx(0.5) and out["miou_worst"] == pytest.approx(0.25)
    assert out["pixel_acc_worst"] == pytest.approx(0.5)


def test_weighted_loss_ignores_void_and_weights_classes():
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 1.0, 3.0]]]])  # [1, 2, 1, 3]
    labels = torch.tensor([[[0, 1, VOID_INDEX]]])
    w = torch.tensor([1.0, 3.0])
    nll = -F.log_softmax(logits, 1)[0, :, 0, :2]  # [C, 2 counted pixels]
    expected = (1.0 * nll[0, 0] + 3.0 * nll[1, 1]) / (1.0 + 3.0)
    assert weighted_cross_entropy(logits, labels, w).item() == pytest.approx(expected.item())
