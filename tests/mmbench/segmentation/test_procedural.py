"""The procedural RGB-D scenes (mmbench.segmentation.procedural): neither modality alone suffices."""
import numpy as np
import pytest
import torch

from mmbench.segmentation.metrics import VOID_INDEX, confusion_matrix, segmentation_scores
from mmbench.segmentation.procedural import NUM_CLASSES, make_procedural_rgbd


def _flatten(scenes):
    """Labelled pixels: colour cells ``[P, 3]``, depth cells ``[P, 1]`` (quantised) and labels ``[P]``."""
    labels = scenes["labels"].numpy().ravel()
    keep = labels != VOID_INDEX
    rgb = scenes["rgb"].permute(0, 2, 3, 1).reshape(-1, 3).numpy()[keep]
    depth = scenes["depth"].reshape(-1, 1).numpy()[keep]
    return np.floor(rgb * 8), np.floor(depth * 16), labels[keep]  # 512 colour cells, 16 depth cells


def _lookup_pred(fit_features, fit_labels, features):
    """The majority label of each feature cell on a large independent fitting set (a plug-in Bayes rule
    for a per-pixel predictor of that feature); cells never seen while fitting predict the wall."""
    table = {}
    keys, inverse = np.unique(fit_features, axis=0, return_inverse=True)
    counts = np.zeros((len(keys), NUM_CLASSES))
    np.add.at(counts, (inverse.ravel(), fit_labels), 1)
    for key, best in zip(map(tuple, keys), counts.argmax(1)):
        table[key] = best
    return np.array([table.get(tuple(f), 0) for f in features])


def _miou(pred, labels):
    return segmentation_scores(confusion_matrix(torch.from_numpy(pred), torch.from_numpy(labels), NUM_CLASSES))["miou"]


@pytest.fixture(scope="module")
def scenes():
    return make_procedural_rgbd(48, size=32, seed=3)


def test_shapes_ranges_and_void_on_boundaries(scenes):
    assert scenes["rgb"].shape == (48, 3, 32, 32) and scenes["depth"].shape == (48, 1, 32, 32)
    assert scenes["labels"].shape == (48, 32, 32) and scenes["labels"].dtype == torch.int64
    assert 0 <= scenes["rgb"].min() and scenes["rgb"].max() <= 1
    labels = scenes["labels"]
    labelled = labels[labels != VOID_INDEX]
    assert set(labelled.unique().tolist()) == set(range(NUM_CLASSES))
    assert 0 < (labels == VOID_INDEX).float().mean() < 0.2
    torch.testing.assert_close(make_procedural_rgbd(3, 16, seed=5)["rgb"], make_procedural_rgbd(3, 16, seed=5)["rgb"])


def test_each_modality_alone_is_insufficient_by_construction(scenes):
    fit_rgb, fit_depth, fit_labels = _flatten(make_procedural_rgbd(200, size=32, seed=11))
    rgb, depth, labels = _flatten(scenes)
    rgb_pred = _lookup_pred(fit_rgb, fit_labels, rgb)
    depth_pred = _lookup_pred(fit_depth, fit_labels, depth)
    both_pred = _lookup_pred(np.concatenate([fit_rgb, fit_depth], 1), fit_labels, np.concatenate([rgb, depth], 1))
    miou_rgb, miou_depth, miou_both = _miou(rgb_pred, labels), _miou(depth_pred, labels), _miou(both_pred, labels)
    # an ideal single-modality predictor has mIoU about (1 + 1/2 + 0 + 1/2 + 0) / 5 = 0.4 (module docstring)
    assert miou_rgb < 0.55, miou_rgb  # measured 0.49 (seeds 11 / 3); the excess over 0.4 is finite-sample luck
    assert miou_depth < 0.55, miou_depth  # measured 0.44
    assert miou_both > 0.9, miou_both  # measured 0.96
    # and the confusions are the designed ones: colour mixes near/middle, depth mixes warm/cool
    assert _share(rgb_pred, labels, {1, 2}) > 0.95 and _share(rgb_pred, labels, {3, 4}) > 0.95
    assert _share(depth_pred, labels, {1, 3}) > 0.95 and _share(depth_pred, labels, {2, 4}) > 0.95


def _share(pred, labels, group):
    """Share of the pixels of the classes in ``group`` that are predicted as some class of ``group``."""
    inside = np.isin(labels, list(group))
    return float(np.isin(pred[inside], list(group)).mean())


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n >= 1"):
        make_procedural_rgbd(0)
