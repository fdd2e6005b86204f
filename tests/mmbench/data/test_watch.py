"""watch: window counts, subject split, window contents, options."""
import numpy as np
import pytest

from mmbench.data import load_dataset
from mmbench.data.watch import _raw


def test_default_windows_and_split_by_subject():
    d = load_dataset("watch")
    assert len(d) == 3605 and d.num_classes == 7
    assert d.class_names == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    for m in ("accel", "gyro"):
        assert d.arrays[m].shape == (3605, 3, 128) and d.arrays[m].dtype == np.float32
    assert set(np.unique(d.labels)) == set(range(7))
    subjects = {k: set(d.groups[v].tolist()) for k, v in d.split.items()}
    assert subjects == {"train": set(range(1, 8)), "val": {8}, "test": {9, 10}}
    assert [len(d.split[k]) for k in ("train", "val", "test")] == [2460, 372, 773]


def test_window_contents_match_the_raw_recording():
    d, raw = load_dataset("watch"), _raw()
    # window 1 of recording 0 starts at step 64 (50% overlap)
    assert d.meta["recording"][1] == 0
    np.testing.assert_array_equal(d.arrays["accel"][1], raw["series"][64:192, 0:3].T)
    np.testing.assert_array_equal(d.arrays["gyro"][1], raw["series"][64:192, 3:6].T)


@pytest.mark.parametrize("window, overlap", [(64, 0.0), (100, 0.25)])
def test_window_and_overlap_options(window, overlap):
    raw = _raw()
    lengths = np.diff(raw["offsets"])
    step = int(round(window * (1 - overlap)))
    expected = int(np.sum((lengths - window) // step + 1))
    d = load_dataset("watch", window=window, overlap=overlap)
    assert len(d) == expected and d.specs[0].shape == (3, window)


def test_bad_options():
    with pytest.raises(ValueError, match="overlap"):
        load_dataset("watch", overlap=1.0)
    with pytest.raises(ValueError, match="group 11"):
        load_dataset("watch", test_subjects=(11,))
