"""ReconBoost: during a stage only the boosted learner changes (others frozen, no grad), the
per-sample loss -(w1 - w2 softmax(F)_y) log p_y down-weights samples the ensemble fits, the
ensemble is detached, the GA option has a gradient, rectification trains all, predict = ensemble."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from baselines.reconboost import boost_weights, reconboost_loss
from helpers import make_method, quick_fit, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer


def setup(data, hp=None):
    method = make_method("reconboost", data, hp=hp)
    ctx = TrainContext(method, method.info, build_optimizer(method, TRAIN_DEFAULTS), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0))
    return method, ctx


def learner_params(method, m):
    name = method.info.modalities[m]
    return list(method.model.encoders[name].parameters()) + list(method.extra["heads"][m].parameters())


def test_per_sample_loss_hand_example():
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    ens = torch.tensor([[3.0, 0.0], [0.0, 3.0]])  # fits sample 0 (q high), misfits sample 1
    y = torch.tensor([0, 0])
    present = torch.ones(2)
    q0, q1 = 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(3))
    lp0, lp1 = -math.log(1 + math.exp(-2)), -math.log(2)
    ref = (-(5 - q0) * lp0 - (5 - q1) * lp1) / 2
    got = reconboost_loss(logits, ens, y, present, 5.0, 1.0)
    assert math.isclose(got.item(), ref, rel_tol=1e-6)
    # the explicit formula -w1 sum_k y_k log p_k + w2 sum_k y_k softmax(F)_k log p_k
    yk = F.one_hot(y, 2).float()
    explicit = (-5 * (yk * F.log_softmax(logits, 1)).sum(1) + (yk * F.softmax(ens, 1) * F.log_softmax(logits, 1)).sum(1)).mean()
    torch.testing.assert_close(got, explicit)
    # code variant: averaged over k -> divided by C
    assert math.isclose(reconboost_loss(logits, ens, y, present, 5.0, 1.0, "mean").item(), ref / 2, rel_tol=1e-6)
    # a sample fitted by the ensemble gets a smaller weight than one it misfits
    assert (5 - q0) < (5 - q1)
    # missing learner modality: sample excluded
    only0 = reconboost_loss(logits, ens, y, torch.tensor([1.0, 0.0]), 5.0, 1.0)
    assert math.isclose(only0.item(), -(5 - q0) * lp0, rel_tol=1e-6)


def test_ensemble_contribution_is_detached():
    logits = torch.randn(4, 3, requires_grad=True)
    ens = torch.randn(4, 3, requires_grad=True)
    reconboost_loss(logits, ens, torch.tensor([0, 1, 2, 0]), torch.ones(4), 5.0, 1.0).backward()
    assert ens.grad is None and logits.grad is not None


def test_stage_updates_only_the_boosted_learner():
    data = toy_dataset(three=True)
    method, ctx = setup(data, hp={"epochs_per_stage": 0.5, "correct_epochs": 0.25})
    assert method.phase(0) == (1, 0)
    batches = list(SplitTensors(data, "train").iterate(32))
    before = {k: v.clone() for k, v in method.modules().state_dict().items()}
    method.training_step(batches[0], ctx)  # phase 1, modality a
    after = method.modules().state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("model.encoders.a.") or k.startswith("extra.heads.0.") for k in changed)
    for m in (1, 2):
        assert all(p.grad is None for p in learner_params(method, m))
    # the unused fusion head is not optimised
    opt_ids = {id(p) for g in ctx.optimizer.param_groups for p in g["params"]}
    assert not any(id(p) in opt_ids for p in method.model.head.parameters())


def test_schedule_round_robin_with_rectification():
    data = toy_dataset()  # 180 train samples, batch 32 -> 5 steps per epoch
    method, ctx = setup(data, hp={"epochs_per_stage": 0.4, "correct_epochs": 0.2})
    assert (method.stage_steps, method.correct_steps) == (2, 1)
    phases = [method.phase(t) for t in range(7)]
    assert phases == [(1, 0), (1, 0), (2, 0), (1, 1), (1, 1), (2, 1), (1, 0)]


def test_rectification_step_trains_every_learner_on_ensemble_ce():
    data = toy_dataset()
    method, ctx = setup(data, hp={"epochs_per_stage": 0.2, "correct_epochs": 0.2})
    batches = list(SplitTensors(data, "train").iterate(32))
    method.training_step(batches[0], ctx)  # phase 1
    assert method.phase(method.t) == (2, 0)
    loss = method.training_step(batches[1], ctx)
    for m in (0, 1):
        assert all(p.grad is not None for p in learner_params(method, m))
    assert torch.isfinite(loss)


def test_predict_is_ensemble_over_present_modalities():
    data = toy_dataset()
    method, _ = setup(data, hp={"beta": 0.5})
    batch = next(SplitTensors(data, "test").iterate(8))
    with torch.no_grad():
        z = method.all_logits(batch)
        torch.testing.assert_close(method.predict(batch), 0.5 * (z[0] + z[1]))
        torch.testing.assert_close(method.predict(batch.only(["b"])), 0.5 * z[1])


def test_stage_loss_uses_the_others_ensemble_and_code_reduction():
    data = toy_dataset(three=True)
    method, _ = setup(data, hp={"beta": 0.7})
    assert method.hp["reduce_k"] == "mean"  # harness default = official code (see docstring)
    batch = next(SplitTensors(data, "train").iterate(32))
    with torch.no_grad():
        z = method.all_logits(batch)
        ens = 0.7 * (z[0] + z[2])  # stage of modality b: F over the others only
        ref = reconboost_loss(z[1], ens, batch.labels, batch.mask[:, 1], 5.0, 1.0, "mean")
        torch.testing.assert_close(method.stage_loss(batch, 1), ref)


def test_ga_option_has_a_gradient():
    data = toy_dataset()
    batch = next(SplitTensors(data, "train").iterate(32))
    off, _ = setup(data)
    on, _ = setup(data, hp={"ga": True, "ga_alpha": 100.0})
    g_off = torch.autograd.grad(off.stage_loss(batch, 0), off.extra["heads"][0].weight)[0]
    g_on = torch.autograd.grad(on.stage_loss(batch, 0), on.extra["heads"][0].weight)[0]
    assert not torch.allclose(g_off, g_on)


def test_pretrain_copies_unimodal_weights():
    data = toy_dataset()
    teacher = make_method("unimodal", data, seed=5)
    method = make_method("reconboost", data, hp={"pretrain": True})
    ctx = TrainContext(method, method.info, build_optimizer(method, TRAIN_DEFAULTS), SplitTensors(data, "train"),
                       SplitTensors(data, "val"), torch.Generator().manual_seed(0), teacher_fn=lambda n, h: teacher)
    method.on_fit_start(ctx)
    for p, q in zip(method.extra["heads"].parameters(), teacher.extra["heads"].parameters()):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("reconboost", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])


# ----------------------------------------------------------------- coefficient traces
def test_two_epoch_run_traces_stage_shares_and_boost_weights():
    """Toy data: 5 steps per epoch, stages of 2 boosting steps + 1 rectification step, so the schedule is
    a a R b b | R a a R b: shares (stage:a, stage:b, rectify) = (2, 2, 1)/5 then (2, 1, 2)/5."""
    history = quick_fit("reconboost", toy_dataset(), epochs=2)["history"]
    for h, shares in zip(history, ((0.4, 0.4, 0.2), (0.4, 0.2, 0.4))):
        c = h["coefficients"]
        assert set(c) == {"stage:a", "stage:b", "rectify", "boost_weight:a", "boost_weight:b"}
        assert (c["stage:a"], c["stage:b"], c["rectify"]) == pytest.approx(shares)
        # w1 - w2 q with q in [0, 1]: between 4 and 5 under the defaults w1 = 5, w2 = 1
        assert 4.0 <= c["boost_weight:a"] <= 5.0 and 4.0 <= c["boost_weight:b"] <= 5.0


def test_boost_weights_are_the_loss_weights():
    ens = torch.tensor([[3.0, 0.0], [0.0, 3.0]])
    q0, q1 = 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(3))
    torch.testing.assert_close(boost_weights(ens, torch.tensor([0, 0]), 5.0, 1.0), torch.tensor([5 - q0, 5 - q1]))
