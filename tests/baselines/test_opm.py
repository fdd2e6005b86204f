"""OPM: the drop-probability formula by hand, only the dominant modality is dropped, what a dropped
feature passes back, the inverted-dropout scale, what is detached, side-by-side steps against
BalanceBenchmark's trainer, and end-to-end runs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import max_param_diff, method_step, reference_step

from baselines.opm import opm_drop_probabilities
from mmbench.batching import SplitTensors


def batch_of(data, n=32):
    return SplitTensors(data, "train").batch(torch.arange(n))


def ctx_at(epoch=0, epochs=2, seed=0):
    return type("Ctx", (), {"epoch": epoch, "epochs": epochs, "generator": torch.Generator().manual_seed(seed)})()


def test_drop_probabilities_by_hand():
    # two samples, two classes; modality 0 fits both, modality 1 is at chance
    z = torch.tensor([[[2.0, 0.0], [0.0, 2.0]], [[0.0, 0.0], [0.0, 0.0]]])
    y = torch.tensor([0, 1])
    q = opm_drop_probabilities(z, y, torch.ones(2, 2), 0.4, 0.5)
    s0, s1 = 2 / (1 + math.exp(-2)), 1.0
    r0 = math.tanh(max(0.0, s0 / (s1 + 1e-5) - 1))
    torch.testing.assert_close(q, torch.tensor([0.4 * (1 + 0.5 * r0), 0.0]))
    # three modalities: the ratio is to the sum of the others, so no one leads here
    z3 = torch.cat([z, z[1:]])
    assert opm_drop_probabilities(z3, y, torch.ones(2, 3), 0.4, 0.5).sum() == 0
    # rule="mean": the ratio to the others' mean, so the leader is dropped (the same as the pair rule here)
    torch.testing.assert_close(opm_drop_probabilities(z3, y, torch.ones(2, 3), 0.4, 0.5, "mean")[:2], q)


def test_no_drop_is_the_fused_ce_and_a_dropped_modality_gets_no_gradient():
    data = toy_dataset()
    batch = batch_of(data)
    method = make_method("opm", data, hp={"p_exe": 0.0})
    loss = method.compute_loss(batch, ctx_at())
    torch.testing.assert_close(loss, F.cross_entropy(method.model(batch), batch.labels))
    # force: execute, modality a dropped for every sample, b kept
    method = make_method("opm", data)
    method.draw = lambda q, B, ctx: (torch.tensor(True), torch.tensor([[0.0, 1.0]]).expand(B, 2))
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx_at()).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in method.model.encoders["a"].parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.model.encoders["b"].parameters())


def test_kept_features_are_rescaled_by_the_mean_rate_and_q_is_detached():
    data = toy_dataset()
    batch = batch_of(data)
    method = make_method("opm", data)
    seen = {}
    method.draw = lambda q, B, ctx: (seen.setdefault("q", q), torch.tensor(True), torch.ones(B, 2))[1:]
    head = method.model.head
    captured = {}
    original = head.forward
    head.forward = lambda feats: (captured.setdefault("feats", feats), original(feats))[1]
    method.compute_loss(batch, ctx_at())
    q = seen["q"]
    assert not q.requires_grad  # coef_grad=False: the probabilities are constants of the step
    with torch.no_grad():
        plain = method.model.encode(batch)
    theta = q.mean()  # equal widths D: theta is the mean drop probability
    for f, p in zip(captured["feats"], plain):
        torch.testing.assert_close(f, p / (1 - theta + 1e-5))


def test_draws_follow_the_probabilities():
    data = toy_dataset()
    method = make_method("opm", data)
    ctx = ctx_at()
    q = torch.tensor([0.6, 0.0])
    runs = [method.draw(q, 500, ctx) for _ in range(20)]
    execute = np.mean([bool(e) for e, _ in runs])
    keep = torch.stack([k for _, k in runs]).mean((0, 1))
    assert abs(execute - 0.7) < 0.25 and abs(keep[0] - 0.4) < 0.03 and keep[1] == 1.0


def transcribed_balancebenchmark_loss(model, batch, execute, keep, q_base=0.4, alpha=0.5):
    """BalanceBenchmark OPM training_step + Modality_drop.execute_drop (M = 2), keep mask given [B, M]."""
    feats = model.encode(batch)
    label = batch.labels
    W, bias = model.head.fc.weight, model.head.fc.bias
    uni = [torch.mm(f, torch.transpose(W[:, m * 64:(m + 1) * 64], 0, 1)) + bias / 2 for m, f in enumerate(feats)]
    softmax = torch.nn.Softmax(dim=1)
    scores = [sum([softmax(u)[i][label[i]] for i in range(u.shape[0])]) for u in uni]
    ratios, coeffs = [], []
    for m in range(2):
        r = scores[m] / (scores[1 - m] + 1e-5)
        ratios.append(torch.tanh(torch.relu(r - 1)))
    for m in range(2):
        c = q_base * (1 + alpha * ratios[m]) if ratios[m] > 0 else 0
        coeffs.append(0.0 if c < 0.0 else (1.0 if 1.0 < c else c))  # the released clip(0, c, 1)
    if not execute:
        cleaned, flag = feats, torch.ones(len(label), dtype=torch.bool)
    else:
        theta = sum(64 * c for c in coeffs) / 128
        cleaned = [f * keep[:, m:m + 1].expand(-1, 64) / (1 - theta + 1e-5) for m, f in enumerate(feats)]
        flag = keep.sum(1) > 0
        cleaned = [c[flag] for c in cleaned]
    return torch.nn.CrossEntropyLoss()(model.head(cleaned), label[flag])


@pytest.mark.parametrize("execute", [True, False])
def test_side_by_side_one_step(execute):
    data = toy_dataset()
    method = make_method("opm", data, hp={"coef_grad": True})
    with torch.no_grad():
        method.model.head.fc.weight[:, :64] *= 4.0  # make a dominant: q_a > 0
    batch = batch_of(data, 16)
    g = torch.Generator().manual_seed(1)
    keep = (torch.rand(16, 2, generator=g) > 0.4).float()
    keep[0] = 0.0  # one sample loses both modalities and leaves the loss
    method.draw = lambda q, B, ctx: (torch.tensor(execute), keep)
    with torch.no_grad():
        z = torch.stack([F.linear(f, method.model.head.block(m), method.model.head.bias / 2)
                         for m, f in enumerate(method.model.encode(batch))])
        assert opm_drop_probabilities(z, batch.labels, batch.mask, 0.4, 0.5)[0] > 0
    ref = reference_step(method.model, lambda model: transcribed_balancebenchmark_loss(model, batch, execute, keep))
    method_step(method, data, batch)
    assert max_param_diff(method.model, ref) < 1e-6


class _ReleasedScale(torch.autograd.Function):
    """The authors' ``custom_autograd``: x / (1 - theta) with theta a constant forward, theta's gradient = theta."""

    @staticmethod
    def forward(ctx, x, theta):
        ctx.save_for_backward(theta)
        return x / (1 - theta.item())

    @staticmethod
    def backward(ctx, grad):
        (theta,) = ctx.saved_tensors
        return grad / (1 - theta.item()), theta


def transcribed_authors_loss(model, batch, execute, keep, q_base=0.5, lam=0.5):
    """GeWu-Lab/BML_TPAMI2024 ``Classifier.forward`` + ``calcu_q`` + ``Modality_drop.execute_drop`` (M = 2)."""
    feats = model.encode(batch)
    label = batch.labels
    w, b = model.head.fc.weight.clone().detach(), model.head.fc.bias.clone().detach()
    t = [torch.mm(f, torch.transpose(w[:, m * 64:(m + 1) * 64], 0, 1)) + b / 2 for m, f in enumerate(feats)]
    softmax = torch.nn.Softmax(dim=1)
    perf = [sum([softmax(u)[i][int(label[i].item())] for i in range(u.shape[0])]) for u in t]
    q = torch.tensor([0.0, 0.0])
    r1, r2 = torch.tanh(torch.relu(perf[0] / perf[1] - 1)), torch.tanh(torch.relu(perf[1] / perf[0] - 1))
    q[0] = q_base * (1 + lam * r1) if r1 > 0 else 0
    q[1] = q_base * (1 + lam * r2) if r2 > 0 else 0
    q = torch.clip(q, 0.0, 1.0)
    if not execute:
        return torch.nn.CrossEntropyLoss()(model.head(feats), label)
    dims = torch.tensor([64, 64])
    theta = sum(dims * q) / sum(dims)
    stacked = torch.stack(feats, 0) * keep.t().unsqueeze(-1)  # [2, B, D]
    stacked = _ReleasedScale.apply(stacked, theta)
    flag = keep.sum(1) > 0
    cleaned = [x[flag] for x in stacked]
    return torch.nn.CrossEntropyLoss()(model.head(cleaned), label[flag])


@pytest.mark.parametrize("execute", [True, False])
def test_side_by_side_one_step_against_the_authors_release(execute):
    data = toy_dataset()
    hp = {"q_base": 0.5, "eps": 0.0, "authors_theta_grad": True}
    method = make_method("opm", data, hp=hp)
    with torch.no_grad():
        method.model.head.fc.weight[:, :64] *= 4.0  # make a dominant: q_a > 0, so theta carries a gradient
    batch = batch_of(data, 16)
    g = torch.Generator().manual_seed(2)
    keep = (torch.rand(16, 2, generator=g) > 0.4).float()
    keep[0] = 0.0
    method.draw = lambda q, B, ctx: (torch.tensor(execute), keep)
    ref = reference_step(method.model, lambda model: transcribed_authors_loss(model, batch, execute, keep))
    before = {k: v.clone() for k, v in method.model.named_parameters()}
    method_step(method, data, batch)
    assert max_param_diff(method.model, ref) < 1e-6
    # the spurious gradient is real: without it the encoders end elsewhere (on a drop step)
    plain = make_method("opm", data, hp={**hp, "authors_theta_grad": False})
    plain.model.load_state_dict({k: v for k, v in before.items()}, strict=False)
    plain.draw = method.draw
    method_step(plain, data, batch)
    moved = max_param_diff(plain.model, ref)
    assert (moved > 1e-6) == execute


def test_authors_theta_grad_refuses_coef_grad_and_keeps_the_loss_value():
    data = toy_dataset()
    with pytest.raises(ValueError, match="authors_theta_grad"):
        make_method("opm", data, hp={"authors_theta_grad": True, "coef_grad": True})
    batch = batch_of(data)
    keep = torch.ones(32, 2)
    keep[:, 0] = 0
    losses = []
    for authors in (False, True):
        method = make_method("opm", data, hp={"authors_theta_grad": authors, "eps": 0.0})
        with torch.no_grad():
            method.model.head.fc.weight[:, :64] *= 4.0
        method.draw = lambda q, B, ctx: (torch.tensor(True), keep)
        losses.append(method.compute_loss(batch, ctx_at()))
    assert torch.equal(losses[0].detach(), losses[1].detach())  # the extra term is zero in value


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("opm", toy_dataset(three=three), epochs=2, pattern=pattern)
    assert out["metrics"]["best_epoch"] >= 0 and any(k.startswith("q") for k in out["history"][0]["coefficients"])
