"""ESANet's training augmentations (mmbench.segmentation.augment): one geometry for RGB, depth and labels,
labels and depth by nearest neighbour (void and invalid depth preserved), HSV as matplotlib's, seeded,
and never at evaluation."""
import numpy as np
import pytest
import torch

from mmbench.segmentation.augment import augment_batch, augment_frame, hsv_to_rgb, rgb_to_hsv
from mmbench.segmentation.dataset import SegmentationDataset
from mmbench.segmentation.inputs import input_transforms
from mmbench.segmentation.metrics import VOID_INDEX

H, W = 32, 48


def _coded_frame():
    """RGB ramps in column / row, depth = 1 + the source pixel's flat index (exact in float32), labels
    derived from that index with a void stripe and an invalid-depth stripe."""
    rows, cols = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
    rgb = torch.stack([cols / (W - 1), rows / (H - 1), torch.full((H, W), 0.5)]).float()
    depth = (1 + rows * W + cols).float()[None]
    labels = (rows * W + cols) % 7
    labels[:, 10:14] = VOID_INDEX
    depth[:, :, 20:22] = 0  # invalid depth
    return rgb, depth, labels


def _source_of(depth_out, depth_in):
    """Per output pixel, the (row, col) of the source pixel its depth came from (valid depth only)."""
    index = depth_out[0].long() - 1
    return index // W, index % W


@pytest.mark.parametrize("seed", range(6))
def test_rgb_depth_and_labels_share_one_geometry_and_labels_are_picked_not_blended(seed):
    rgb, depth, labels = _coded_frame()
    g = torch.Generator().manual_seed(seed)
    r2, d2, y2 = augment_frame(rgb, depth, labels, g, hsv_range=(1.0, 1.0))  # colour unchanged: geometry only
    assert r2.shape == rgb.shape and d2.shape == depth.shape and y2.shape == labels.shape
    valid = d2[0] > 0
    src_r, src_c = _source_of(d2, depth)
    # depth is a picked source pixel: it is one of the input's values, and the label there is that pixel's
    assert torch.isin(d2, depth).all()
    assert torch.equal(y2[valid], labels[src_r[valid], src_c[valid]])
    assert set(y2.unique().tolist()) <= set(labels.unique().tolist())  # no blended label value
    # RGB followed the same scale, crop and flip (bilinear: within a pixel of the picked source)
    assert (r2[0][valid] * (W - 1) - src_c[valid].float()).abs().max() <= 1.0
    assert (r2[1][valid] * (H - 1) - src_r[valid].float()).abs().max() <= 1.0
    # invalid depth stays 0 where its source column was invalid; void stays void where its source was void
    assert (d2 == 0).any() and (y2 == VOID_INDEX).any()


def test_flip_and_scale_both_happen_and_a_seed_reproduces_the_batch():
    rgb, depth, labels = _coded_frame()
    batch = (rgb.expand(16, -1, -1, -1), depth.expand(16, -1, -1, -1), labels.expand(16, -1, -1))
    a = augment_batch(*batch, torch.Generator().manual_seed(1))
    b = augment_batch(*batch, torch.Generator().manual_seed(1))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    d = a[1]
    valid = (d[:, 0] > 0)
    flipped = [bool((d[i, 0, 0, 1] - d[i, 0, 0, 0] < 0)) for i in range(16) if valid[i, 0, :2].all()]
    assert any(flipped) and not all(flipped)  # flip with probability 1/2
    # a scale above 1 shows as neighbouring output pixels repeating a source pixel (nearest upsampling)
    repeats = [(d[i, 0, 5, 1:] == d[i, 0, 5, :-1]).float().mean().item() for i in range(16)]
    assert max(repeats) > 0.05


def test_hsv_conversions_match_matplotlib_and_the_jitter_is_within_the_release_range():
    colors = pytest.importorskip("matplotlib.colors")
    g = torch.Generator().manual_seed(0)
    rgb = torch.rand(2, 3, 8, 8, generator=g)
    rgb[0, :, 0, 0] = 0.3  # a grey pixel (saturation 0)
    hsv = rgb_to_hsv(rgb)
    expected = colors.rgb_to_hsv(rgb.permute(0, 2, 3, 1).numpy()).transpose(0, 3, 1, 2)
    assert np.allclose(hsv.numpy(), expected, atol=1e-6)
    assert torch.allclose(hsv_to_rgb(hsv), rgb, atol=1e-6)
    assert np.allclose(hsv_to_rgb(hsv).numpy(),
                       colors.hsv_to_rgb(expected.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2), atol=1e-6)
    # value jitter alone: V multiplied by a factor in [0.9, 1.1] (a uniform frame: no geometry effect)
    frame = torch.full((3, H, W), 0.5)
    frame[0] = 0.6
    out, _, _ = augment_frame(frame, torch.ones(1, H, W), torch.zeros(H, W, dtype=torch.long),
                              torch.Generator().manual_seed(4))
    ratio = out.max(0).values / 0.6
    assert torch.allclose(ratio, ratio.mean(), atol=1e-5) and 0.9 - 1e-6 <= ratio.mean() <= 1.1 + 1e-6


def test_training_batches_are_augmented_and_evaluation_batches_never_are():
    rgb, depth, labels = _coded_frame()
    n = 4
    data = SegmentationDataset("toy", rgb.expand(n, -1, -1, -1).numpy(), depth.expand(n, -1, -1, -1).numpy(),
                               labels.expand(n, -1, -1).numpy(), {"train": np.arange(2), "test": np.arange(2, n)}, 7)
    g = torch.Generator().manual_seed(0)
    train_t, eval_t, info = input_transforms({"depth_norm": "none", "augment": True}, data, data.split["train"], g)
    assert info["augment"] is True and eval_t is None  # evaluation: no transform at all
    state = g.get_state()
    out = train_t(torch.as_tensor(data.rgb[:2]), torch.as_tensor(data.depth[:2]), torch.as_tensor(data.labels[:2]))
    assert not torch.equal(out[1], torch.as_tensor(data.depth[:2]))  # the training batch moved
    assert not torch.equal(g.get_state(), state)  # drawn from the run's generator
    train_t, eval_t, _ = input_transforms({"depth_norm": "train-stats", "augment": True}, data, data.split["train"], g)
    state = g.get_state()
    _, d_eval, y_eval = eval_t(torch.as_tensor(data.rgb[2:]), torch.as_tensor(data.depth[2:]),
                               torch.as_tensor(data.labels[2:]))
    assert torch.equal(y_eval, torch.as_tensor(data.labels[2:]))  # geometry untouched
    assert torch.equal(d_eval == 0, torch.as_tensor(data.depth[2:]) == 0)
    assert torch.equal(g.get_state(), state)  # evaluation draws nothing
