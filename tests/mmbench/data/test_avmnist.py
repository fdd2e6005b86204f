"""avmnist: the MultiBench on-disk format, read from a tiny generated copy."""
import numpy as np
import pytest

from mmbench.data import load_dataset


def write_fixture(root, n_train=36, n_test=12, flat_image=False):
    rng = np.random.default_rng(0)
    (root / "image").mkdir(parents=True)
    (root / "audio").mkdir()
    for part, n in (("train", n_train), ("test", n_test)):
        y = np.arange(n) % 10
        img = rng.integers(0, 256, size=(n, 28, 28)).astype(np.float32)
        np.save(root / "image" / f"{part}_data.npy", img.reshape(n, -1) if flat_image else img)
        np.save(root / "audio" / f"{part}_data.npy", rng.random((n, 112, 112)).astype(np.float32))
        np.save(root / f"{part}_labels.npy", y)
    return root


def test_reads_the_multibench_layout(tmp_path):
    root = write_fixture(tmp_path / "avmnist")
    d = load_dataset("avmnist", root=str(root))
    assert len(d) == 48 and d.num_classes == 10
    assert d.arrays["image"].shape == (48, 1, 28, 28) and d.arrays["audio"].shape == (48, 1, 112, 112)
    assert d.split["test"].tolist() == list(range(36, 48))
    assert len(d.split["val"]) == 3 and len(d.split["train"]) == 33  # 1/12 of the 36 train samples
    np.testing.assert_array_equal(d.arrays["image"][36, 0], np.load(root / "image" / "test_data.npy")[0])
    assert not np.array_equal(d.split["val"], load_dataset("avmnist", root=str(root), split_seed=1).split["val"])


def test_env_var_and_flat_images(tmp_path, monkeypatch):
    root = write_fixture(tmp_path / "flat", flat_image=True)
    monkeypatch.setenv("MMBENCH_AVMNIST", str(root))
    assert load_dataset("avmnist", val_fraction=0.25).arrays["image"].shape == (48, 1, 28, 28)


def test_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("MMBENCH_AVMNIST", raising=False)
    with pytest.raises(FileNotFoundError, match="MMBENCH_AVMNIST"):
        load_dataset("avmnist")
    with pytest.raises(FileNotFoundError, match="no-such-dir"):
        load_dataset("avmnist", root=str(tmp_path / "no-such-dir"))
    root = write_fixture(tmp_path / "partial")
    (root / "audio" / "test_data.npy").unlink()
    with pytest.raises(FileNotFoundError, match="audio/test_data.npy"):
        load_dataset("avmnist", root=str(root))
