"""G-Blending: the |G/O^2| formula by hand, the blended loss and which parameters each term reaches,
the estimate leaves the model and the run's generator alone, side-by-side estimate and step against
BalanceBenchmark's trainer, and end-to-end runs."""
import copy

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import max_param_diff, method_step, reference_step

from baselines.gblending import blend_weight, estimate_blend_weights
from mmbench.batching import SplitTensors


def batch_of(data, n=32):
    return SplitTensors(data, "train").batch(torch.arange(n))


def test_blend_weight_by_hand():
    # val loss 1.0 -> 0.8 (G = -0.2), gap 0.1 -> 0.3 (O = 0.2): |G / O^2| = 5
    assert blend_weight(0.9, 0.5, 1.0, 0.8) == pytest.approx(5.0)
    assert blend_weight(1.0, 0.5, 2.0, 1.5) == float("inf")  # no overfitting gained (O = 1 - 1 = 0)


def test_blended_loss_and_which_parameters_each_term_reaches():
    data = toy_dataset()
    method = make_method("gblending", data)
    batch = batch_of(data)
    method.weights = [0.2, 0.3, 0.5]
    with torch.no_grad():
        feats = method.model.encode(batch)
        W, b = method.model.head.weight, method.model.head.bias
        za, zb = feats[0] @ W[:, :64].T + b / 2, feats[1] @ W[:, 64:].T + b / 2
        ref = (0.2 * F.cross_entropy(za, batch.labels) + 0.3 * F.cross_entropy(zb, batch.labels)
               + 0.5 * F.cross_entropy(method.model(batch), batch.labels))
        torch.testing.assert_close(method.compute_loss(batch, None), ref)
    method.weights = [1.0, 0.0, 0.0]  # only a's unimodal CE: nothing reaches encoder b or W_b
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, None).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in method.model.encoders["b"].parameters())
    assert method.model.head.weight.grad[:, 64:].abs().sum() == 0
    assert method.model.head.weight.grad[:, :64].abs().sum() > 0


def split_batches(data, split, n):
    s = SplitTensors(data, split)
    return [s.batch(torch.arange(i, min(i + n, len(s)))) for i in range(0, len(s), n)]


def transcribed_super_epoch_origin(model, branches, train, val, lr, super_epoch):
    """BalanceBenchmark GBlendingTrainer.super_epoch_origin (a missing modality = a zeroed feature)."""
    weights = []
    for present in branches:
        temp_model = copy.deepcopy(model)
        optimizer = torch.optim.SGD(temp_model.parameters(), lr=lr)
        for epoch in range(super_epoch):
            temp_model.train()
            _loss = 0.0
            for batch in train:
                optimizer.zero_grad()
                loss = torch.nn.CrossEntropyLoss()(temp_model(batch.with_mask(batch.mask * present)), batch.labels)
                loss.backward()
                optimizer.step()
                _loss += loss.item()
            if epoch == 0 or epoch == super_epoch - 1:
                temp_model.eval()
                with torch.no_grad():
                    _loss_v = 0
                    for batch in val:
                        out = temp_model(batch.with_mask(batch.mask * present))
                        _loss_v += torch.nn.CrossEntropyLoss()(out, batch.labels).item()
                if epoch == 0:
                    pre_train_loss, pre_validation_loss = _loss, _loss_v
                else:
                    now_train_loss, now_validation_loss = _loss, _loss_v
        g = now_validation_loss - pre_validation_loss
        o = (now_validation_loss - now_train_loss) - (pre_validation_loss - pre_train_loss)
        weights.append(abs(g / (o ** 2)))
    return [w / sum(weights) for w in weights]


def test_side_by_side_estimate_against_released_code():
    data = toy_dataset()
    method = make_method("gblending", data)
    train, val = split_batches(data, "train", 45), split_batches(data, "val", 60)
    branches = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.ones(2)]
    before = copy.deepcopy(method.model.state_dict())
    ours = estimate_blend_weights(method.model, branches, lambda e: train, lambda: val,
                                  lambda params: torch.optim.SGD(params, lr=0.05), 3, reduce="sum")
    ref = transcribed_super_epoch_origin(method.model, branches, train, val, 0.05, 3)
    assert max(abs(a - b) for a, b in zip(ours, ref)) < 1e-6 and abs(sum(ours) - 1) < 1e-9
    assert all(torch.equal(before[k], v) for k, v in method.model.state_dict().items())  # model untouched


def test_side_by_side_one_step_against_released_training_step():
    data = toy_dataset()
    method = make_method("gblending", data, hp={"super_epoch": 1000})
    batch = batch_of(data)
    # method_step calls on_epoch_start at epoch 0, which estimates: use the weights it finds
    probe = copy.deepcopy(method)
    w = probe.weights = probe.estimate(_ctx(data, probe))
    method.estimate = lambda ctx: list(w)

    def released_loss(model):
        feats = model.encode(batch)
        W, b = model.head.fc.weight, model.head.fc.bias
        uni = {m: torch.mm(f, W[:, i * 64:(i + 1) * 64].T) + b / 2 for i, (m, f) in enumerate(zip("ab", feats))}
        uni["output"] = uni["a"] + uni["b"]
        weights = {"a": w[0], "b": w[1], "output": w[2]}
        return sum(weights[k] * torch.nn.CrossEntropyLoss()(v, batch.labels) for k, v in uni.items())

    ref = reference_step(method.model, released_loss)
    method_step(method, data, batch)
    assert max_param_diff(method.model, ref) == 0


def _ctx(data, method):
    from mmbench.engine.context import TrainContext
    opt = torch.optim.SGD(method.model.parameters(), lr=0.05)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0), None, 64, None)
    ctx.train_mask = torch.ones(len(ctx.train), 2)
    return ctx


def test_estimate_leaves_the_run_generator_and_is_logged():
    data = toy_dataset()
    method = make_method("gblending", data)
    ctx = _ctx(data, method)
    state = ctx.generator.get_state().clone()
    method.on_epoch_start(ctx)
    assert torch.equal(ctx.generator.get_state(), state)
    coefs = method.pop_coefficients()
    assert set(coefs) == {"w:a", "w:b", "w:fused"} and abs(sum(coefs.values()) - 1) < 1e-6


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("gblending", toy_dataset(three=three), epochs=2, pattern=pattern, hp={"super_epoch": 1})
    assert out["metrics"]["best_epoch"] >= 0 and "w:fused" in out["history"][1]["coefficients"]
