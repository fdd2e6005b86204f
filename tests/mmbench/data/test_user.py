"""Bring your own data: register_arrays, the folder format, MMBENCH_DATA auto-registration."""
import json

import numpy as np
import pytest

from mmbench.data import DatasetError, list_datasets, load_dataset, load_folder, register_arrays, save_folder


def arrays(n=60, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    return {"v": rng.normal(size=(n, 5)), "s": rng.normal(size=(n, 2, 7)), "i": rng.normal(size=(n, 1, 4, 4))}, y


def test_register_arrays_infers_kinds_and_splits():
    mods, y = arrays()
    d = register_arrays("test-user-arrays", mods, y)
    assert [(s.name, s.kind, s.shape) for s in d.specs] == [("v", "vector", (5,)), ("s", "series", (2, 7)),
                                                            ("i", "image", (1, 4, 4))]
    assert d.arrays["v"].dtype == np.float32 and d.num_classes == 3
    assert load_dataset("test-user-arrays") is load_dataset("test-user-arrays")
    assert np.array_equal(np.bincount(y[d.split["train"]]), [12] * 3)  # stratified by default
    r = register_arrays("test-user-random", mods, y, split="random", split_seed=4)
    assert [len(r.split[k]) for k in ("train", "val", "test")] == [36, 12, 12]
    given = {"train": np.arange(40), "val": np.arange(40, 50), "test": np.arange(50, 60)}
    register_arrays("test-user-dict", mods, y, split=given)
    assert load_dataset("test-user-dict").split["val"].tolist() == list(range(40, 50))
    codes = register_arrays("test-user-codes", {"x": np.arange(6.0)}, [0, 1, 0, 1, 0, 1], split=[0, 0, 1, 1, 2, 2])
    assert codes.specs[0].shape == (1,) and codes.split["test"].tolist() == [4, 5]
    k = register_arrays("test-user-kinds", {"x": np.zeros((6, 3, 4)), "t": np.zeros((6, 9))}, [0, 1] * 3,
                        kinds={"x": "image", "t": "series"}, split=[0, 0, 1, 1, 2, 2])
    assert [(s.kind, s.shape) for s in k.specs] == [("image", (1, 3, 4)), ("series", (1, 9))]

def test_register_arrays_errors():
    mods, y = arrays()
    with pytest.raises(DatasetError, match="'s' has 59 samples but the labels have 60"):
        register_arrays("test-user-bad", {"v": mods["v"], "s": mods["s"][:59]}, y)
    with pytest.raises(DatasetError, match="label 3 is outside"):
        register_arrays("test-user-bad", mods, np.where(y == 2, 3, y), num_classes=3)
    bad = dict(mods, v=np.where(np.arange(60)[:, None] == 7, np.nan, mods["v"]))
    with pytest.raises(DatasetError, match="modality 'v'.*NaN"):
        register_arrays("test-user-bad", bad, y)
    with pytest.raises(ValueError, match="unknown modality 'w'"):
        register_arrays("test-user-bad", mods, y, kinds={"w": "vector"})
    assert "test-user-bad" not in list_datasets("test-user-*")


def test_folder_round_trip(tmp_path):
    mods, y = arrays()
    d = register_arrays("test-user-save", mods, y, class_names=["a", "b", "c"], groups=np.arange(60) // 6)
    folder = save_folder(d, tmp_path / "mine")
    back = load_folder(folder)
    assert back.name == "mine" and back.modalities == d.modalities and back.class_names == ["a", "b", "c"]
    for m in d.modalities:
        np.testing.assert_array_equal(back.arrays[m], d.arrays[m])
    assert all(np.array_equal(back.split[k], d.split[k]) for k in d.split)
    np.testing.assert_array_equal(back.groups, d.groups)


def test_folder_with_string_split_and_meta_order(tmp_path):
    root = tmp_path / "strs"
    root.mkdir()
    np.save(root / "labels.npy", np.array([0, 1, 0, 1, 0, 1]))
    np.save(root / "b.npy", np.ones((6, 2), np.float32))
    np.save(root / "a.npy", np.ones((6, 3, 5), np.float64))
    np.save(root / "split.npy", np.array(["train", "train", "val", "val", "test", "test"]))
    (root / "meta.json").write_text(json.dumps({"modalities": ["b", "a"], "kinds": {"a": "series"}}))
    d = load_folder(root)
    assert d.modalities == ["b", "a"] and d.split["val"].tolist() == [2, 3] and d.arrays["a"].dtype == np.float32


def test_missing_folder_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_folder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty.*labels.npy"):
        load_folder(tmp_path / "empty")


def test_env_var_registers_user_folders(tmp_path, monkeypatch):
    mods, y = arrays()
    d = register_arrays("test-user-env-src", mods, y)
    save_folder(d, tmp_path / "one" / "alpha")
    save_folder(d, tmp_path / "two" / "beta")
    (tmp_path / "two" / "not-data").mkdir()  # no .npy file at all: not a data set, ignored
    monkeypatch.setenv("MMBENCH_DATA", f"{tmp_path / 'one'}:{tmp_path / 'two'}")
    assert list_datasets("user:*") == ["user:alpha", "user:beta"]
    beta = load_dataset("user:beta")
    assert beta.name == "user:beta" and len(beta) == 60
    np.testing.assert_array_equal(beta.arrays["s"], d.arrays["s"])
    monkeypatch.delenv("MMBENCH_DATA")
    assert list_datasets("user:*") == []


def _child_load(name):
    from mmbench.data import load_dataset as child_load

    d = child_load(name)
    return len(d), d.modalities, d.split["test"].tolist(), float(d.arrays["v"].sum())


def test_registered_arrays_reach_spawned_workers():
    """The grid runs in spawned processes: a data set registered from memory must load there too."""
    import multiprocessing as mp

    mods, y = arrays(seed=3)
    d = register_arrays("test-user-spawn", mods, y, split="random")
    with mp.get_context("spawn").Pool(1) as pool:
        n, names, test, total = pool.apply(_child_load, ("test-user-spawn",))
    assert (n, names, test) == (60, ["v", "s", "i"], d.split["test"].tolist())
    assert total == pytest.approx(float(d.arrays["v"].sum()))


def test_user_folder_without_labels_is_listed_and_says_what_is_missing(tmp_path, monkeypatch):
    (tmp_path / "nolabels").mkdir()
    np.save(tmp_path / "nolabels" / "audio.npy", np.zeros((10, 3), dtype=np.float32))
    monkeypatch.setenv("MMBENCH_DATA", str(tmp_path))
    assert list_datasets("user:*") == ["user:nolabels"]  # not silently ignored
    with pytest.raises(FileNotFoundError, match=r"nolabels.*has no labels\.npy"):
        load_dataset("user:nolabels")


@pytest.mark.parametrize(
    "modality, message",
    [
        (np.array([{"a": 1}] * 60, dtype=object), r"v\.npy holds Python objects"),
        (np.array(["x"] * 60), r"v\.npy holds <U1 values, not numbers"),
    ],
)
def test_npy_holding_objects_or_text_names_the_file(tmp_path, modality, message):
    mods, y = arrays()
    save_folder(register_arrays("test-user-npy-src", mods, y), tmp_path / "bad")
    if modality.dtype == object:
        np.save(tmp_path / "bad" / "v.npy", modality, allow_pickle=True)
    else:
        np.save(tmp_path / "bad" / "v.npy", modality)
    with pytest.raises(ValueError, match=message):
        load_folder(tmp_path / "bad")


def test_file_that_is_not_npy_names_the_file(tmp_path):
    mods, y = arrays()
    save_folder(register_arrays("test-user-npy-src2", mods, y), tmp_path / "bad")
    (tmp_path / "bad" / "labels.npy").write_text("0,1,2\n")  # a CSV saved under the .npy name
    with pytest.raises(ValueError, match=r"labels\.npy is not a readable \.npy array"):
        load_folder(tmp_path / "bad")


def test_in_memory_text_modality_names_the_modality():
    mods, y = arrays()
    with pytest.raises(ValueError, match=r"modality 'v' holds <U3 values \(text\)"):
        register_arrays("test-user-text", {**mods, "v": np.array(["abc"] * len(y))}, y)


def test_class_too_small_for_the_stratified_split_is_an_error_naming_it():
    mods, y = arrays()
    y = y.copy()
    y[:2] = y.max() + 1  # a new class with 2 samples: it cannot reach train, val and test
    with pytest.raises(ValueError, match=rf"class {y.max()} \(2 samples, none in (val|test)"):
        register_arrays("test-user-small-class", mods, y)
    register_arrays("test-user-small-class", mods, y, split="random")  # an explicit split is the user's choice
