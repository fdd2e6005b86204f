"""NYUv2 from the user's files (mmbench.segmentation.nyuv2) on a tiny fixture in the exact layout."""
import numpy as np
import pytest

h5py = pytest.importorskip("h5py", reason="the labelled NYUv2 .mat is MATLAB v7.3 (HDF5): pip install h5py")
scipy_io = pytest.importorskip("scipy.io")

from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from mmbench.segmentation.nyuv2 import prepare_nyuv2, read_class_mapping  # noqa: E402

H, W, N = 6, 8, 5


def _write_fixture(src, mapping=None):
    """The three files, with MATLAB's dimension order as h5py sees it ([N, 3, W, H] etc.)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (N, 3, H, W), dtype=np.uint8)  # [N, 3, H, W] as the frames really are
    depths = rng.uniform(0.5, 10, (N, H, W)).astype(np.float32)
    labels = rng.integers(0, 895, (N, H, W)).astype(np.uint16)
    labels[:, 0, 0] = 0  # unlabelled
    with h5py.File(src / "nyu_depth_v2_labeled.mat", "w") as f:
        f["images"] = images.transpose(0, 1, 3, 2)  # MATLAB H x W x 3 x N, reversed by HDF5
        f["depths"] = depths.transpose(0, 2, 1)
        f["labels"] = labels.transpose(0, 2, 1)
    if mapping is None:
        mapping = (np.arange(894) % 40) + 1
    scipy_io.savemat(src / "classMapping40.mat", {"mapClass": mapping[None, :].astype(np.float64)})
    scipy_io.savemat(src / "splits.mat", {"trainNdxs": np.array([[1], [3], [5]]), "testNdxs": np.array([[2], [4]])})
    return images, depths, labels


def test_frames_are_transposed_back_mapped_to_40_classes_and_split(tmp_path):
    images, depths, labels = _write_fixture(tmp_path)
    sizes = prepare_nyuv2(tmp_path, tmp_path / "out", official=False)
    assert sizes == {"train": 3, "test": 2}
    rgb = np.load(tmp_path / "out" / "train_rgb.npy")
    np.testing.assert_array_equal(rgb, images[[0, 2, 4]])  # 1-based trainNdxs 1, 3, 5
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "test_depth.npy")[:, 0], depths[[1, 3]])
    lab = np.load(tmp_path / "out" / "test_labels.npy")
    raw = labels[[1, 3]].astype(np.int64)
    expected = np.where(raw == 0, VOID_INDEX, (raw - 1) % 40)  # mapClass[l] - 1 with mapClass = l % 40 + 1
    np.testing.assert_array_equal(lab, expected)
    assert lab.max() == VOID_INDEX and lab[lab != VOID_INDEX].max() < 40


def test_official_split_sizes_are_enforced_by_default(tmp_path):
    _write_fixture(tmp_path)
    with pytest.raises(ValueError, match="official split 795"):
        prepare_nyuv2(tmp_path, tmp_path / "out")


def test_missing_files_and_bad_mappings_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="classMapping40.mat is missing"):
        prepare_nyuv2(tmp_path, tmp_path / "out", official=False)
    _write_fixture(tmp_path, mapping=np.arange(894) % 50 + 1)
    with pytest.raises(ValueError, match="expected 894 entries in \\[1, 40\\]"):
        read_class_mapping(tmp_path / "classMapping40.mat")
    scipy_io.savemat(tmp_path / "classMapping40.mat", {"other": np.ones(3)})
    with pytest.raises(ValueError, match="none of"):
        read_class_mapping(tmp_path / "classMapping40.mat")
