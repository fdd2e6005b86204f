"""standardize(): train-only statistics, per feature / per channel, input untouched."""
import numpy as np

from mmbench.data import ModalitySpec, MultimodalDataset, standardize
from mmbench.data.splits import random_split


def toy(n=200):
    rng = np.random.default_rng(0)
    v = rng.normal(3.0, 2.0, size=(n, 4)).astype(np.float32)
    v[:, 2] = 5.0  # constant feature
    s = (rng.normal(size=(n, 2, 9)) * [[4.0], [0.5]] + [[10.0], [-1.0]]).astype(np.float32)
    i = rng.normal(7.0, 3.0, size=(n, 3, 4, 4)).astype(np.float32)
    specs = [ModalitySpec("v", "vector", (4,)), ModalitySpec("s", "series", (2, 9)),
             ModalitySpec("i", "image", (3, 4, 4))]
    labels = (np.arange(n) % 2).astype(np.int64)
    return MultimodalDataset("toy", specs, {"v": v, "s": s, "i": i}, labels, 2, random_split(n))


def test_train_statistics_per_feature_and_channel():
    d = toy()
    before = {k: v.copy() for k, v in d.arrays.items()}
    z = standardize(d)
    tr = d.split["train"]
    v = z.arrays["v"][tr]
    np.testing.assert_allclose(v.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(v.std(0)[[0, 1, 3]], 1, atol=1e-4)
    assert np.all(z.arrays["v"][:, 2] == 0) and np.isfinite(z.arrays["v"]).all()  # constant: centred, floored std
    np.testing.assert_allclose(z.arrays["s"][tr].mean(axis=(0, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(z.arrays["s"][tr].std(axis=(0, 2)), 1, atol=1e-4)
    np.testing.assert_allclose(z.arrays["i"][tr].std(axis=(0, 2, 3)), 1, atol=1e-4)
    assert all(z.arrays[k].dtype == np.float32 for k in z.arrays)
    for k in before:  # the input is not modified
        np.testing.assert_array_equal(d.arrays[k], before[k])


def test_val_and_test_use_the_train_statistics():
    d = toy()
    z = standardize(d)
    tr, te = d.split["train"], d.split["test"]
    x = d.arrays["s"].astype(np.float64)
    mean, std = x[tr].mean(axis=(0, 2), keepdims=True), x[tr].std(axis=(0, 2), keepdims=True)
    np.testing.assert_allclose(z.arrays["s"][te], ((x - mean) / std)[te], rtol=1e-5, atol=1e-5)
    # test statistics must not leak: shifting the test samples does not change the train output
    d.arrays["s"][te] += 100.0
    np.testing.assert_array_equal(standardize(d).arrays["s"][tr], z.arrays["s"][tr])
    m, s = z.meta["standardize"]["s"]
    assert m.shape == (2, 1) and s.shape == (2, 1)


def test_a_memory_mapped_modality_is_standardised_in_chunks(tmp_path, monkeypatch):
    """Data sets from disk (CREMA-D frames: 4.5 GB) must not be copied whole to float64: the peak
    allocation stays near the float32 output, not 4x it as a whole-array float64 pass needs."""
    import tracemalloc

    import sys

    module = sys.modules["mmbench.data.standardize"]  # the package re-exports the function under this name

    n, shape = 400, (3, 32, 32)
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=(n, *shape))
    x[:] = np.random.default_rng(0).normal(5.0, 2.0, size=x.shape)
    x.flush()
    x = np.load(tmp_path / "x.npy", mmap_mode="r")
    d = MultimodalDataset("mm", [ModalitySpec("i", "image", shape)], {"i": x}, np.zeros(n, np.int64), 1,
                          random_split(n))
    monkeypatch.setattr(module, "CHUNK_BYTES", 16 * 8 * int(np.prod(shape)), raising=False)  # 16 rows
    tracemalloc.start()
    z = standardize(d)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * x.nbytes
    ref = np.asarray(x, dtype=np.float64)[d.split["train"]]
    mean, std = ref.mean(axis=(0, 2, 3), keepdims=True), ref.std(axis=(0, 2, 3), keepdims=True)
    np.testing.assert_allclose(z.arrays["i"], (np.asarray(x) - mean) / std, rtol=1e-5, atol=1e-5)


def test_prepared_statistics_are_stored_beside_the_cache_and_reused(tmp_path, monkeypatch):
    """A prepared data set's statistics (two passes over GBs) are computed once per cache and split."""
    import sys

    module = sys.modules["mmbench.data.standardize"]
    d = toy()
    d.meta.update(cache=str(tmp_path), fingerprint="abc-123")
    first = standardize(d)
    stored = list((tmp_path / "standardize").glob("*.json"))
    assert len(stored) == 1

    def no_recompute(*_):
        raise AssertionError("statistics recomputed although stored")

    monkeypatch.setattr(module, "_train_stats", no_recompute)
    again = standardize(d, lazy=True)
    for m in d.arrays:  # the stored floats round-trip exactly: bit-identical standardised values
        np.testing.assert_array_equal(again.arrays[m][:], first.arrays[m])
    monkeypatch.undo()
    other_split = random_split(len(d.labels), seed=1)
    standardize(type(d)(d.name, d.specs, d.arrays, d.labels, 2, other_split, meta=dict(d.meta)))
    d.meta["fingerprint"] = "abc-456"  # another cache content
    standardize(d)
    assert len(list((tmp_path / "standardize").glob("*.json"))) == 3  # a new split or cache: a new file


def test_data_sets_without_a_prepared_cache_store_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    standardize(toy())
    assert not any(tmp_path.rglob("*.json"))
