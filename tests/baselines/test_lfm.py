"""LFM: the alignment by hand (released and textbook JS), the loss formula, which parameters it reaches,
the hyper-gradient against finite differences, the weight's update rule (clip, lr halving, fitted
schedule), side-by-side steps against both releases, and end-to-end runs."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff, method_step

import baselines.lfm as lfm
from baselines.lfm import alignment, fitted_cls_weight
from mmbench.batching import SplitTensors


def batch_of(data, n=32, split="train"):
    return SplitTensors(data, split).batch(torch.arange(n))


def np_softmax(z):
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_alignment_by_hand():
    g = torch.Generator().manual_seed(0)
    zp, zq = torch.randn(5, 4, generator=g, dtype=torch.float64), torch.randn(5, 4, generator=g, dtype=torch.float64)
    p, q = np_softmax(zp.numpy()), np_softmax(zq.numpy())
    m = (p + q) / 2
    released = 0.5 * ((m * np.log(m / p)).sum(1) + (m * np.log(m / q)).sum(1))  # KL(m||p) + KL(m||q)
    js = 0.5 * ((p * np.log(p / m)).sum(1) + (q * np.log(q / m)).sum(1))  # KL(p||m) + KL(q||m)
    np.testing.assert_allclose(alignment(zp, zq, "released").numpy(), released, rtol=1e-12)
    np.testing.assert_allclose(alignment(zp, zq, "js").numpy(), js, rtol=1e-12)
    assert not np.allclose(released, js)  # the two are different quantities
    # zero when the predictions agree, whatever the logit offset
    torch.testing.assert_close(alignment(zp, zp + 3.0, "released"), torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="divergence"):
        alignment(zp, zq, "kl")


def test_fitted_schedule():
    assert fitted_cls_weight(0) == pytest.approx(0.204623704)
    assert fitted_cls_weight(20) == pytest.approx(0.30089, abs=1e-5)
    assert fitted_cls_weight(100) == pytest.approx(0.53916, abs=1e-5)
    data = toy_dataset()
    method = make_method("lfm", data, hp={"weight_schedule": "fitted"})
    method.update_weight(20, batch_of(data, 8, "val"))
    assert method.cls_weight == fitted_cls_weight(20)


@pytest.mark.parametrize("fused,divergence,three", [("mean", "released", False), ("sum", "js", False),
                                                    ("mean", "released", True)])
def test_loss_formula(fused, divergence, three):
    data = toy_dataset(three=three)
    method = make_method("lfm", data, hp={"fused_logits": fused, "divergence": divergence})
    method.cls_weight = 0.3
    batch = batch_of(data)
    ctx = type("Ctx", (), {"epoch": 0, "epochs": 2})()
    with torch.no_grad():
        loss = method.compute_loss(batch, ctx)
        feats = [f.double().numpy() for f in method.model.encode(batch)]
        fused_logits = method.model(batch).double()
        W, b = (t.detach().double().numpy() for t in (method.model.head.weight, method.model.head.bias))
    M, D, y = len(feats), feats[0].shape[1], batch.labels
    z = [x @ W[:, m * D:(m + 1) * D].T + b / M for m, x in enumerate(feats)]
    ce = F.cross_entropy(fused_logits / (M if fused == "mean" else 1), y).item()
    aligns = [alignment(torch.from_numpy(z[i]), torch.from_numpy(z[j]), divergence).mean().item()
              for i in range(M) for j in range(i + 1, M)]
    expected = 2 * (0.3 * ce + 0.7 * np.mean(aligns))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_loss_reaches_every_parameter_and_the_weight_is_a_constant():
    data = toy_dataset()
    method = make_method("lfm", data)
    batch = batch_of(data)
    ctx = type("Ctx", (), {"epoch": 0, "epochs": 2})()
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    assert isinstance(method.cls_weight, float)  # no gradient reaches the weight
    for name, p in method.model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name  # both encoders, the head's weight and bias
    # the alignment alone (a_cls = 0) still reaches both encoders: it pulls the predictions together
    method.cls_weight = 0.0
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    for m in ("a", "b"):
        assert any(p.grad.abs().sum() > 0 for p in method.model.encoders[m].parameters())


def double_batch(batch):
    return dataclasses.replace(batch, inputs={k: v.double() for k, v in batch.inputs.items()}, mask=batch.mask.double())


def test_hypergradient_is_the_first_tensor_of_hessian_times_cls_gradient():
    """g = mean((H v)[0]) with H the Hessian of L_total and v = grad L_cls: against central differences."""
    data = toy_dataset()
    method = make_method("lfm", data)
    method.model.double()
    batch = double_batch(batch_of(data, 8, "val"))
    params = list(method.model.parameters())
    a = 0.3

    def grads(fn):
        loss_cls, loss_align = method.losses(batch)
        return torch.autograd.grad(fn(loss_cls, loss_align), params)

    v = [g.detach() for g in grads(lambda c, al: c)]
    eps = 1e-6
    with torch.no_grad():
        for p, d in zip(params, v):
            p.add_(eps * d)
    plus = grads(lambda c, al: a * c + (1 - a) * al)[0]
    with torch.no_grad():
        for p, d in zip(params, v):
            p.sub_(2 * eps * d)
    minus = grads(lambda c, al: a * c + (1 - a) * al)[0]
    with torch.no_grad():
        for p, d in zip(params, v):
            p.add_(eps * d)
    expected = float(((plus - minus) / (2 * eps)).mean())
    loss_cls, loss_align = method.losses(batch)
    got = lfm.alpha_hypergradient(params, loss_cls, loss_align, a)
    assert got == pytest.approx(expected, rel=1e-5, abs=1e-10)
    assert params[0] is next(method.model.encoders["a"].parameters())  # the first tensor: the first encoder's


def test_weight_update_clip_and_lr_halving(monkeypatch):
    data = toy_dataset()
    method = make_method("lfm", data, epochs=60)
    val = batch_of(data, 8, "val")
    grads = iter([-100.0, 0.0, 2000.0, 2000.0, 1e5, -1e9])
    monkeypatch.setattr(lfm, "alpha_hypergradient", lambda *args: next(grads))
    assert method.cls_weight == 0.05
    method.update_weight(0, val)  # align 0.95 + 1e-4 * 100 -> clipped at 0.95
    assert method.cls_weight == pytest.approx(0.05) and method.lr_alpha == 1e-4
    method.update_weight(1, val)  # g = 0: unchanged
    assert method.cls_weight == pytest.approx(0.05)
    method.update_weight(2, val)  # align 0.95 - 0.2 = 0.75
    assert method.cls_weight == pytest.approx(0.25)
    method.update_weight(20, val)  # lr halved first: align 0.75 - 5e-5 * 2000 = 0.65
    assert method.lr_alpha == pytest.approx(5e-5) and method.cls_weight == pytest.approx(0.35)
    method.update_weight(40, val)  # halved again (cumulative): 2.5e-5 * 1e5 = 2.5 -> clipped at 0.05
    assert method.lr_alpha == pytest.approx(2.5e-5) and method.cls_weight == pytest.approx(0.95)
    method.update_weight(41, val)  # a huge negative g -> clipped at 0.95
    assert method.cls_weight == pytest.approx(0.05)


def unimodal(model, feats):
    W, b = model.head.fc.weight, model.head.fc.bias
    D = feats[0].shape[1]
    return [torch.mm(f, torch.transpose(W[:, m * D:(m + 1) * D], 0, 1)) + b / len(feats) for m, f in enumerate(feats)]


def released_alignment(p, q):
    """``Alignment`` of both releases."""
    p = F.softmax(p, dim=-1)
    q = F.softmax(q, dim=-1)
    m = 0.5 * p + 0.5 * q
    kl_p_m = F.kl_div(p.log(), m, reduction='batchmean')
    kl_q_m = F.kl_div(q.log(), m, reduction='batchmean')
    return 0.5 * (kl_p_m + kl_q_m)


def transcribed_get_alpha(model, val_batch, alpha, lr_alpha, epoch, authors):
    """``getAlpha_Learnable`` (authors: CE on 0.5 o_v + 0.5 o_a; BalanceBenchmark: CE on the output)."""
    o_a, o_v = unimodal(model, model.encode(val_batch))
    loss_alignment = released_alignment(o_a, o_v)
    out = 0.5 * o_v + 0.5 * o_a if authors else model.head.fc(torch.cat(model.encode(val_batch), 1))
    loss_cls = torch.nn.CrossEntropyLoss(reduction='none')(out, val_batch.labels).mean()
    L_total = alpha[0] * loss_cls + alpha[1] * loss_alignment
    theta_grads = torch.autograd.grad(L_total, model.parameters(), create_graph=True)
    cls_grads = torch.autograd.grad(loss_cls, model.parameters(), retain_graph=True, create_graph=True)
    hessian_vector_prod = torch.autograd.grad(outputs=theta_grads, inputs=model.parameters(),
                                              grad_outputs=cls_grads, retain_graph=True)
    with torch.no_grad():
        alpha_grad = hessian_vector_prod[0].mean().item()
        if epoch % 20 == 0 and epoch != 0:
            lr_alpha = lr_alpha / 2
        alpha[1] -= lr_alpha * alpha_grad
        alpha[1] = max(0.05, min(0.95, alpha[1]))
        alpha[0] = 1.0 - alpha[1]
    return alpha, lr_alpha


def transcribed_step(model, batch, cls_k, authors):
    """Authors' ``train_audio_video`` / BalanceBenchmark's ``training_step``, one SGD step on a copy."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    feats = ref.encode(batch)
    o_a, o_v = unimodal(ref, feats)
    loss_alignment = released_alignment(o_a, o_v)
    if authors:
        loss_cls = torch.nn.CrossEntropyLoss(reduction='none')(0.5 * o_v + 0.5 * o_a, batch.labels).mean()
        loss = 2 * (cls_k[0] * loss_cls + cls_k[1] * loss_alignment)
    else:
        loss = torch.nn.CrossEntropyLoss()(ref.head.fc(torch.cat(feats, 1)), batch.labels)
        loss = 2 * (cls_k[0] * loss + cls_k[1] * loss_alignment / 1)
    loss.backward()
    opt.step()
    return ref


@pytest.mark.parametrize("release", ["authors", "balancebenchmark"])
def test_side_by_side_one_step(release):
    data = toy_dataset()
    authors = release == "authors"
    # away from the clip and with a large lr_alpha, so that the released update visibly moves a (its
    # hyper-gradient is ~1e-5..1e-3 here: with the released 1e-4, a moves by < 1e-7 per epoch)
    hp = {"cls_weight": 0.3, "lr_alpha": 100.0, **({} if authors else {"fused_logits": "sum"})}
    method = make_method("lfm", data, hp=hp)
    batch, val = batch_of(data), batch_of(data, 8, "val")
    alpha = [0.3, 0.7] if authors else {1: 0.7, 0: 0.3}
    alpha, _ = transcribed_get_alpha(copy.deepcopy(method.model), val, alpha, 100.0, 0, authors)
    ref = transcribed_step(method.model, batch, alpha, authors)
    method_step(method, data, batch, epoch=0)
    assert abs(method.cls_weight - alpha[0]) < 1e-9 and abs(alpha[0] - 0.3) > 1e-5
    diff = max_param_diff(method.model, ref)
    assert diff < 1e-6, diff


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="fusion=concat"):
        make_method("lfm", toy_dataset(), fusion="sum")
    with pytest.raises(ValueError, match="schedule"):
        make_method("lfm", toy_dataset(), hp={"weight_schedule": "heuristic"})
    with pytest.raises(ValueError, match="fused_logits"):
        make_method("lfm", toy_dataset(), hp={"fused_logits": "max"})


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("lfm", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and 0 <= m["test_acc"] <= 1
    assert "cls_weight" in out["history"][0]["coefficients"]
    assert np.isfinite(out["method"].alpha_grad)
