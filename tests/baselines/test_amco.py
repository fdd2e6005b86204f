"""AMCo (BalanceBenchmark's): the mask schedule and mask by hand, the masked logits, the dependence test,
the loss and which parameters it reaches (a fully masked modality: none of its encoder), the flags
carried between batches, the prediction options, consecutive side-by-side steps against a
transcription of the released trainer and model, and end-to-end runs."""
import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff

from baselines.amco import dependence, mask_fraction, masked_unimodal_logits
from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext


def batch_of(data, start=0, n=32):
    return SplitTensors(data, "train").batch(torch.arange(start, start + n))


def test_mask_fraction_schedule():
    assert all(mask_fraction(0, k, 0.3) == 0.0 for k in range(50))  # epoch 0: l_t stays 0
    assert mask_fraction(1, 0, 0.3) == 0.0
    assert mask_fraction(1, 1, 0.3) == pytest.approx(math.sin(math.pi / 6))
    assert mask_fraction(1, 2, 0.3) == pytest.approx(math.sin(math.pi / 3))
    assert mask_fraction(1, 3, 0.3) == 1.0 and mask_fraction(1, 40, 0.3) == 1.0
    assert mask_fraction(3, 1, 0.3) == 1.0  # l_t = 0.3 after one batch of epoch 3


def ctx_at(method, data, epoch):
    opt = torch.optim.SGD([p for p in method.modules().parameters() if p.requires_grad], lr=LR)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0), None, 64, None)
    ctx.epoch = epoch
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    return ctx


def test_class_mask_counts():
    data = toy_dataset(num_classes=10)
    method = make_method("amco", data)
    for pt, zeros in [(0.0, 0), (0.5, 5), (0.87, 8), (1.0, 10)]:
        mask = method.class_mask(pt, "cpu")
        assert mask.shape == (10,) and int((mask == 0).sum()) == zeros and set(mask.tolist()) <= {0.0, 1.0}


def test_masked_logits_and_dependence_by_hand():
    data = toy_dataset()
    method = make_method("amco", data)
    batch = batch_of(data)
    mask = torch.tensor([1.0, 0.0, 1.0, 0.0])
    with torch.no_grad():
        feats = method.model.encode(batch)
        z = masked_unimodal_logits(method.model.head, feats, torch.tensor([True, False]), mask)
        W, b = method.model.head.weight, method.model.head.bias
        za = feats[0] @ W[:, :64].T + b / 2
        zb = feats[1] @ W[:, 64:].T + b / 2
    torch.testing.assert_close(z[0], za * mask)
    torch.testing.assert_close(z[1], zb)
    share, dep = dependence(z, 0.5)
    probs = F.softmax(torch.cat([z[0], z[1]], 1), 1)
    torch.testing.assert_close(share, torch.stack([probs[:, :4].sum() / 32, probs[:, 4:].sum() / 32]))
    assert float(share.sum()) == pytest.approx(1.0) and dep.tolist() == (share > 0.5).tolist()


def test_loss_formula_and_a_fully_masked_modality_gets_no_gradient():
    data = toy_dataset()
    method = make_method("amco", data, epochs=4)
    ctx = ctx_at(method, data, 3)
    method.batch_index = 5  # pt = 1: every class masked
    method.dependent = torch.tensor([True, False])
    batch = batch_of(data)
    method.modules().zero_grad(set_to_none=True)
    loss = method.compute_loss(batch, ctx)
    assert float(method.last_mask.sum()) == 0.0
    with torch.no_grad():
        feats = method.model.encode(batch)
        zb = feats[1] @ method.model.head.weight[:, 64:].T + method.model.head.bias / 2
        za = torch.zeros_like(zb)
        fused = method.extra["linear_star"](za + zb)
        expected = F.cross_entropy(fused, batch.labels) + F.cross_entropy(za, batch.labels) + F.cross_entropy(zb, batch.labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    loss.backward()
    for p in method.model.encoders["a"].parameters():  # the masked (dependent) modality: no gradient
        assert p.grad is None or p.grad.abs().max() == 0
    assert all(p.grad.abs().sum() > 0 for p in method.model.encoders["b"].parameters())
    assert all(p.grad.abs().sum() > 0 for p in method.extra["linear_star"].parameters())


def test_dependence_carries_to_the_next_batch_and_resets_each_epoch():
    data = toy_dataset()
    method = make_method("amco", data, epochs=4)
    ctx = ctx_at(method, data, 1)
    assert not method.dependent.any()  # none on the first batch of an epoch
    method.compute_loss(batch_of(data), ctx)
    found = method.dependent.clone()
    assert found.sum() == 1  # M = 2, sigma = 0.5: the leading modality
    method.compute_loss(batch_of(data, 32), ctx)  # used (mask of 2 classes at pt = 0.5)
    ctx.epoch = 2
    method.on_epoch_start(ctx)
    assert not method.dependent.any() and method.batch_index == 0


def test_predict_options():
    data = toy_dataset()
    released = make_method("amco", data)
    output = make_method("amco", data, hp={"predict": "output"})
    output.modules().load_state_dict(released.modules().state_dict())
    batch = batch_of(data)
    with torch.no_grad():
        torch.testing.assert_close(released.predict(batch), released.model(batch))
        torch.testing.assert_close(output.predict(batch), output.extra["linear_star"](output.model(batch)))


def test_outside_the_window_plain_ce_through_linear_star():
    data = toy_dataset()
    method = make_method("amco", data, epochs=10, hp={"start": 0.5})
    ctx = ctx_at(method, data, 4)
    batch = batch_of(data)
    loss = method.compute_loss(batch, ctx)
    torch.testing.assert_close(loss, F.cross_entropy(method.extra["linear_star"](method.model(batch)), batch.labels))
    assert method.selection_start_epoch() == 5


def transcribed_steps(modules, batches, masks, sigma=0.5):
    """BalanceBenchmark ``AMCoTrainer.train_loop`` / ``training_step`` with ``BaseClassifierAMCoModel``'s
    forward, inside the window, one SGD step per batch on a copy. ``masks``: the ``[C]`` class masks (the
    released ``np.random.shuffle`` draw), given as the ``[1, C]`` row each GPU receives."""
    ref = copy.deepcopy(modules)
    model, linear_star = ref["model"], ref["extra"]["linear_star"]
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    criterion, softmax = torch.nn.CrossEntropyLoss(), torch.nn.Softmax(dim=1)
    modalitys = list(range(len(model.modalities)))
    dependent_modality = {m: False for m in modalitys}
    flags = []
    for batch, mask_t in zip(batches, masks):
        mask = mask_t.unsqueeze(0)
        feats = model.encode(batch)
        W, bias = model.head.fc.weight, model.head.fc.bias
        D, all_nums = feats[0].shape[1], len(feats)
        unimodal_result = {'output': torch.zeros_like(model.head.fc(torch.cat(feats, 1)))}
        for m in modalitys:
            unimodal_result[m] = torch.mm(feats[m], torch.transpose(W[:, m * D:(m + 1) * D], 0, 1)) + bias / all_nums
            if dependent_modality.get(m, False):
                unimodal_result[m] = torch.mul(unimodal_result[m], mask)
            unimodal_result['output'] += unimodal_result[m]
        unimodal_result['output'] = linear_star(unimodal_result['output'])
        label = batch.labels
        loss = criterion(unimodal_result['output'], label)
        loss.backward(retain_graph=True)
        for m in modalitys:
            criterion(unimodal_result[m], label).backward()
        out_combine = torch.cat([value for key, value in unimodal_result.items() if key != 'output'], 1)
        sft_out = softmax(out_combine)
        C, now_dim = mask.shape[1], 0
        for m in modalitys:
            if now_dim < sft_out.shape[1] - C:
                sft_uni = torch.sum(sft_out[:, now_dim: now_dim + C]) / (len(label))
            else:
                sft_uni = torch.sum(sft_out[:, now_dim:]) / (len(label))
            dependent_modality[m] = bool(sft_uni > sigma)
            now_dim += C
        flags.append([dependent_modality[m] for m in modalitys])
        opt.step()
        opt.zero_grad()
    return ref, flags


def test_side_by_side_three_steps_of_epoch_one():
    data = toy_dataset()
    method = make_method("amco", data, epochs=4)
    before = copy.deepcopy(method.modules())
    ctx = ctx_at(method, data, 1)
    batches = [batch_of(data, 32 * k) for k in range(3)]
    masks, flags = [], []
    for batch in batches:
        method.training_step(batch, ctx)
        masks.append(method.last_mask.clone())
        flags.append(method.dependent.tolist())
    assert [int((m == 0).sum()) for m in masks] == [0, 2, 3]  # pt = 0, 0.5, 0.87 of 4 classes
    ref, ref_flags = transcribed_steps(before, batches, masks)
    assert flags == ref_flags and any(any(f) for f in flags[:2])  # a dependent modality was masked
    diff = max_param_diff(method.modules(), ref)
    assert diff < 1e-6, diff


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="fusion=concat"):
        make_method("amco", toy_dataset(), fusion="sum")
    with pytest.raises(ValueError, match="predict"):
        make_method("amco", toy_dataset(), hp={"predict": "star"})


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("amco", toy_dataset(three=three), epochs=3, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and 0 <= m["test_acc"] <= 1
    assert out["history"][0]["coefficients"]["pt"] == 0.0 and out["history"][2]["coefficients"]["pt"] > 0.5
