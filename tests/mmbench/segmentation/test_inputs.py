"""Depth normalisation by the train split's statistics (mmbench.segmentation.inputs) and the input
settings' place in the run identity."""
import json

import numpy as np
import pytest
import torch

from mmbench.config import RunSpec
from mmbench.segmentation.dataset import SegmentationDataset
from mmbench.segmentation.inputs import depth_statistics, input_transforms, normalise_depth
from mmbench.segmentation.methods import get_segmentation_method
from mmbench.segmentation.settings import resolve_segmentation

SETTINGS = {"depth_norm": "train-stats", "augment": False}


def _data(n=10, h=32, w=32, seed=0):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.5, 4.0, (n, 1, h, w)).astype(np.float32)
    depth[:, :, :3] = 0  # invalid pixels
    rows = {"train": np.arange(6), "test": np.arange(6, n)}
    return SegmentationDataset("toy", rng.random((n, 3, h, w), dtype=np.float32), depth,
                               rng.integers(0, 3, (n, h, w)), rows, 3)


def test_statistics_are_over_the_valid_pixels_of_the_train_rows_only():
    data = _data()
    train = np.array([0, 2, 3, 5])
    valid = data.depth[train][data.depth[train] > 0].astype(np.float64)
    mean, std = depth_statistics(data.depth, train, chunk=3)  # chunks of 3 frames: the sums add up exactly
    assert mean == pytest.approx(valid.mean(), rel=1e-12) and std == pytest.approx(valid.std(), rel=1e-9)
    changed = data.depth.copy()
    changed[[1, 4, 6, 7, 8, 9]] *= 100  # frames outside the train rows (validation, test) change nothing
    assert depth_statistics(changed, train) == pytest.approx((mean, std), rel=1e-12)


def test_normalised_depth_is_standardised_and_invalid_pixels_stay_zero():
    data = _data()
    mean, std = depth_statistics(data.depth, data.split["train"])
    out = normalise_depth(torch.as_tensor(data.depth[data.split["train"]]), mean, std)
    valid = torch.as_tensor(data.depth[data.split["train"]]) > 0
    assert torch.all(out[~valid] == 0)
    assert out[valid].double().mean().item() == pytest.approx(0.0, abs=1e-5)
    assert out[valid].double().std(unbiased=False).item() == pytest.approx(1.0, rel=1e-4)


def test_the_eval_transform_normalises_with_the_train_rows_statistics_and_none_leaves_depth_as_stored():
    data = _data()
    g = torch.Generator().manual_seed(0)
    train_t, eval_t, info = input_transforms(SETTINGS, data, data.split["train"], g)
    assert (info["depth_mean"], info["depth_std"]) == depth_statistics(data.depth, data.split["train"])
    test_depth = torch.as_tensor(data.depth[6:])
    _, got, _ = eval_t(torch.zeros(4, 3, 32, 32), test_depth, torch.zeros(4, 32, 32, dtype=torch.long))
    assert torch.equal(got, normalise_depth(test_depth, info["depth_mean"], info["depth_std"]))
    none_t, none_e, info = input_transforms({**SETTINGS, "depth_norm": "none"}, data, data.split["train"], g)
    assert none_t is None and none_e is None and "depth_mean" not in info


def test_a_constant_or_empty_train_depth_is_a_clear_error():
    data = _data()
    with pytest.raises(ValueError, match="no valid"):
        depth_statistics(np.zeros_like(data.depth), data.split["train"])
    with pytest.raises(ValueError, match="constant"):
        depth_statistics(np.ones_like(data.depth), data.split["train"])


def test_the_input_settings_are_in_the_identity_with_esanet_defaults():
    cls = get_segmentation_method("joint")
    train, _ = resolve_segmentation(RunSpec("joint", "procedural-rgbd"), cls)
    assert (train["deep_supervision"], train["depth_norm"], train["augment"]) == (True, "train-stats", False)
    train, _ = resolve_segmentation(RunSpec("joint", "nyuv2"), cls)
    assert train["augment"] is True  # the release augments NYUv2 and Cityscapes
    for bad, message in (({"depth_norm": "imagenet"}, "depth_norm"), ({"augment": "yes"}, "augment")):
        with pytest.raises(ValueError, match=message):
            resolve_segmentation(RunSpec("joint", "procedural-rgbd", overrides=bad), cls)
    from mmbench.segmentation.runner import SEGMENTATION_PROTOCOL, segmentation_identity

    assert SEGMENTATION_PROTOCOL >= 2
    keys = {json.dumps(segmentation_identity(RunSpec("joint", "procedural-rgbd", overrides=o)), sort_keys=True)
            for o in ({}, {"depth_norm": "none"}, {"augment": True}, {"deep_supervision": False})}
    assert len(keys) == 4


def test_a_run_stores_the_statistics_of_its_carved_train_split(tmp_path, monkeypatch):
    pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's")
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))
    from mmbench.data import load_dataset
    from mmbench.results_store import ResultsStore
    from mmbench.runner import Runner
    from mmbench.segmentation.dataset import carve_validation

    spec = RunSpec("joint", "procedural-rgbd", overrides={"epochs": 1, "decoder_channels": [16, 8, 8]})
    result = Runner(ResultsStore(tmp_path / "out")).run(spec)
    assert result["status"] == "ok", result.get("error")
    data = load_dataset("procedural-rgbd")
    rest, _ = carve_validation(data.split["train"], result["config"]["train"]["val_fraction"])
    inputs = result["metrics"]["inputs"]
    assert (inputs["depth_mean"], inputs["depth_std"]) == pytest.approx(depth_statistics(data.depth, rest))


def test_none_from_the_command_line_means_the_none_choice():
    cls = get_segmentation_method("joint")
    # ``--set depth_norm=none class_weighting=none`` parses both to None
    train, _ = resolve_segmentation(RunSpec("joint", "procedural-rgbd",
                                            overrides={"depth_norm": None, "class_weighting": None}), cls)
    assert (train["depth_norm"], train["class_weighting"]) == ("none", "none")
