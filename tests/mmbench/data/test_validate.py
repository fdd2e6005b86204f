"""validate(): every broken invariant gives an error that names what is wrong."""
import numpy as np
import pytest

from mmbench.data import DatasetError, ModalitySpec, MultimodalDataset, validate
from mmbench.data.splits import random_split


def toy(n=30):
    rng = np.random.default_rng(0)
    return MultimodalDataset(
        "toy", [ModalitySpec("a", "vector", (4,)), ModalitySpec("b", "series", (2, 5))],
        {"a": rng.normal(size=(n, 4)).astype(np.float32), "b": rng.normal(size=(n, 2, 5)).astype(np.float32)},
        (np.arange(n) % 3).astype(np.int64), 3, random_split(n))


def test_valid_passes_and_is_returned():
    d = toy()
    assert validate(d) is d


@pytest.mark.parametrize("breaker, message", [
    (lambda d: d.arrays.__setitem__("b", d.arrays["b"][:25]), "modality 'b' has 25 samples but the labels have 30"),
    (lambda d: d.arrays.__setitem__("a", d.arrays["a"][:, :3]),
     r"modality 'a': per-sample shape \(3,\) does not match the spec \(4,\)"),
    (lambda d: d.arrays.__setitem__("a", d.arrays["a"].astype(np.float64)), "'a': dtype float64, expected float32"),
    (lambda d: d.arrays["b"].__setitem__((3, 1, 2), np.nan), "modality 'b': 1 NaN/inf"),
    (lambda d: d.arrays["a"].__setitem__((0, 0), np.inf), "modality 'a': 1 NaN/inf"),
    (lambda d: d.labels.__setitem__(5, 7), r"label 7 is outside \[0, 3\)"),
    (lambda d: d.labels.__setitem__(5, -1), "label -1 is outside"),
    (lambda d: setattr(d, "labels", d.labels.astype(np.int32)), "labels must be int64"),
    (lambda d: d.split.__setitem__("val", np.append(d.split["val"], d.split["train"][0])), "disjoint"),
    (lambda d: d.split.__setitem__("test", np.zeros(0, np.int64)), "split 'test' is empty"),
    (lambda d: d.split.__setitem__("test", np.array([99], np.int64)), r"index 99 outside \[0, 30\)"),
    (lambda d: d.split.pop("val"), "split keys"),
    (lambda d: d.arrays.pop("b"), "modality 'b': no array"),
    (lambda d: d.arrays.__setitem__("c", d.arrays["a"]), "without a spec"),
    (lambda d: setattr(d, "class_names", ["x"]), "1 class names for 3 classes"),
])
def test_errors_name_the_problem(breaker, message):
    d = toy()
    breaker(d)
    with pytest.raises(DatasetError, match=message):
        validate(d)


def test_non_finite_values_are_counted_over_row_chunks_and_prepared_caches_are_not_rescanned(monkeypatch):
    """The NaN/inf scan of a memory-mapped modality goes in row chunks (no whole-array temporary); a
    prepared cache, whose rows prepare checked as it wrote them, is not rescanned at every load."""
    import sys

    module = sys.modules["mmbench.data.validate"]
    monkeypatch.setattr(module, "FINITE_CHUNK_BYTES", 4 * 10 * 3)  # 3 rows of series [2, 5] per chunk
    d = toy()
    d.arrays["b"][[0, 4, 29], 1, 2] = [np.nan, np.inf, -np.inf]  # in three different chunks
    with pytest.raises(DatasetError, match="modality 'b': 3 NaN/inf"):
        validate(d)
    d.meta["checked_finite"] = True
    assert validate(d) is d
