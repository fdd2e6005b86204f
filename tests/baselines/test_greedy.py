"""Greedy: the learning-speed formula, BDR and the switch to re-balancing when |d| > eps, the
running-average excitation during re-balancing steps (no cross-modal dependence), the random
variant, and end-to-end runs."""
import math

import numpy as np
import pytest
import torch

from baselines.greedy import bdr, learning_speed, schedule_update
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer


def setup(data, hp=None, epochs=10):
    method = make_method("greedy", data, epochs=epochs, hp=hp)
    ctx = TrainContext(method, method.info, build_optimizer(method, TRAIN_DEFAULTS), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0))
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    return method, ctx


def test_learning_speed_hand_example():
    a = torch.nn.Parameter(torch.tensor([3.0, 4.0]))  # ||a||^2 = 25
    b = torch.nn.Parameter(torch.tensor([[1.0, 1.0], [1.0, 1.0]]))  # ||b||^2 = 4
    c = torch.nn.Parameter(torch.tensor([1.0]))  # no grad: skipped
    a.grad = torch.tensor([0.0, 1.0])  # ||g||^2 = 1
    b.grad = torch.tensor([[1.0, 0.0], [0.0, 1.0]])  # ||g||^2 = 2
    assert math.isclose(learning_speed([a, b, c]).item(), 1 / 25 + 2 / 4, rel_tol=1e-6)
    got = bdr(torch.tensor([0.5, 2.0]), torch.tensor([5.0, 2.0]))
    torch.testing.assert_close(got, torch.tensor([1.0, 0.0]))  # log10(5/0.5), log10(2/2)


def test_schedule_switches_to_rebalancing_when_d_exceeds_eps():
    zero = torch.zeros((), dtype=torch.long)
    main, byp = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.05])  # BDR = (0, 0.0212) -> d = -0.0212
    rem, car = schedule_update(zero, zero, main, byp, eps=0.01, q=5, active=True)
    assert rem.item() == 5 and car.item() == 1  # d < 0 -> modality 1
    rem, car = schedule_update(zero, zero, main, byp.flip(0), eps=0.01, q=5, active=True)
    assert rem.item() == 5 and car.item() == 0  # BDR = (0.0212, 0): d > 0 -> modality 0
    # |d| below eps, or before the start epoch: stay in normal steps
    rem, _ = schedule_update(zero, zero, main, byp, eps=0.05, q=5, active=True)
    assert rem.item() == 0
    rem, _ = schedule_update(zero, zero, main, byp, eps=0.01, q=5, active=False)
    assert rem.item() == 0
    # inside a window: count down, keep the caring modality whatever d says now
    rem, car = schedule_update(torch.tensor(3), torch.tensor(1), main, byp.flip(0), eps=0.01, q=5, active=True)
    assert rem.item() == 2 and car.item() == 1


def test_method_triggers_q_rebalancing_steps():
    data = toy_dataset()
    method, ctx = setup(data, hp={"eps": 0.0, "q": 3, "start": 0})
    batches = list(SplitTensors(data, "train").iterate(32))
    method.training_step(batches[0], ctx)  # normal step; eps=0 -> any d triggers
    b = bdr(method.m_main, method.m_bypass)
    assert method.remaining.item() == 3 and method.caring.item() == int(b.argmax())
    main_before = method.m_main.clone()
    for i in range(3):
        method.training_step(batches[1 + i], ctx)
    assert method.rebalance_steps.item() == 3 and method.remaining.item() in (0, 3)
    torch.testing.assert_close(method.m_main, main_before)  # speeds accumulate on normal steps only
    # the accumulated speeds are the per-tensor ratios of the first step's gradients
    method2, ctx2 = setup(data, hp={"start": 0})
    method2.training_step(batches[0], ctx2)
    assert torch.all(method2.m_main > 0) and torch.all(method2.m_bypass > 0)


def test_no_rebalancing_before_start_epoch():
    data = toy_dataset()
    method, ctx = setup(data, hp={"eps": 0.0, "start": 0.5}, epochs=10)
    for batch in list(SplitTensors(data, "train").iterate(32))[:3]:
        method.training_step(batch, ctx)
    assert method.remaining.item() == 0 and method.rebalance_steps.item() == 0


def test_rebalancing_gate_is_running_average_and_ignores_other_modalities():
    data = toy_dataset(three=True)
    method, ctx = setup(data)
    method.gate_avg = torch.rand(3, method.model.feature_dim) + 0.5
    batch = next(SplitTensors(data, "train").iterate(16))
    feats = [f.detach() for f in method.model.encode(batch)]
    use_avg = torch.tensor([False, True, False])
    out, gates = method.excited(feats, use_avg)
    torch.testing.assert_close(gates[1], method.gate_avg[1].expand(16, -1))
    torch.testing.assert_close(out[1], feats[1] * method.gate_avg[1])
    # perturbing the other modalities changes their gates but not the caring modality's
    other = [feats[0] + 1.0, feats[1], feats[2] * 3.0]
    out2, gates2 = method.excited(other, use_avg)
    torch.testing.assert_close(out2[1], out[1])
    assert not torch.allclose(gates2[0], gates[0])
    # gradient of the caring modality's output w.r.t. the other features is zero
    f0 = feats[0].clone().requires_grad_(True)
    o, _ = method.excited([f0, feats[1], feats[2]], use_avg)
    g = torch.autograd.grad(o[1].sum() + 0 * o[0].sum(), f0)[0]
    assert torch.all(g == 0)
    # without re-balancing the gate does depend on the other modalities (the bypass)
    _, g_normal = method.excited(feats)
    _, g_normal2 = method.excited(other)
    assert not torch.allclose(g_normal[1], g_normal2[1])


def test_running_average_tracks_normal_step_gates():
    data = toy_dataset()
    method, ctx = setup(data, hp={"avg_momentum": 0.0, "start": 1.0})
    batch = next(SplitTensors(data, "train").iterate(32))
    with torch.no_grad():
        _, gates = method.excited(method.model.encode(batch))
        expect = torch.stack([g.mean(0) for g in gates])
    method.training_step(batch, ctx)  # momentum 0: the average becomes this step's batch mean
    torch.testing.assert_close(method.gate_avg, expect)


def test_random_variant_uses_the_generator():
    data = toy_dataset()
    method, ctx = setup(data, hp={"random": True, "start": 0, "q": 1})
    for batch in list(SplitTensors(data, "train").iterate(32)):
        method.training_step(batch, ctx)
    assert 0 < method.rebalance_steps.item() < 5


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("greedy", toy_dataset(three=three), epochs=2, pattern=pattern, hp={"start": 0})
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])


# ----------------------------------------------------------------- coefficient traces
def test_two_epoch_run_traces_rebalancing_share_and_bdr():
    """eps = 0 triggers after every normal step, so with q = 3 and 5 steps per epoch the schedule is
    N R R R N | R R R N R: re-balancing shares 3/5 then 4/5, summed over the caring modalities."""
    out = quick_fit("greedy", toy_dataset(), epochs=2, hp={"eps": 0.0, "q": 3, "start": 0})
    traces = [h["coefficients"] for h in out["history"]]
    for c, share in zip(traces, (0.6, 0.8)):
        assert set(c) == {"rebalanced:a", "rebalanced:b", "bdr:a", "bdr:b"}
        assert 0 <= c["rebalanced:a"] <= 1 and 0 <= c["rebalanced:b"] <= 1
        assert c["rebalanced:a"] + c["rebalanced:b"] == pytest.approx(share)
        assert np.isfinite(c["bdr:a"]) and np.isfinite(c["bdr:b"]) and c["bdr:a"] != c["bdr:b"]
    assert out["method"].rebalance_steps.item() == 7
    # before the start epoch nothing is re-balanced
    late = quick_fit("greedy", toy_dataset(), epochs=2, hp={"eps": 0.0, "q": 3, "start": 1})["history"][0]
    assert late["coefficients"]["rebalanced:a"] == 0 and late["coefficients"]["rebalanced:b"] == 0
