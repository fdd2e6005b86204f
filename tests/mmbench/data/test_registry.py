"""The data-set registry: listing, unknown names, caching, the generic modalities option."""
import numpy as np
import pytest

from mmbench.data import (
    DatasetError,
    ModalitySpec,
    MultimodalDataset,
    UnknownDatasetError,
    dataset_info,
    list_datasets,
    load_dataset,
    register_dataset,
)
from mmbench.data.splits import random_split

BUILTIN = ["avmnist", "mfeat", "mfeat-fac-kar", "mfeat-fou-zer", "mfeat-fou-zer-mor", "mfeat-pix-mor",
           "synthetic", "synthetic-3", "synthetic-av-paper", "watch"]


def test_builtins_are_listed_with_wildcards():
    assert set(BUILTIN) <= set(list_datasets())
    assert list_datasets("mfeat-fou-*") == ["mfeat-fou-zer", "mfeat-fou-zer-mor"]
    assert list_datasets("watch,synth*") == ["watch", "synthetic", "synthetic-3", "synthetic-av-paper"]
    assert all(dataset_info(n) for n in BUILTIN)


def test_unknown_name_is_a_key_error_with_suggestions():
    with pytest.raises(KeyError) as err:
        load_dataset("mfeat-pix-mro")
    msg = str(err.value)
    assert isinstance(err.value, UnknownDatasetError)
    assert "'mfeat-pix-mro'" in msg and "Did you mean mfeat-pix-mor" in msg and "watch" in msg
    with pytest.raises(UnknownDatasetError):
        list_datasets("wach")
    with pytest.raises(UnknownDatasetError):
        dataset_info("nope")


def test_loads_are_cached_per_name_and_options():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a is b
    c = load_dataset("synthetic", split_seed=1)
    assert c is not a and c is load_dataset("synthetic", split_seed=1)
    assert load_dataset("synthetic", snr=[1.0, 1.0]) is load_dataset("synthetic", snr=(1.0, 1.0))


def test_modalities_option_selects_and_names_unknown_ones():
    d = load_dataset("watch", modalities="gyro")
    assert d.modalities == ["gyro"] and d.arrays["gyro"].shape == (3605, 3, 128)
    assert load_dataset("mfeat-fou-zer-mor", modalities=["mor", "fou"]).modalities == ["mor", "fou"]
    with pytest.raises(ValueError, match="'acc'.*accel, gyro"):
        load_dataset("watch", modalities="acc,gyro")


def _toy(n=30, **change):
    rng = np.random.default_rng(0)
    y = np.arange(n) % 3
    d = MultimodalDataset("toy-bad", [ModalitySpec("a", "vector", (4,))],
                          {"a": rng.normal(size=(n, 4)).astype(np.float32)},
                          y.astype(np.int64), 3, random_split(n))
    for k, v in change.items():
        setattr(d, k, v)
    return d


def test_every_load_is_validated():
    bad = _toy()
    bad.arrays["a"] = bad.arrays["a"][:-2]
    register_dataset("test-registry-bad", lambda: bad, overwrite=True)
    with pytest.raises(DatasetError, match="'a' has 28 samples but the labels have 30"):
        load_dataset("test-registry-bad")


def test_double_registration_needs_overwrite():
    register_dataset("test-registry-twice", lambda: _toy(), overwrite=True)
    first = load_dataset("test-registry-twice")
    with pytest.raises(ValueError, match="already registered"):
        register_dataset("test-registry-twice", lambda: _toy())
    register_dataset("test-registry-twice", lambda: _toy(n=60), overwrite=True)
    assert len(load_dataset("test-registry-twice")) == 60 and len(first) == 30  # stale cache dropped


def test_independence_groups_default_to_the_name_and_mfeat_presets_share_one():
    from mmbench.data.registry import dataset_group

    assert dataset_group("watch") == "watch"
    assert dataset_group("mfeat-pix-mor") == dataset_group("mfeat-fou-zer-mor") == "mfeat"
    assert dataset_group("not-registered-here") == "not-registered-here"
