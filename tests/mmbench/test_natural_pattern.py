"""The ``natural`` pattern: the data's own presence mask at train and test, nothing drawn."""
import numpy as np
import pytest
import torch

from mmbench.config import RunSpec
from mmbench.data import load_dataset
from mmbench.patterns import MaskStore, get_pattern, natural_masks
from mmbench.runner import Runner


def test_natural_masks_are_the_data_rows_of_its_presence(tmp_path):
    d = load_dataset("yeast-cc")
    pattern = get_pattern("natural")
    assert pattern.has_test_mask
    train, test = MaskStore(tmp_path).masks("yeast-cc", pattern, d.modalities, len(d.split["train"]),
                                             len(d.split["test"]), seed=3, natural=natural_masks(d))
    assert np.array_equal(train.numpy(), d.presence[d.split["train"]])
    assert np.array_equal(test.numpy(), d.presence[d.split["test"]])
    assert not any(tmp_path.iterdir())  # the data fixes them: nothing persisted
    for epoch in (0, 5):  # the same mask every epoch, whatever the seed
        assert torch.equal(pattern.epoch_train_mask(train, len(train), 4, seed=9, epoch=epoch), train)


def test_natural_on_data_without_gaps_is_an_error_naming_it(tmp_path):
    d = load_dataset("spam")
    assert natural_masks(d) is None
    with pytest.raises(ValueError, match="'spam' declares none"):
        MaskStore(tmp_path).masks("spam", get_pattern("natural"), d.modalities, 1, 1, 0, natural=None)


def test_a_natural_run_tests_on_the_natural_test_mask(tmp_path):
    res = Runner(str(tmp_path)).run(RunSpec("joint", "yeast-cc", "natural", 0, {"epochs": 2}))
    assert res["status"] == "ok", res.get("error")
    assert "masked_test_acc" in res["metrics"]
