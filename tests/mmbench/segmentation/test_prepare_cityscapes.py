"""``prepare cityscapes --src DIR`` (mmbench.segmentation.prepare_cityscapes) on a fixture in the exact layout.

Two cities with tiny 16 x 32 frames: train/aachen (2 frames), val/lindau (2 frames), written as the
official packages name them (leftImg8bit 8-bit RGB, disparity 16-bit, gtFine_labelIds 8-bit).
"""
import json
import shutil

import numpy as np
import pytest

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")
Image = pytest.importorskip("PIL.Image")

from mmbench.cli import main  # noqa: E402
from mmbench.data.registry import dataset_fingerprint, dataset_task, load_dataset  # noqa: E402
from mmbench.prepare.run import prepare  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.prepare_cityscapes import (  # noqa: E402
    CITYSCAPES_CLASS_NAMES,
    STANDARD_CAMERA,
    disparity_to_depth,
    label_ids_to_train_ids,
)

H, W = 16, 32
FRAMES = {"train": [("aachen", "aachen_000000_000019"), ("aachen", "aachen_000001_000019")],
          "val": [("lindau", "lindau_000000_000019"), ("lindau", "lindau_000001_000019")]}
NATIVE = {"height": 0, "width": 0}


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


def _write(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def _write_fixture(src, camera=None):
    """Every frame's three PNGs (and camera json when ``camera = (baseline, fx)``); returns the arrays."""
    rng = np.random.default_rng(0)
    frames = {}
    for split, entries in FRAMES.items():
        for city, stem in entries:
            rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
            disparity = rng.integers(0, 30000, (H, W)).astype(np.uint16)
            disparity[0, :3] = [0, 1, 2]  # invalid, zero disparity, a depth far beyond max_depth
            label_ids = rng.integers(0, 34, (H, W)).astype(np.uint8)
            _write(src / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", rgb)
            _write(src / "disparity" / split / city / f"{stem}_disparity.png", disparity)
            _write(src / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", label_ids)
            if camera is not None:
                path = src / "camera" / split / city / f"{stem}_camera.json"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(json.dumps({"extrinsic": {"baseline": camera[0]}, "intrinsic": {"fx": camera[1]}}))
            frames[(split, stem)] = (rgb, disparity, label_ids)
    return frames


def test_label_ids_become_the_19_train_ids_and_everything_else_void():
    ids = np.arange(256, dtype=np.uint8)
    train_ids = label_ids_to_train_ids(ids)
    evaluated = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]  # road .. bicycle
    np.testing.assert_array_equal(train_ids[evaluated], np.arange(19))
    others = np.setdiff1d(np.arange(256), evaluated)  # unlabelled, ego vehicle, ground, parking, rail track, ...
    assert (train_ids[others] == VOID_INDEX).all()
    assert CITYSCAPES_CLASS_NAMES[0] == "road" and CITYSCAPES_CLASS_NAMES[18] == "bicycle"


def test_disparity_to_depth_with_zero_as_invalid():
    raw = np.array([[0, 1, 2, 257, 513]])  # d = (p - 1) / 256: -, 0, 1/256, 1, 2
    depth = disparity_to_depth(raw, baseline=0.2, fx=1000.0, max_depth=300.0)
    np.testing.assert_allclose(depth, [[0, 0, 0, 200.0, 100.0]])  # 0.2 * 1000 * 256 = 51200 m > 300: invalid
    assert disparity_to_depth(raw, 0.2, 1000.0, max_depth=1e6)[0, 2] == pytest.approx(51200.0)


def test_frames_split_labels_and_standard_camera(tmp_path):
    src = tmp_path / "cityscapes"
    frames = _write_fixture(src)
    _write(src / "leftImg8bit" / "test" / "berlin" / "berlin_000000_000019_leftImg8bit.png",
           np.zeros((H, W, 3), np.uint8))  # labels withheld: never read
    report = prepare("cityscapes", src, NATIVE, workers=1, show_progress=False)
    assert report.done == 4 and "standard baseline" in report.notes["camera"]
    assert dataset_task("cityscapes") == "segmentation"
    data = load_dataset("cityscapes")
    assert data.num_classes == 19 and data.image_size == (H, W)
    np.testing.assert_array_equal(data.split["train"], [0, 1])
    np.testing.assert_array_equal(data.split["test"], [2, 3])  # val is the papers' test split
    rgb, disparity, label_ids = frames[("val", "lindau_000001_000019")]
    np.testing.assert_allclose(data.rgb[3], rgb.transpose(2, 0, 1) / np.float32(255), atol=1e-7)
    np.testing.assert_array_equal(data.labels[3], label_ids_to_train_ids(label_ids))
    expected = disparity_to_depth(disparity.astype(np.int64), STANDARD_CAMERA["baseline"], STANDARD_CAMERA["fx"], 300)
    np.testing.assert_allclose(data.depth[3, 0], expected, rtol=1e-6)
    assert (data.depth[3, 0, 0, :3] == 0).all()


def test_camera_json_is_read_when_present_and_missing_partners_are_reported(tmp_path):
    src = tmp_path / "cityscapes"
    frames = _write_fixture(src, camera=(0.25, 2000.0))
    (src / "disparity" / "train" / "aachen" / "aachen_000001_000019_disparity.png").unlink()
    report = prepare("cityscapes", src, NATIVE, workers=1, show_progress=False)
    assert report.done == 3 and "camera json" in report.notes["camera"]
    (missing,) = [where for entries in report.skipped.values() for where, _ in entries]
    assert missing.endswith("aachen_000001_000019_disparity.png")
    data = load_dataset("cityscapes")
    _, disparity, _ = frames[("train", "aachen_000000_000019")]
    np.testing.assert_allclose(data.depth[0, 0], disparity_to_depth(disparity.astype(np.int64), 0.25, 2000.0, 300),
                               rtol=1e-6)
    prepare("cityscapes", src, {**NATIVE, "depth_input": "disparity"}, workers=1, show_progress=False)
    np.testing.assert_array_equal(load_dataset("cityscapes").depth[0, 0], disparity)  # ESANet's raw input
    with pytest.raises(ValueError, match="depth_input='inverse'; one of depth, disparity"):
        prepare("cityscapes", src, {"depth_input": "inverse"}, workers=1, show_progress=False)


def test_prepare_then_run_through_the_cli(tmp_path, capsys):
    src = tmp_path / "cityscapes"
    _write_fixture(src)
    rng = np.random.default_rng(1)  # a second train city: 4 train frames, 1 carved for validation, 3 trained on
    for stem in ("bremen_000000_000019", "bremen_000001_000019"):
        _write(src / "leftImg8bit" / "train" / "bremen" / f"{stem}_leftImg8bit.png",
               rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        _write(src / "disparity" / "train" / "bremen" / f"{stem}_disparity.png",
               rng.integers(0, 30000, (H, W)).astype(np.uint16))
        _write(src / "gtFine" / "train" / "bremen" / f"{stem}_gtFine_labelIds.png",
               rng.integers(0, 34, (H, W)).astype(np.uint8))
    assert main(["prepare", "cityscapes", "--src", str(src), "--workers", "1", "--set", "height=32",
                 "width=64"]) == 0
    out = tmp_path / "x"
    assert main(["run", "--method", "joint", "--dataset", "cityscapes", "--set", "epochs=1", "val_fraction=0.25",
                 "encoder_layers=[1,1,1,1]", "decoder_channels=[32,16,8]", "--out", str(out)]) == 0
    assert "mIoU" in capsys.readouterr().out
    (path,) = (out / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["task"] == "segmentation"
    assert record["metrics"]["split_sizes"] == {"train": 3, "val": 1, "test": 2}
    assert record["identity"]["data"] == dataset_fingerprint("cityscapes")
    # MMANet on the same fixture (issue 20's "done when"): its joint teacher is trained first, then the student
    assert main(["run", "--method", "mmanet", "--dataset", "cityscapes", "--set", "epochs=2", "val_fraction=0.25",
                 "encoder_layers=[1,1,1,1]", "decoder_channels=[32,16,8]", "--out", str(out)]) == 0
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    student = next(r for r in records if r["spec"]["method"] == "mmanet")
    assert student["status"] == "ok" and student["metrics"]["best_epoch"] == 1  # MAD and MAR in epoch 1
    # the teacher run: same seed, its settings hash the one in the student's identity
    assert any(r["settings_hash"] == student["identity"]["teacher"]["settings"] and r["status"] == "ok"
               and r["spec"]["seed"] == student["spec"]["seed"] for r in records)


def test_errors_name_the_missing_folder_or_wrong_layout(tmp_path):
    src = tmp_path / "cityscapes"
    _write_fixture(src)
    (src / "gtFine" / "val" / "lindau" / "lindau_000000_000019_gtFine_labelIds.png").unlink()
    (src / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelIds.png").unlink()
    prepare("cityscapes", src, NATIVE, workers=1, show_progress=False)
    with pytest.raises(ValueError, match="has no test frames"):  # every val frame lacked its labels
        load_dataset("cityscapes")
    bad = tmp_path / "flat"
    for folder in ("leftImg8bit", "disparity", "gtFine"):
        for split in ("train", "val"):
            (bad / folder / split).mkdir(parents=True)
    _write(bad / "leftImg8bit" / "train" / "x_leftImg8bit.png", np.zeros((H, W, 3), np.uint8))  # no city folder
    with pytest.raises(ValueError, match="no <city>/\\*_leftImg8bit.png under"):
        prepare("cityscapes", bad, NATIVE, workers=1, show_progress=False)
    shutil.rmtree(src / "disparity")
    with pytest.raises(FileNotFoundError, match="folder .*disparity/train is missing"):
        prepare("cityscapes", src, NATIVE, workers=1, show_progress=False)
