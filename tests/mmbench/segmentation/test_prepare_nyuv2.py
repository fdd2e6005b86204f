"""``prepare nyuv2 --src DIR`` (mmbench.segmentation.prepare_nyuv2) on the 5-frame fixture in the .mat layout.

The fixture (tests/mmbench/segmentation/test_nyuv2.py) is 6 x 8 pixels; train frames 1, 3, 5 and test
frames 2, 4 (1-based). The end-to-end run prepares it at 32 x 32 (the smallest size the ResNet-34
branches take down to 1/32) and trains one epoch: a few seconds.
"""
import json

import numpy as np
import pytest

pytest.importorskip("h5py", reason="the labelled NYUv2 .mat is MATLAB v7.3 (HDF5): pip install h5py")
pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")
scipy_io = pytest.importorskip("scipy.io")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.data.registry import dataset_fingerprint, dataset_task, load_dataset  # noqa: E402
from mmbench.prepare.integrity import CacheChangedError  # noqa: E402
from mmbench.prepare.run import prepare  # noqa: E402
from mmbench.run_key import run_identity  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.prepare_nyuv2 import NYUV2_CLASS_NAMES  # noqa: E402
from tests.mmbench.segmentation.test_nyuv2 import H, W, _write_fixture  # noqa: E402

NATIVE = ["height=0", "width=0"]


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def src(tmp_path):
    folder = tmp_path / "nyu"
    folder.mkdir()
    return folder


def test_frames_labels_and_split_at_the_source_size(src, capsys):
    images, depths, labels = _write_fixture(src)
    assert main(["prepare", "nyuv2", "--src", str(src), "--workers", "1", "--set", *NATIVE]) == 0
    assert "not the official 795 / 654" in capsys.readouterr().out  # a fixture split is accepted, with a note
    assert dataset_task("nyuv2") == "segmentation"
    data = load_dataset("nyuv2")
    np.testing.assert_array_equal(data.split["train"], [0, 2, 4])  # trainNdxs 1, 3, 5 (1-based)
    np.testing.assert_array_equal(data.split["test"], [1, 3])
    assert data.image_size == (H, W) and data.num_classes == 40 and data.class_names == NYUV2_CLASS_NAMES
    np.testing.assert_allclose(data.rgb[:], images / np.float32(255), atol=1e-7)
    np.testing.assert_array_equal(data.depth[:, 0], depths)
    raw = labels.astype(np.int64)
    expected = np.where(raw == 0, VOID_INDEX, (raw - 1) % 40)  # mapClass[l] - 1, with mapClass = l % 40 + 1
    np.testing.assert_array_equal(data.labels[:], expected)
    assert (data.labels[:, 0, 0] == VOID_INDEX).all()


def test_resizing_keeps_labels_and_depth_values_nearest(src):
    images, depths, labels = _write_fixture(src)
    prepare("nyuv2", src, {"height": 12, "width": 16}, workers=1, show_progress=False)
    data = load_dataset("nyuv2")
    assert data.image_size == (12, 16)
    raw = labels.astype(np.int64)
    mapped = np.where(raw == 0, VOID_INDEX, (raw - 1) % 40)
    for frame in range(len(labels)):  # nearest neighbour: every written value is one of the frame's own
        assert set(np.unique(data.labels[frame])) <= set(np.unique(mapped[frame]))
        assert set(np.unique(data.depth[frame])) <= set(np.unique(depths[frame]))
    assert 0.0 <= data.rgb[:].min() and data.rgb[:].max() <= 1.0
    with pytest.raises(ValueError, match="give both as positive sizes"):
        prepare("nyuv2", src, {"height": 12, "width": 0}, workers=1, show_progress=False)


def test_prepare_then_run_through_the_cli(src, tmp_path, capsys):
    _write_fixture(src)
    out = tmp_path / "x"
    # before prepare: an error naming the command, and no (failed) run stored
    assert main(["run", "--method", "joint", "--dataset", "nyuv2", "--set", "epochs=1", "--out", str(out)]) != 0
    assert "python -m mmbench prepare nyuv2 --src DIR" in capsys.readouterr().err
    assert not list(out.glob("runs/*.json"))
    assert main(["prepare", "nyuv2", "--src", str(src), "--workers", "1", "--set", "height=32", "width=32"]) == 0
    # 3 train frames: val_fraction 0.34 carves 1 for validation, 2 are trained on (a batch of 1 cannot
    # train the pyramid pooling's batch norm on a 1 x 1 map)
    assert main(["run", "--method", "joint", "--dataset", "nyuv2", "--set", "epochs=1", "val_fraction=0.34",
                 "--out", str(out)]) == 0
    assert "mIoU" in capsys.readouterr().out
    (path,) = (out / "runs").glob("*.json")
    record = json.loads(path.read_text())
    assert record["status"] == "ok" and record["task"] == "segmentation"
    assert record["metrics"]["split_sizes"] == {"train": 2, "val": 1, "test": 2}
    assert record["identity"]["data"] == dataset_fingerprint("nyuv2")
    # the check: DMRNet trains on the prepared fixture through the CLI too
    assert main(["run", "--method", "dmrnet", "--dataset", "nyuv2", "--set", "epochs=1", "val_fraction=0.34",
                 "--out", str(out)]) == 0
    records = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")]
    dmrnet = next(r for r in records if r["spec"]["method"] == "dmrnet")
    assert dmrnet["status"] == "ok" and dmrnet["metrics"]["split_sizes"] == {"train": 2, "val": 1, "test": 2}


def test_the_fingerprint_and_run_key_change_when_a_source_file_changes(src):
    _write_fixture(src)
    prepare("nyuv2", src, {"height": 8, "width": 8}, workers=1, show_progress=False)
    spec = RunSpec(method="joint", dataset="nyuv2", pattern="complete", seed=0, overrides={"epochs": 1})
    before, key_before = dataset_fingerprint("nyuv2"), run_identity(spec)
    prepare("nyuv2", src, {"height": 8, "width": 8}, workers=1, show_progress=False)  # unchanged: reused
    assert dataset_fingerprint("nyuv2") == before
    _write_fixture(src, mapping=(np.arange(894) % 40)[::-1] + 1)  # another 894 -> 40 mapping
    report = prepare("nyuv2", src, {"height": 8, "width": 8}, workers=1, show_progress=False)
    assert not report.reused and report.processed == 5
    assert dataset_fingerprint("nyuv2") != before and run_identity(spec) != key_before
    # the cache itself edited after prepare: no fingerprint, no load (an error naming the cache)
    labels = np.load(report.folder / "pixel_labels.npy", mmap_mode="r+")
    labels[0, 0, 0] = 3 if labels[0, 0, 0] != 3 else 4
    labels.flush()
    del labels
    with pytest.raises(CacheChangedError, match="changed since prepare wrote it"):
        dataset_fingerprint("nyuv2")


def test_errors_name_the_missing_folder_file_or_bad_layout(src, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare("nyuv2", tmp_path / "nowhere", workers=1, show_progress=False)
    with pytest.raises(FileNotFoundError, match="nyu_depth_v2_labeled.mat is missing"):
        prepare("nyuv2", src, workers=1, show_progress=False)
    _write_fixture(src)
    (src / "splits.mat").unlink()
    with pytest.raises(FileNotFoundError, match="splits.mat is missing"):
        prepare("nyuv2", src, workers=1, show_progress=False)
    _write_fixture(src)
    scipy_io.savemat(src / "nyu_depth_v2_labeled.mat", {"images": np.zeros((2, 2))})  # MATLAB v5, not v7.3
    with pytest.raises(ValueError, match="not a MATLAB v7.3 \\(HDF5\\) file"):
        prepare("nyuv2", src, workers=1, show_progress=False)
    _write_fixture(src)
    scipy_io.savemat(src / "splits.mat", {"trainNdxs": np.array([[1], [9]]), "testNdxs": np.array([[2]])})
    with pytest.raises(ValueError, match="lists train frame 9; the .mat has 5"):
        prepare("nyuv2", src, workers=1, show_progress=False)
    with pytest.raises(FileNotFoundError, match="prepare nyuv2 --src DIR"):  # no cache yet for another root
        load_dataset("nyuv2")
