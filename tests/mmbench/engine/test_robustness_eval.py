"""Every run is also tested at the robustness missing rates, on masks shared by all methods."""
import numpy as np
import torch

from mmbench.engine.evaluate import evaluate_logits, evaluate_missing_rates, predict_split
from mmbench.batching import SplitTensors
from mmbench.patterns import ROBUSTNESS_RATES, robustness_test_mask

from helpers import make_method, toy_dataset


def test_mask_depends_on_dataset_seed_and_rate_only():
    mods = ("a", "b", "c")
    m1 = robustness_test_mask(200, mods, 0.3, "toy", 1)
    assert np.array_equal(m1, robustness_test_mask(200, mods, 0.3, "toy", 1))
    assert not np.array_equal(m1, robustness_test_mask(200, mods, 0.3, "toy", 2))
    # exactly round(eta N) samples incomplete, none with every modality gone
    assert int((m1.sum(1) < 3).sum()) == 60 and m1.sum(1).min() >= 1


def test_each_rate_scored_with_its_mask():
    data = toy_dataset(n=200)
    method = make_method("joint", data)
    te = SplitTensors(data, "test")
    got = evaluate_missing_rates(method, te, data.num_classes, 64, data.name, 0, ROBUSTNESS_RATES)
    assert list(got) == ["0.1", "0.3", "0.5", "0.7"]
    for eta in ROBUSTNESS_RATES:
        mask = torch.from_numpy(robustness_test_mask(len(te), te.modalities, eta, data.name, 0))
        want = evaluate_logits(predict_split(method, te, 64, mask), te.labels, data.num_classes)["acc"]
        assert got[f"{eta:g}"] == want
