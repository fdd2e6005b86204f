"""Median-frequency class weights (mmbench.segmentation.class_weights)."""
import pytest
import torch

from mmbench.segmentation.class_weights import median_frequency_weights
from mmbench.segmentation.metrics import VOID_INDEX


def test_formula_on_a_hand_example():
    v = VOID_INDEX
    # image A (2x2): class 0 x3 and void; image B (2x2): class 0 x1, class 1 x2, class 2 x1.
    a = torch.tensor([[0, 0], [0, v]])
    b = torch.tensor([[0, 1], [1, 2]])
    w = median_frequency_weights([a, b], num_classes=4)
    # freq(0) = 4 / (4 + 4) = 0.5 (both images hold class 0, every pixel of both counts, void too)
    # freq(1) = 2 / 4 = 0.5, freq(2) = 1 / 4 = 0.25; class 3 never occurs -> weight 0
    # median over the present classes = 0.5
    torch.testing.assert_close(w, torch.tensor([1.0, 1.0, 2.0, 0.0]))


def test_a_batch_counts_as_its_images():
    g = torch.Generator().manual_seed(0)
    maps = torch.randint(0, 3, (4, 5, 5), generator=g)
    torch.testing.assert_close(median_frequency_weights([maps], 3), median_frequency_weights(list(maps), 3))


def test_rarer_class_gets_the_larger_weight():
    maps = torch.zeros(1, 10, 10, dtype=torch.long)
    maps[0, :2] = 1  # class 1 on 20 pixels, class 0 on 80, same image
    w = median_frequency_weights([maps], 2)
    assert w[1] / w[0] == pytest.approx(4.0)


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="no train label map"):
        median_frequency_weights([], 3)
    with pytest.raises(ValueError, match="all void"):
        median_frequency_weights([torch.full((2, 2), VOID_INDEX)], 3)
    with pytest.raises(ValueError, match="outside"):
        median_frequency_weights([torch.tensor([[5]])], 3)
