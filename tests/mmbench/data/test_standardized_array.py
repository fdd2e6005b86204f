"""StandardizedArray / standardize(lazy=True): per-read standardisation of a memory map, equal to the copy."""
import pickle

import numpy as np
import pytest

from mmbench.data import ModalitySpec, MultimodalDataset, standardize
from mmbench.data.splits import random_split
from mmbench.data.standardized_array import StandardizedArray


@pytest.fixture
def mapped(tmp_path):
    """A data set whose two modalities are read-only .npy memory maps (as a prepared cache's)."""
    rng = np.random.default_rng(0)
    n = 60
    arrays = {"audio": rng.normal(4.0, 3.0, size=(n, 1, 6, 5)), "visual": rng.normal(-2.0, 0.5, size=(n, 6, 4, 4))}
    for m, x in arrays.items():
        np.save(tmp_path / f"{m}.npy", x.astype(np.float32))
    specs = [ModalitySpec("audio", "image", (1, 6, 5)), ModalitySpec("visual", "image", (6, 4, 4))]
    mm = {m: np.load(tmp_path / f"{m}.npy", mmap_mode="r") for m in arrays}
    return MultimodalDataset("mapped", specs, mm, (np.arange(n) % 3).astype(np.int64), 3, random_split(n))


def test_lazy_reads_are_bit_identical_to_the_materialised_copy(mapped):
    full, lazy = standardize(mapped), standardize(mapped, lazy=True)
    for m in mapped.arrays:
        view = lazy.arrays[m]
        assert isinstance(view, StandardizedArray) and view.source is mapped.arrays[m]  # the memmap, not a copy
        assert view.shape == full.arrays[m].shape and view.dtype == np.float32
        np.testing.assert_array_equal(view[7], full.arrays[m][7])
        np.testing.assert_array_equal(view[3:11], full.arrays[m][3:11])
        rows = mapped.split["test"]
        np.testing.assert_array_equal(view[rows], full.arrays[m][rows])
        np.testing.assert_array_equal(np.asarray(view), full.arrays[m])
    for m, (mean, std) in full.meta["standardize"].items():
        np.testing.assert_array_equal(lazy.meta["standardize"][m][0], mean)
        np.testing.assert_array_equal(lazy.meta["standardize"][m][1], std)
    train = lazy.arrays["visual"][np.sort(mapped.split["train"])].astype(np.float64)
    np.testing.assert_allclose(train.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(train.std(axis=(0, 2, 3)), 1, atol=1e-4)


def test_pickles_a_memory_map_by_reference(mapped):
    """A DataLoader worker started with spawn gets the file's name, not the array's bytes."""
    view = standardize(mapped, lazy=True).arrays["visual"]
    blob = pickle.dumps(view)
    assert len(blob) < 0.2 * view.nbytes
    back = pickle.loads(blob)
    assert isinstance(back.source, np.memmap)
    np.testing.assert_array_equal(back[5:9], view[5:9])
    in_memory = StandardizedArray(np.ones((4, 2), np.float32), np.zeros((1, 2)), np.ones((1, 2)))
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(in_memory))[1], [1, 1])


def test_index_is_rows_only_and_statistics_keep_a_batch_axis():
    view = StandardizedArray(np.ones((4, 2), np.float32), np.zeros((1, 2)), np.ones((1, 2)))
    with pytest.raises(TypeError, match="indexed by rows only"):
        view[1, 0]
    with pytest.raises(ValueError, match="leading axis of 1"):
        StandardizedArray(np.ones((4, 2), np.float32), np.zeros(2), np.ones(2))
