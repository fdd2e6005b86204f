import numpy as np
import pytest
import torch

from mmbench.batching import all_subsets
from mmbench.patterns import MaskStore, draw_rate_mask, get_pattern
from mmbench.registry import UnknownNameError


def test_named_and_parsed_patterns():
    assert get_pattern("complete").train == "complete"
    p = get_pattern("missing-0.3-0.7")
    assert (p.train, p.eta_train, p.eta_test, p.missing_type) == ("rate", 0.3, 0.7, "mixed")
    q = get_pattern("missing-0.5-pix")
    assert (q.eta_train, q.eta_test, q.missing_type) == (0.5, 0.5, "pix")
    with pytest.raises(UnknownNameError, match="unknown pattern"):
        get_pattern("missng-0.5")
    with pytest.raises(ValueError, match="missing rates"):
        get_pattern("missing-1.5")


def test_pattern_rejects_unknown_modality():
    with pytest.raises(ValueError, match="does not have"):
        get_pattern("missing-0.5-depth").check_modalities(["rgb", "ir"])


def test_rate_mask_exact_rate_never_empty_and_reproducible():
    mask = draw_rate_mask(1000, ["a", "b", "c"], 0.4, "mixed", seed=3)
    assert mask.shape == (1000, 3)
    incomplete = (mask.sum(1) < 3).sum()
    assert incomplete == 400
    assert (mask.sum(1) >= 1).all()  # no sample loses everything
    assert np.array_equal(mask, draw_rate_mask(1000, ["a", "b", "c"], 0.4, "mixed", seed=3))
    assert not np.array_equal(mask, draw_rate_mask(1000, ["a", "b", "c"], 0.4, "mixed", seed=4))
    # every incomplete non-empty proper subset shows up
    codes = {tuple(r) for r in mask[mask.sum(1) < 3]}
    assert len(codes) == 2**3 - 2


def test_single_modality_type_drops_only_that_modality():
    mask = draw_rate_mask(200, ["a", "b"], 0.5, "b", seed=0)
    assert (mask[:, 0] == 1).all() and (mask[:, 1] == 0).sum() == 100


def test_dropout_masks_cover_all_subsets_and_depend_on_epoch():
    p = get_pattern("dropout")
    m0 = p.epoch_train_mask(None, 700, 3, seed=0, epoch=0)
    m1 = p.epoch_train_mask(None, 700, 3, seed=0, epoch=1)
    assert torch.equal(m0, p.epoch_train_mask(None, 700, 3, seed=0, epoch=0))
    assert not torch.equal(m0, m1)
    assert (m0.sum(1) >= 1).all()
    assert len({tuple(r.tolist()) for r in m0}) == len(all_subsets("abc"))


def test_mask_store_persists_and_reuses(tmp_path):
    store = MaskStore(tmp_path)
    p = get_pattern("missing-0.5")
    train, test = store.masks("toy", p, ["a", "b"], 50, 20, seed=1)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1
    # a second call (another method, same seed) reads the same masks back
    train2, test2 = MaskStore(tmp_path).masks("toy", p, ["a", "b"], 50, 20, seed=1)
    assert torch.equal(train, train2) and torch.equal(test, test2)
    with pytest.raises(ValueError, match="do not match"):
        store.masks("toy", p, ["a", "b"], 51, 20, seed=1)
    assert store.masks("toy", get_pattern("complete"), ["a", "b"], 50, 20, seed=1) == (None, None)
