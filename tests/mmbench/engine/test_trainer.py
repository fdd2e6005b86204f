import math
import time

import pytest
import torch
import torch.nn.functional as F

import mmbench.engine.trainer as trainer
from helpers import quick_fit, run_info, toy_dataset
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import DivergedError
from mmbench.engine.trainer import build_method, fit_and_test
from mmbench.methods.base import Method
from mmbench.patterns import get_pattern


def test_same_seed_same_numbers():
    data = toy_dataset()
    a = quick_fit("joint", data, epochs=2, seed=3)
    b = quick_fit("joint", data, epochs=2, seed=3)
    assert a["metrics"] == b["metrics"]
    assert [h["loss"] for h in a["history"]] == [h["loss"] for h in b["history"]]
    c = quick_fit("joint", data, epochs=2, seed=4)
    assert [h["loss"] for h in a["history"]] != [h["loss"] for h in c["history"]]


def test_selection_uses_validation_and_tests_once(monkeypatch):
    data = toy_dataset()
    scores = iter([0.1, 0.9, 0.2])
    snapshots = []
    monkeypatch.setattr(trainer, "_selection_metric", lambda method, val, info, pattern, bs: next(scores))
    real_snapshot = trainer._snapshot
    monkeypatch.setattr(trainer, "_snapshot", lambda m: snapshots.append(real_snapshot(m)) or snapshots[-1])
    calls = []
    real_test = trainer.test_metrics
    monkeypatch.setattr(trainer, "test_metrics", lambda *a, **k: calls.append(a[1]) or real_test(*a, **k))
    out = quick_fit("joint", data, epochs=3)
    assert out["metrics"]["best_epoch"] == 1 and out["metrics"]["val_selection"] == 0.9
    assert len(calls) == 1 and len(calls[0]) == len(data.split["test"])  # the test split, once, all samples
    # the weights kept are those of epoch 1 (the second snapshot), not of the last epoch
    kept = out["method"].modules().state_dict()
    for name, value in snapshots[1]["modules"].items():
        torch.testing.assert_close(kept[name], value)


def test_metrics_present_and_in_range():
    out = quick_fit("joint", toy_dataset(three=True), epochs=2)
    m = out["metrics"]
    assert set(m["subset_acc"]) == {"a+b+c", "a+b", "a+c", "b+c", "a", "b", "c"}
    assert set(m["unimodal_acc"]) == {"a", "b", "c"}
    assert m["subset_worst"] == min(m["subset_acc"].values())
    assert math.isclose(m["subset_mean"], sum(m["subset_acc"].values()) / 7)
    assert 0 <= m["test_acc"] <= 1 and m["test_acc"] == m["subset_acc"]["a+b+c"]
    t = out["throughput"]
    assert t["train_samples_per_s"] > 0 and t["peak_mem_mb"] > 0 and t["mem_kind"] == "autograd_saved_per_step"


class NaNMethod(Method):
    name = "nan-test"

    def compute_loss(self, batch, ctx):
        return F.cross_entropy(self.model(batch), batch.labels) * float("nan")


def test_nan_loss_raises_diverged():
    data = toy_dataset()
    cfg = {**TRAIN_DEFAULTS, "epochs": 2, "batch_size": 32}
    info = run_info(data, 2, 32)
    method = build_method(NaNMethod, data, cfg, {}, info)
    with pytest.raises(DivergedError, match="non-finite"):
        fit_and_test(method, data, get_pattern("complete"), cfg, info)


class SlowEpochEndMethod(Method):
    """Joint training whose between-epoch work takes 50 ms (like PMR's prototypes or MMANet's mining)."""

    name = "slow-epoch-end-test"

    def compute_loss(self, batch, ctx):
        return F.cross_entropy(self.model(batch), batch.labels)

    def on_epoch_end(self, ctx):
        time.sleep(0.05)


def test_throughput_counts_epoch_hooks_in_samples_per_s_not_in_step_time():
    data = toy_dataset()
    cfg = {**TRAIN_DEFAULTS, "epochs": 3, "batch_size": 16}
    info = run_info(data, 3, 16)
    t = fit_and_test(build_method(SlowEpochEndMethod, data, cfg, {}, info), data, get_pattern("complete"), cfg, info)["throughput"]
    assert t["train_seconds"] >= 3 * 0.05
    assert t["step_ms"] < 50 and t["step_ms_mean"] < 50  # the sleeps are not steps
    # at most steps x 16 samples, over a training time that includes the three sleeps:
    assert t["train_samples_per_s"] <= t["steps"] * 16 / (3 * 0.05)
