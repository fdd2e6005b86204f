"""APCER / BPCER / ACER on hand-counted examples, and the evaluation hook that reports them per subset."""
import math

import numpy as np
import pytest

from helpers import quick_fit, toy_dataset
from mmbench.metrics import anti_spoofing_metrics


def test_rates_on_a_hand_example():
    # 4 attacks (label 0): 1 accepted as live -> APCER 1/4; 5 live (label 1): 2 rejected -> BPCER 2/5.
    true = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1])
    pred = np.array([0, 1, 0, 0, 1, 0, 1, 0, 1])
    out = anti_spoofing_metrics(pred, true)
    assert out["apcer"] == pytest.approx(0.25)
    assert out["bpcer"] == pytest.approx(0.4)
    assert out["acer"] == pytest.approx(0.325)


def test_live_class_other_than_one_and_several_attack_classes():
    # Live is class 0; classes 1 and 2 are two attack types (print, replay): both count as attacks.
    true = np.array([0, 0, 1, 2, 2])
    pred = np.array([0, 1, 0, 2, 0])
    out = anti_spoofing_metrics(pred, true, live_class=0)
    assert out["apcer"] == pytest.approx(2 / 3)
    assert out["bpcer"] == pytest.approx(0.5)


def test_a_rate_without_samples_is_nan_not_zero():
    out = anti_spoofing_metrics(np.array([1, 1]), np.array([1, 1]))
    assert math.isnan(out["apcer"]) and out["bpcer"] == 0.0 and math.isnan(out["acer"])


def test_mismatched_lengths_are_an_error():
    with pytest.raises(ValueError, match="pred has 2 entries but true has 3"):
        anti_spoofing_metrics(np.zeros(2), np.zeros(3))


def test_a_data_set_that_declares_anti_spoofing_gets_the_rates_for_every_subset():
    data = toy_dataset(n=200, num_classes=2)
    data.meta["extra_metrics"] = "anti_spoofing"
    metrics = quick_fit("joint", data, epochs=1)["metrics"]
    rates = metrics["extra"]["anti_spoofing"]
    assert set(rates) == set(metrics["subset_acc"])  # one entry per modality combination
    for values in rates.values():
        assert set(values) == {"apcer", "bpcer", "acer"}
        assert values["acer"] == pytest.approx((values["apcer"] + values["bpcer"]) / 2)
    # On two classes the error rates and the accuracy describe the same decisions: with class 1 live,
    # 1 - acc = (APCER * n_attack + BPCER * n_live) / n.
    y = data.labels[data.split["test"]]
    full = rates[metrics["full_subset"]]
    errors = full["apcer"] * np.sum(y == 0) + full["bpcer"] * np.sum(y == 1)
    assert 1 - metrics["test_acc"] == pytest.approx(errors / len(y))


def test_a_data_set_without_extra_metrics_reports_none():
    assert "extra" not in quick_fit("joint", toy_dataset(n=200, num_classes=2), epochs=1)["metrics"]


def test_an_unknown_extra_metric_names_the_known_ones():
    data = toy_dataset(n=200, num_classes=2)
    data.meta["extra_metrics"] = "eer"
    with pytest.raises(ValueError, match="unknown extra_metrics 'eer' .*anti_spoofing"):
        quick_fit("joint", data, epochs=1)
