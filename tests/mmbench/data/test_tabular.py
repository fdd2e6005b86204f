"""The embedded multi-view tables (mmbench.data.tabular and its eight registered data sets)."""
import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest

from mmbench.data import load_dataset, select_modalities
from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.files_path import FILES
from mmbench.data.registry import dataset_fingerprint, dataset_group
from mmbench.data.tabular import impute_train_means, natural_presence, read_tables
from mmbench.data.validate import DatasetError, validate

# name -> (N, classes, {view: dim}, split sizes train/val/test, independence group)
EXPECTED = {
    "yeast-cc": (800, 5, {"alpha": 18, "cdc15": 24, "cdc28": 17, "elu": 14}, (480, 160, 160), "yeast-genes"),
    "yeast-ml": (2417, 2, {"expression": 79, "phylogenetic": 24}, (1450, 484, 483), "yeast-genes"),
    "satellite": (6435, 6, {"green": 9, "red": 9, "nir1": 9, "nir2": 9}, (3861, 1287, 1287), "satellite"),
    "cells": (2019, 2, {"ch1": 28, "ch2": 2, "ch3": 13, "ch4": 13}, (807, 202, 1010), "cells"),
    "spam": (4601, 2, {"words": 48, "chars": 6, "capitals": 3}, (2761, 920, 920), "spam"),
    "leaves": (1907, 32, {"shape": 50, "geometry": 19, "colour": 11}, (1144, 382, 381), "leaves"),
    "alzheimer": (333, 2, {"proteins": 124, "csf": 3, "demographics": 8}, (200, 66, 67), "alzheimer"),
    "pd-speech": (252, 2, {"acoustic": 52, "mfcc": 84, "wavelet": 614}, (151, 51, 50), "pd-speech"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loads_with_documented_shapes_split_and_licence(name):
    n, classes, dims, sizes, group = EXPECTED[name]
    d = load_dataset(name)
    assert len(d) == n and d.num_classes == classes and len(d.class_names) == classes
    assert {s.name: s.shape for s in d.specs} == {v: (k,) for v, k in dims.items()}
    assert all(s.kind == "vector" for s in d.specs)
    assert tuple(len(d.split[s]) for s in ("train", "val", "test")) == sizes
    every = np.concatenate([d.split[s] for s in ("train", "val", "test")])
    assert np.unique(every).size == n  # disjoint and covering
    for v in dims:
        assert np.isfinite(d.arrays[v]).all()  # gaps imputed
    assert set(np.unique(d.labels[d.split["test"]])) == set(range(classes))
    assert set(d.meta["view_acc"]) == set(dims) and 0 < d.meta["all_acc"] <= 1
    assert dataset_group(name) == group
    assert (FILES / f"{name}.LICENSE.txt").read_text().startswith(f"{name}.npz: ")
    assert dataset_fingerprint(name) == dataset_fingerprint(name) != dataset_fingerprint(name, split_seed=1)


def test_cells_keeps_its_own_split():
    d, raw = load_dataset("cells"), read_tables("cells.npz")
    assert np.array_equal(d.split["test"], np.flatnonzero(raw["split"] == 2))
    assert np.isin(d.split["val"], np.flatnonzero(raw["split"] == 0)).all()
    # another split seed moves rows between train and val only
    other = load_dataset("cells", split_seed=1)
    assert np.array_equal(other.split["test"], d.split["test"]) and not np.array_equal(other.split["val"], d.split["val"])


def test_only_yeast_cc_has_natural_gaps_counted_as_documented():
    d = load_dataset("yeast-cc")
    assert d.presence is not None and d.presence.shape == (800, 4)
    assert (d.presence == 0).sum(0).tolist() == [13, 55, 4, 8]
    assert int((d.presence.min(1) == 0).sum()) == 70 and d.presence.sum(1).min() >= 1
    assert all(load_dataset(n).presence is None for n in EXPECTED if n != "yeast-cc")
    # a looser threshold counts more views missing; a view with no gap over it is complete
    assert (load_dataset("yeast-cc", missing_above=0.0).presence == 0).sum() > (d.presence == 0).sum()


def test_partial_gaps_are_imputed_with_train_means_only():
    x = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, 100.0], [np.nan, np.nan]], dtype=np.float32)
    out = impute_train_means(x, train=np.array([0, 1]))
    assert out.tolist() == [[1.0, 4.0], [3.0, 4.0], [2.0, 100.0], [2.0, 4.0]]  # test rows never enter the means
    raw = {"x_a": np.array([[1, np.nan, np.nan, np.nan], [1, 2, np.nan, 4]], dtype=np.float32),
           "x_b": np.zeros((2, 1), np.float32)}
    assert natural_presence(raw, ["a", "b"], 0.25).tolist() == [[0.0, 1.0], [1.0, 1.0]]  # 75% vs 25% missing
    assert natural_presence(raw, ["a", "b"], 0.75) is None
    two = {"x_a": np.array([[np.nan, np.nan], [1, 2]]), "x_b": np.array([[np.nan, 1], [np.nan, np.nan]])}
    assert natural_presence(two, ["a", "b"], 0.25).tolist() == [[0.0, 1.0], [1.0, 0.0]]  # least incomplete kept


def test_selecting_modalities_keeps_their_presence_columns():
    d = load_dataset("yeast-cc")
    kept = select_modalities(d, "cdc15,alpha")
    assert np.array_equal(kept.presence, d.presence[:, [1, 0]])
    assert load_dataset("yeast-cc", modalities="alpha").presence is not None
    assert select_modalities(d, "cdc28").presence is not None


def test_validate_rejects_a_bad_presence_mask():
    base = dict(name="t", specs=[ModalitySpec("a", "vector", (2,)), ModalitySpec("b", "vector", (2,))],
                arrays={"a": np.zeros((3, 2), np.float32), "b": np.zeros((3, 2), np.float32)},
                labels=np.array([0, 1, 0]), num_classes=2,
                split={"train": np.array([0]), "val": np.array([1]), "test": np.array([2])})
    validate(MultimodalDataset(**base, presence=np.ones((3, 2), np.float32)))
    with pytest.raises(DatasetError, match="shape"):
        validate(MultimodalDataset(**base, presence=np.ones((3, 3), np.float32)))
    with pytest.raises(DatasetError, match="no modality present"):
        validate(MultimodalDataset(**base, presence=np.array([[1, 1], [0, 0], [1, 0]], np.float32)))


def test_build_writes_identical_bytes(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
    try:
        from tabular_build import write_npz
    finally:
        sys.path.pop(0)
    arrays = {"views": np.array(["a"]), "x_a": np.arange(6, dtype=np.float32).reshape(3, 2), "all_acc": np.array(0.5)}
    write_npz(tmp_path / "1.npz", arrays)
    write_npz(tmp_path / "2.npz", dict(reversed(list(arrays.items()))))
    one, two = ((tmp_path / f"{k}.npz").read_bytes() for k in (1, 2))
    assert hashlib.sha256(one).digest() == hashlib.sha256(two).digest()
    with np.load(tmp_path / "1.npz") as z:
        assert z["all_acc"].shape == () and np.array_equal(z["x_a"], arrays["x_a"])
