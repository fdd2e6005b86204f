"""MSLR / MSES: multipliers follow acc_now / mean(recent accs) on the validation unimodal probes,
they set the learning rate of the right encoder group and compose with the scheduler, MSES zeroes
a stalled modality."""
import math

import numpy as np
import pytest
import torch

from baselines.mslr import mslr_ratio, mslr_update
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer, build_scheduler


def setup(data, hp=None, epochs=4):
    method = make_method("mslr", data, epochs=epochs, hp=hp)
    cfg = {**TRAIN_DEFAULTS, "epochs": epochs}
    opt = build_optimizer(method, cfg)
    sched = build_scheduler(opt, cfg)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0))
    return method, ctx, opt, sched


def test_update_rule_hand_example():
    assert mslr_ratio(0.6, [], 3) == 1.0  # no history yet
    assert math.isclose(mslr_ratio(0.6, [0.5], 3), 0.6 / 0.5)
    # window 2: mean of the last two (0.4, 0.8) = 0.6
    assert math.isclose(mslr_ratio(0.3, [0.1, 0.4, 0.8], 2), 0.3 / 0.6)
    assert mslr_ratio(0.5, [0.0], 3) == 1.0  # zero reference: unchanged
    # default: the ratio rescales the initial multiplier; cumulative: the current one
    assert math.isclose(mslr_update(2.0, 0.9, 0.6, [0.5], 3), 0.9 * 1.2)
    assert math.isclose(mslr_update(2.0, 0.9, 0.6, [0.5], 3, cumulative=True), 2.0 * 1.2)


def test_method_multipliers_follow_val_accuracy_ratios():
    data = toy_dataset()
    method, ctx, opt, sched = setup(data, hp={"init_mult": [0.9, 1.1], "window": 2})
    method.update_multipliers([0.5, 0.4], [1.0, 1.0], 4)
    assert method.mult == [0.9, 1.1]
    method.update_multipliers([0.6, 0.2], [1.0, 1.0], 4)
    assert np.allclose(method.mult, [0.9 * 0.6 / 0.5, 1.1 * 0.2 / 0.4])
    method.update_multipliers([0.7, 0.3], [1.0, 1.0], 4)
    assert np.allclose(method.mult, [0.9 * 0.7 / 0.55, 1.1 * 0.3 / 0.3])
    cum, *_ = setup(data, hp={"init_mult": [0.9, 1.1], "window": 2, "cumulative": True})
    for accs in ([0.5, 0.4], [0.6, 0.2], [0.7, 0.3]):
        cum.update_multipliers(accs, [1.0, 1.0], 4)
    assert np.allclose(cum.mult, [0.9 * 0.6 / 0.5 * 0.7 / 0.55, 1.1 * 0.2 / 0.4 * 0.3 / 0.3])


def test_on_epoch_end_uses_validation_unimodal_accuracies():
    data = toy_dataset()
    method, ctx, opt, sched = setup(data, hp={"window": 1})
    from mmbench.engine.evaluate import evaluate_logits, unimodal_split

    method.on_epoch_end(ctx)
    with torch.no_grad():
        uni = unimodal_split(method, ctx.val, 512)
    accs = [evaluate_logits(z, ctx.val.labels, data.num_classes)["acc"] for z in uni]
    assert [h[-1] for h in method.acc_history] == accs
    assert method.modules().training  # restored to train mode


def test_multipliers_act_on_the_right_group_and_compose_with_cosine():
    data = toy_dataset()
    method, ctx, opt, sched = setup(data, hp={"init_mult": [0.5, 2.0]}, epochs=4)
    groups = method.param_groups()
    assert len(groups) == 3 and len(opt.param_groups) == 3
    ids = [{id(p) for p in g["params"]} for g in opt.param_groups]
    assert ids[0] == {id(p) for p in method.model.encoders["a"].parameters()}
    assert ids[1] == {id(p) for p in method.model.encoders["b"].parameters()}
    assert {id(p) for p in method.model.head.parameters()} <= ids[2]
    base = TRAIN_DEFAULTS["lr"]
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5 * base, 2.0 * base, base])
    # one epoch later: new multipliers, cosine-scheduled base
    method.mult = [0.25, 0.0]
    opt.step()
    sched.step()
    method.on_epoch_start(ctx)
    cos = base * (1 + math.cos(math.pi * 1 / 4)) / 2
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.25 * cos, 0.0, cos])
    # a zero multiplier is recovered from when it changes again (no sticky recursive 0)
    method.mult = [1.0, 1.0]
    opt.step()
    sched.step()
    method.on_epoch_start(ctx)
    cos2 = base * (1 + math.cos(math.pi * 2 / 4)) / 2
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([cos2, cos2, cos2])


def test_mses_zeroes_a_stalled_modality():
    data = toy_dataset()
    method, ctx, opt, sched = setup(data, hp={"early_stop": True, "patience": 2})
    method.update_multipliers([0.5, 0.5], [1.0, 1.0], 20)
    method.update_multipliers([0.5, 0.5], [0.9, 1.1], 20)  # b: no improvement (1)
    assert method.mult[1] > 0
    method.update_multipliers([0.5, 0.5], [0.8, 1.0], 20)  # b: no improvement (2) -> stopped
    assert method.mult[1] == 0.0 and method.mult[0] > 0
    method.update_multipliers([0.5, 0.9], [0.7, 0.1], 20)  # stays stopped
    assert method.mult[1] == 0.0
    assert method.patience_epochs(20) == 2
    method.hp["patience"] = 0.25
    assert method.patience_epochs(20) == 5


@pytest.mark.parametrize("three, pattern, hp", [(False, "complete", {}), (True, "complete", {"early_stop": True}), (False, "dropout", {})])
def test_end_to_end(three, pattern, hp):
    out = quick_fit("mslr", toy_dataset(three=three), epochs=2, pattern=pattern, hp=hp)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert len(out["method"].mult_history) == 2


def test_mses_traces_the_stop_decision_with_the_zero_multiplier():
    method, ctx, opt, sched = setup(toy_dataset(), hp={"early_stop": True, "patience": 2})
    traces = []
    for losses in ([1.0, 1.0], [0.9, 1.1], [0.8, 1.0], [0.7, 0.1]):  # b stalls twice, then stays stopped
        method.update_multipliers([0.5, 0.5], losses, 20)
        traces.append(method.pop_coefficients())
    assert [t["stopped:b"] for t in traces] == [0, 0, 1, 1] and all(t["stopped:a"] == 0 for t in traces)
    assert [t["lr_mult:b"] == 0 for t in traces] == [False, False, True, True]
    # MSLR alone (no early stopping) has no stop decision to trace
    plain, *_ = setup(toy_dataset())
    plain.update_multipliers([0.5, 0.5], [1.0, 1.0], 20)
    assert set(plain.pop_coefficients()) == {"lr_mult:a", "lr_mult:b"}


def test_two_epoch_mses_run_records_the_stop_series():
    history = quick_fit("mslr", toy_dataset(), epochs=2, hp={"early_stop": True})["history"]
    for h in history:
        c = h["coefficients"]
        assert set(c) == {"lr_mult:a", "lr_mult:b", "stopped:a", "stopped:b"}
        assert all(c[f"stopped:{m}"] in (0.0, 1.0) for m in "ab")
        assert all(c[f"lr_mult:{m}"] == 0 for m in "ab" if c[f"stopped:{m}"] == 1)
