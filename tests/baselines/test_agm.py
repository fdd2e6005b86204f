"""AGM: the responses decompose the fused logits (AGM's M = 2 form, exact Shapley for M = 3), the
gradient into o_m is scaled by k_m, the coefficient / running-reference formula, conditional
clipping, and end-to-end runs."""
import itertools
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

from baselines.agm import decomposition_matrix
from mmbench.batching import SplitTensors


def batch_of(data, n=64, mask=None):
    return SplitTensors(data, "train").batch(torch.arange(n), mask)


def ctx_at(epoch=0, epochs=10):
    return SimpleNamespace(epoch=epoch, epochs=epochs)


def f_subset(method, batch, keep):
    """Fused logits with only the modalities in ``keep`` present (eval mode), straight from the model."""
    mask = torch.tensor([1.0 if m in keep else 0.0 for m in batch.modalities])
    return method.model(batch.with_mask(batch.mask * mask))


@pytest.mark.parametrize(
    "fusion, missing", [("concat", "feature"), ("gated", "feature"), ("concat", "input"), ("film", "input")]
)
def test_two_modality_responses_are_agm_form_and_sum_to_fused(fusion, missing):
    data = toy_dataset()
    method = make_method("agm", data, fusion=fusion, missing=missing)
    batch = batch_of(data)
    with torch.no_grad():
        o = method.responses(batch)
        fav, fa0, f0v = f_subset(method, batch, "ab"), f_subset(method, batch, "a"), f_subset(method, batch, "b")
    torch.testing.assert_close(o.sum(0), fav, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o[0], 0.5 * (fav - f0v + fa0), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(o[1], 0.5 * (fav - fa0 + f0v), atol=1e-5, rtol=1e-5)


def test_concat_feature_responses_are_ogm_convention():
    data = toy_dataset()
    method = make_method("agm", data)
    batch = batch_of(data)
    with torch.no_grad():
        o = method.responses(batch)
        feats = method.model.encode(batch)
    W, b = method.model.head.weight, method.model.head.bias
    torch.testing.assert_close(o[0], feats[0] @ W[:, :64].T + b / 2, atol=1e-5, rtol=1e-5)


def shapley_bruteforce(f, M):
    """Shapley value + f(empty)/M per player from a dict subset-tuple -> value."""
    out = []
    for m in range(M):
        phi = 0.0
        for s in itertools.product((0, 1), repeat=M):
            if s[m]:
                continue
            size = sum(s)
            w = math.factorial(size) * math.factorial(M - size - 1) / math.factorial(M)
            with_m = tuple(1 if j == m else v for j, v in enumerate(s))
            phi += w * (f[with_m] - f[s])
        out.append(phi + f[(0,) * M] / M)
    return out


@pytest.mark.parametrize("kind", ["shapley", "loo"])
def test_decomposition_matrix(kind):
    M = 3
    subsets, coef = decomposition_matrix(M, kind)
    rng = np.random.default_rng(0)
    values = {tuple(int(v) for v in s): rng.normal() for s in itertools.product((0, 1), repeat=M)}
    fvec = torch.tensor([values[tuple(int(v) for v in s.tolist())] for s in subsets], dtype=torch.float64)
    o = coef.double() @ fvec
    assert abs(o.sum().item() - values[(1, 1, 1)]) < 1e-6  # sums to f(all)
    if kind == "shapley":
        np.testing.assert_allclose(o.numpy(), shapley_bruteforce(values, M), atol=1e-6)
    else:
        full = values[(1, 1, 1)]
        delta = [full - values[tuple(0 if j == m else 1 for j in range(M))] for m in range(M)]
        np.testing.assert_allclose(o.numpy(), [d + (full - sum(delta)) / M for d in delta], atol=1e-6)
    # M = 2: every decomposition is AGM's.
    for k2 in ("shapley", "loo"):
        s2, c2 = decomposition_matrix(2, k2)
        f2 = {(1, 1): 3.0, (1, 0): 1.0, (0, 1): 0.5, (0, 0): 0.2}
        o2 = c2.double() @ torch.tensor([f2[tuple(int(v) for v in s.tolist())] for s in s2], dtype=torch.float64)
        np.testing.assert_allclose(o2.numpy(), [0.5 * (3.0 - 0.5 + 1.0), 0.5 * (3.0 - 1.0 + 0.5)], atol=1e-9)


def test_three_modalities_gated_sum_to_fused():
    data = toy_dataset(three=True)
    method = make_method("agm", data, fusion="gated")
    assert method.kind == "shapley" and method.subsets.shape == (8, 3)
    batch = batch_of(data)
    with torch.no_grad():
        torch.testing.assert_close(method.responses(batch).sum(0), method.model(batch), atol=1e-5, rtol=1e-5)
    assert make_method("agm", data, hp={"decomposition": "loo"}).subsets.shape == (4, 3)


def test_gradient_into_each_response_is_scaled_by_k():
    data = toy_dataset()
    method = make_method("agm", data, hp={"clip": False, "alpha": 1.5})
    batch = batch_of(data)
    method.model.zero_grad(set_to_none=True)
    F.cross_entropy(method.model(batch), batch.labels).backward()
    ref = {n: p.grad.clone() for n, p in method.model.named_parameters()}
    # Warm the running mean so that k != 1, then take the step under test.
    method.score_mean, method.steps = torch.tensor([2.0, 0.5]), 5
    method.model.zero_grad(set_to_none=True)
    loss = method.compute_loss(batch, ctx_at())
    loss.backward()
    k = method.last_k
    assert not torch.allclose(k, torch.ones(2))
    torch.testing.assert_close(loss.detach(), F.cross_entropy(method.model(batch), batch.labels).detach())
    # Concat + zeroed features: o_a = W_a x_a + b/2 -> encoder a and block W_a get k_a, bias (k_a + k_b)/2.
    for n, p in method.model.named_parameters():
        if n.startswith("encoders.a."):
            torch.testing.assert_close(p.grad, k[0] * ref[n])
        elif n.startswith("encoders.b."):
            torch.testing.assert_close(p.grad, k[1] * ref[n])
    W = method.model.head.weight.grad
    torch.testing.assert_close(W[:, :64], k[0] * ref["head.fc.weight"][:, :64])
    torch.testing.assert_close(W[:, 64:], k[1] * ref["head.fc.weight"][:, 64:])
    torch.testing.assert_close(method.model.head.bias.grad, 0.5 * (k[0] + k[1]) * ref["head.fc.bias"])


def test_coefficients_and_running_reference_hand_computed():
    data = toy_dataset()
    method = make_method("agm", data, hp={"alpha": 1.5})
    e = math.e
    k = method.coefficients(torch.tensor([1.0, 2.0]))  # reference starts at sbar = 0 -> rbar = 1
    np.testing.assert_allclose(k.numpy(), [math.exp(1.5 * (1 - e)), math.exp(1.5 * (1 - 1 / e))], rtol=1e-5)
    np.testing.assert_allclose(method.score_mean.numpy(), [1.0, 2.0])
    k = method.coefficients(torch.tensor([2.0, 1.0]))  # rbar from sbar = (1, 2): (e, 1/e); r = (1/e, e)
    np.testing.assert_allclose(k.numpy(), [math.exp(1.5 * (e - 1 / e)), math.exp(1.5 * (1 / e - e))], rtol=1e-5)
    np.testing.assert_allclose(method.score_mean.numpy(), [1.5, 1.5])  # running mean over steps
    method.coefficients(torch.tensor([3.0, 3.0]))
    np.testing.assert_allclose(method.score_mean.numpy(), [2.0, 2.0])
    # The min(., 10) cap.
    method.score_mean = torch.tensor([0.0, 20.0])
    k = method.coefficients(torch.tensor([0.0, 0.0]))
    assert abs(k[0].item() - math.exp(15.0)) / math.exp(15.0) < 1e-4


def test_step_scores_feed_the_reference():
    data = toy_dataset()
    method = make_method("agm", data)
    batch = batch_of(data)
    with torch.no_grad():
        o = method.responses(batch)
        p = torch.softmax(o, -1)[:, torch.arange(len(batch)), batch.labels].clamp_min(1e-8)
        s = (-p.log()).mean(1)
        method.compute_loss(batch, ctx_at())
    torch.testing.assert_close(method.score_mean, s, atol=1e-5, rtol=1e-5)


def test_outside_window_no_scaling():
    data = toy_dataset()
    method = make_method("agm", data, hp={"end": 0.5, "clip": False})
    batch = batch_of(data)
    method.model.zero_grad(set_to_none=True)
    F.cross_entropy(method.model(batch), batch.labels).backward()
    ref = {n: p.grad.clone() for n, p in method.model.named_parameters()}
    method.score_mean, method.steps = torch.tensor([2.0, 0.5]), 5
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx_at(epoch=5)).backward()
    for n, p in method.model.named_parameters():
        torch.testing.assert_close(p.grad, ref[n])


def test_conditional_clipping():
    data = toy_dataset()
    method = make_method("agm", data)
    params = list(method.modules().parameters())
    for p in params:
        p.grad = torch.full_like(p, 0.01)
    method.after_backward(None, None)  # head weight grads inside [-1, 1]: untouched
    assert all(torch.allclose(p.grad, torch.full_like(p, 0.01)) for p in params)
    method.model.head.weight.grad[0, 0] = 2.0  # leaves [-1, 1]: total norm clipped to 1
    method.after_backward(None, None)
    total = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
    assert abs(total.item() - 1.0) < 1e-4


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("agm", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    assert len(out["method"].k_history) == 2
