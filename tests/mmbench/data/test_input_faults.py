"""Bad input is a data error naming the file or modality and the position (issue 21, failures 1, 5, 7)."""
import numpy as np
import pytest

from mmbench.data.arrays import build_dataset
from mmbench.data.folder import load_folder
from mmbench.data.npy_check import DamagedArrayError, check_npy
from mmbench.data.validate import DatasetError


def arrays(n=30, d=4, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(n, d)).astype(np.float32), "b": rng.normal(size=(n, 3)).astype(np.float32)}, \
        np.arange(n) % 3


def test_a_modality_with_no_features_is_refused():
    mods, labels = arrays()
    mods["b"] = np.zeros((30, 0), dtype=np.float32)
    with pytest.raises(DatasetError, match="modality 'b'.*no features"):
        build_dataset("x", mods, labels)


def test_labels_with_a_gap_are_not_taken_for_more_classes():
    mods, labels = arrays()
    labels = np.where(labels == 2, 7, labels)  # {0, 1, 7}
    with pytest.raises(ValueError, match=r"classes \[2, 3, 4, 5, 6\] have no sample"):
        build_dataset("x", mods, labels)
    assert build_dataset("x", mods, labels, num_classes=8).num_classes == 8  # declared: meant


def test_a_nan_is_named_with_its_position():
    mods, labels = arrays()
    mods["a"][17, 2] = np.nan
    with pytest.raises(DatasetError, match=r"modality 'a': 1 NaN/inf values, the first at position \(17, 2\)"):
        build_dataset("x", mods, labels)


def test_an_impossible_header_is_named_not_allocated(tmp_path):
    mods, labels = arrays()
    np.save(tmp_path / "labels.npy", labels)
    np.save(tmp_path / "a.npy", mods["a"])
    path = tmp_path / "a.npy"
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"(30, 4)", b"(130000000, 100)", 1)[:400])  # 1.3e10 floats declared
    with pytest.raises(DamagedArrayError, match=r"a\.npy: its header declares shape \(130000000, 100\)"):
        load_folder(tmp_path)


def test_a_truncated_array_is_named(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((100, 8), dtype=np.float32))
    path = tmp_path / "v.npy"
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(DamagedArrayError, match=r"v\.npy.*truncated or damaged\); rerun it"):
        check_npy(path, fix="rerun it")
