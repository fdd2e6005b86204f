"""mfeat: sizes, views, pix orientation, stratified seeded split."""
import numpy as np
import pytest

from mmbench.data import load_dataset
from mmbench.data.mfeat import VIEW_DIMS

PRESETS = {"mfeat-pix-mor": ["pix", "mor"], "mfeat-fou-zer": ["fou", "zer"],
           "mfeat-fou-zer-mor": ["fou", "zer", "mor"], "mfeat-fac-kar": ["fac", "kar"]}


def test_all_views_sizes_and_labels():
    d = load_dataset("mfeat")
    assert len(d) == 2000 and d.num_classes == 10 and d.modalities == list(VIEW_DIMS)
    for spec in d.specs:
        x = d.arrays[spec.name]
        assert x.dtype == np.float32
        if spec.name == "pix":
            assert spec.kind == "image" and x.shape == (2000, 1, 16, 15)
        else:
            assert spec.kind == "vector" and x.shape == (2000, VIEW_DIMS[spec.name])
    assert np.array_equal(np.bincount(d.labels), [200] * 10)


@pytest.mark.parametrize("name, views", PRESETS.items())
def test_presets(name, views):
    d = load_dataset(name)
    assert d.modalities == views and d.name == name


def test_views_option_and_unknown_view():
    d = load_dataset("mfeat", views="fou,pix")
    assert d.modalities == ["fou", "pix"]
    assert load_dataset("mfeat", views=["pix"], pix_kind="vector").arrays["pix"].shape == (2000, 240)
    with pytest.raises(ValueError, match="unknown mfeat view 'pxl'"):
        load_dataset("mfeat", views="fou,pxl")


def test_pix_is_upright():
    """pix values are integers 0..6, and the mean '1' is a vertical stroke: its ink is spread along
    the rows and concentrated in a few columns (a transposed image would show the opposite)."""
    d = load_dataset("mfeat-pix-mor")
    pix = d.arrays["pix"][:, 0]
    assert pix.min() == 0 and pix.max() == 6 and np.array_equal(pix, np.round(pix))
    one = pix[d.labels == 1].mean(axis=0)  # [16 rows, 15 cols]
    by_row, by_col = one.mean(axis=1), one.mean(axis=0)
    assert by_col.std() > 2 * by_row.std()


def test_split_is_stratified_and_seeded():
    d = load_dataset("mfeat-fou-zer")
    for part, per_class in (("train", 120), ("val", 40), ("test", 40)):
        assert np.array_equal(np.bincount(d.labels[d.split[part]], minlength=10), [per_class] * 10)
    again = load_dataset("mfeat-pix-mor")  # other preset, same seed: same split
    assert all(np.array_equal(d.split[k], again.split[k]) for k in d.split)
    other = load_dataset("mfeat-fou-zer", split_seed=1)
    assert not np.array_equal(d.split["test"], other.split["test"])
    idx = np.concatenate([d.split[k] for k in d.split])
    assert np.array_equal(np.sort(idx), np.arange(2000))
