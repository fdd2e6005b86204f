"""ARL: the coefficient formula, which gradients are scaled by (1 + w_m), warm-up, the released option."""
import math
import os
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

import kernels
from mmbench.batching import SplitTensors
from mmbench.methods.arl import warmup_end


# ----------------------------------------------------------------------------- references
def ref_coefficients(uni: np.ndarray, temperature: float, floor: float = 0.3) -> np.ndarray:
    """Independent numpy reference of docs/methods.md 1(a) step 3, uni ``[M, B, C]`` float64.

    Two modalities: softmax(T [d_v q_a, d_a q_v]); M > 2: softmax(T q_m sum_{j != m} d_j).
    """
    p = np.exp(uni - uni.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    H = (-(p * np.log(p + 1e-16)).sum(-1)).mean(-1)  # [M] batch-mean entropy
    h = np.maximum(H / H.sum(), floor)
    q = (1 / h) / (1 / h).sum()
    D = np.abs(uni).mean(1).sum(-1)  # [M] sum over classes of the batch-mean |z|
    d = D / D.sum()
    x = temperature * (np.array([d[1] * q[0], d[0] * q[1]]) if len(d) == 2 else q * (d.sum() - d))
    e = np.exp(x - x.max())
    return e / e.sum()


def batch_of(data, n=48, dtype=torch.float64, mask=None):
    split = SplitTensors(data, "train")
    b = split.batch(torch.arange(n), mask)
    return b.__class__({k: v.to(dtype) for k, v in b.inputs.items()}, b.labels, b.mask.to(dtype), b.index, b.modalities)


def grads(method):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in method.model.named_parameters()}


def method_grads(method, batch, ctx):
    method.model.zero_grad(set_to_none=True)
    loss = method.compute_loss(batch, ctx)
    loss.backward()
    return loss.detach(), grads(method)


def unscaled_grads(method, batch, gamma):
    """The ARL loss without any gradient scaling, computed with plain autograd (no kernels)."""
    method.model.zero_grad(set_to_none=True)
    feats = method.model.encode(batch)
    loss = F.cross_entropy(method.model.head(feats), batch.labels)
    for m, z in enumerate(method.model.unimodal_logits(feats)):
        present = batch.mask[:, m]
        ce = F.cross_entropy(z, batch.labels, reduction="none")
        loss = loss + gamma * (ce * present).sum() / present.sum().clamp_min(1)
    loss.backward()
    return loss.detach(), grads(method)


def build(three=False, fusion="concat", **hp):
    data = toy_dataset(three=three)
    method = make_method("arl", data, hp=hp, fusion=fusion)
    method.model.double().eval()
    return data, method


def assert_scaled(method, got, ref, scale):
    for name, g in got.items():
        if name.startswith("encoders."):
            m = method.info.modalities.index(name.split(".")[1])
            torch.testing.assert_close(g, scale[m] * ref[name], rtol=1e-10, atol=1e-12)
        else:  # the fusion head is never scaled
            torch.testing.assert_close(g, ref[name], rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------------- coefficients
def test_coefficients_hand_computed_two_modalities():
    # H = [0.5, 2.0] -> h = [0.2, 0.8] -> floor -> [0.3, 0.8]; q_a = 0.8 / 1.1 = 8/11.
    # D = [3, 1] -> d = [0.75, 0.25]. w_a = sigmoid(T (q_a - d_a)) = sigmoid(4 (8/11 - 3/4)).
    w = kernels.arl_coefficients(torch.tensor([0.5, 2.0], dtype=torch.float64),
                                 torch.tensor([3.0, 1.0], dtype=torch.float64), 4.0, floor=0.3)
    w_a = 1 / (1 + math.exp(-4 * (8 / 11 - 0.75)))
    torch.testing.assert_close(w, torch.tensor([w_a, 1 - w_a], dtype=torch.float64))
    assert abs(w_a - 0.47729) < 1e-5  # the number worked out by hand
    # softmax(T [d_v q_a, d_a q_v]) form of the paper
    q_a, q_v, d_a, d_v = 8 / 11, 3 / 11, 0.75, 0.25
    e = np.exp(4 * np.array([d_v * q_a, d_a * q_v]))
    torch.testing.assert_close(w, torch.tensor(e / e.sum()))


@pytest.mark.parametrize("three", [False, True])
def test_method_coefficients_match_reference(three):
    _, method = build(three=three, temperature=8.0)
    g = torch.Generator().manual_seed(1)
    M = 3 if three else 2
    spread = torch.tensor([3.0, 0.5, 1.0][:M], dtype=torch.float64).view(M, 1, 1)
    uni = torch.randn(M, 32, 4, generator=g, dtype=torch.float64) * spread
    w = method.coefficients(uni, torch.randint(0, 4, (32,), generator=g))
    torch.testing.assert_close(w, torch.from_numpy(ref_coefficients(uni.numpy(), 8.0)), rtol=1e-8, atol=1e-10)
    assert abs(float(w.sum()) - 1) < 1e-12


# ----------------------------------------------------------------------------- gradient scaling
@pytest.mark.parametrize("three,fusion", [(False, "concat"), (True, "concat"), (False, "sum"), (False, "gated"),
                                          (True, "film")])
def test_encoder_gradients_scaled_head_unchanged(three, fusion):
    data, method = build(three=three, fusion=fusion, gamma=3.0, temperature=4.0)
    batch = batch_of(data)
    ctx = SimpleNamespace(epoch=5, epochs=10)
    assert method.active(ctx)
    loss, got = method_grads(method, batch, ctx)
    ref_loss, ref = unscaled_grads(method, batch, gamma=3.0)
    torch.testing.assert_close(loss, ref_loss)
    # the coefficients used are those of this batch's unimodal logits
    with torch.no_grad():
        uni = torch.stack(method.model.unimodal_logits(method.model.encode(batch))).numpy()
    w = ref_coefficients(uni, 4.0)
    torch.testing.assert_close(method.last_weights, torch.from_numpy(w), rtol=1e-8, atol=1e-10)
    # exact factors: the coefficients the step used (the numpy reference's log(p + 1e-16) differs ~1e-9)
    assert_scaled(method, got, ref, 1 + method.last_weights)
    # the scaling is genuinely asymmetric on this batch
    assert abs(w[0] - w[1]) > 1e-3


def test_warmup_no_scaling_and_gamma_one():
    data, method = build(gamma=3.0)
    batch = batch_of(data)
    ctx = SimpleNamespace(epoch=1, epochs=30)  # warm-up: epochs 0..floor(0.05 * 30) = 0..1
    assert not method.active(ctx)
    loss, got = method_grads(method, batch, ctx)
    ref_loss, ref = unscaled_grads(method, batch, gamma=1.0)
    torch.testing.assert_close(loss, ref_loss)
    assert_scaled(method, got, ref, [1.0, 1.0])
    assert method.last_weights is None
    assert method.active(SimpleNamespace(epoch=2, epochs=30))


def test_warmup_end_scaling():
    assert warmup_end(0.05, 100) == 5  # the released start = 5 of 100 epochs
    assert warmup_end(0.05, 30) == 1
    assert warmup_end(0.05, 2) == 0
    assert warmup_end(5, 30) == 5  # absolute epochs


@pytest.mark.parametrize("three", [False, True])
def test_released_uniform_one_and_a_half(three):
    data, method = build(three=three, gamma=2.0, weights="released")
    batch = batch_of(data)
    ctx = SimpleNamespace(epoch=3, epochs=10)
    loss, got = method_grads(method, batch, ctx)
    ref_loss, ref = unscaled_grads(method, batch, gamma=2.0)
    torch.testing.assert_close(loss, ref_loss)
    assert_scaled(method, got, ref, [1.5] * (3 if three else 2))


def test_missing_modality_excluded_from_unimodal_ce():
    data, method = build(gamma=2.0)
    mask = torch.ones(len(data.split["train"]), 2)
    mask[::3, 1] = 0  # modality b missing on every third sample
    mask[1::5, 0] = 0
    batch = batch_of(data, mask=mask)
    ctx = SimpleNamespace(epoch=3, epochs=10)
    loss, got = method_grads(method, batch, ctx)
    ref_loss, ref = unscaled_grads(method, batch, gamma=2.0)
    torch.testing.assert_close(loss, ref_loss)
    assert_scaled(method, got, ref, 1 + method.last_weights)


def test_one_modality_rejected():
    from mmbench.data.base import ModalitySpec, MultimodalDataset

    data = toy_dataset()
    one = MultimodalDataset("one", [ModalitySpec("a", "vector", (10,))], {"a": data.arrays["a"]}, data.labels,
                            data.num_classes, data.split)
    with pytest.raises(ValueError, match="two or more"):
        make_method("arl", one)


# ----------------------------------------------------------------------------- end to end
@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="CPU Triton interpreter not enabled")
def test_triton_backend_matches_eager():
    """The method's Triton path (run by the CPU interpreter here) gives the eager loss and gradients."""
    data = toy_dataset()
    out = {}
    for backend in ("eager", "triton"):
        method = make_method("arl", data, hp={"backend": backend})
        batch = SplitTensors(data, "train").batch(torch.arange(32))
        loss = method.compute_loss(batch, SimpleNamespace(epoch=5, epochs=10))
        loss.backward()
        out[backend] = (loss.detach(), {n: p.grad for n, p in method.model.named_parameters()})
    torch.testing.assert_close(out["triton"][0], out["eager"][0], rtol=1e-5, atol=1e-6)
    for n, g in out["eager"][1].items():
        torch.testing.assert_close(out["triton"][1][n], g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("three,pattern,weights", [(False, "complete", "paper"), (True, "complete", "paper"),
                                                    (False, "dropout", "released")])
def test_quick_fit(three, pattern, weights):
    out = quick_fit("arl", toy_dataset(three=three), epochs=2, pattern=pattern, hp={"weights": weights})
    metrics = out["metrics"]
    assert math.isfinite(metrics["test_acc"]) and metrics["test_acc"] > 0.3
    assert all(math.isfinite(v) for v in metrics["unimodal_acc"].values())
    assert len(metrics["unimodal_acc"]) == (3 if three else 2)
    method = out["method"]
    # epoch 0 is warm-up (floor(0.05 * 2) = 0), epoch 1 is active and logged its mean coefficients
    assert len(method.weight_history) == 1 and abs(sum(method.weight_history[0]) - 1) < 1e-5


def test_two_modality_coefficient_uses_entropy_for_q_and_logit_size_for_d():
    """Two modalities whose entropy and dependence shares differ, with the entropy floor active: the
    step's ``w`` is ``softmax(T [d_v q_a, d_a q_v])`` with ``q`` from the entropies and ``d`` from the
    mean |logit|. Swapping the two statistics gives the same ``w`` when the floor is inactive (the
    formula is symmetric then), so this batch is built to hit the floor."""
    data, method = build(temperature=4.0)
    with torch.no_grad():  # modality a: confident (low entropy share) and large logits
        D = method.model.feature_dim
        method.model.head.weight[:, :D] *= 40.0
    batch = batch_of(data)
    method_grads(method, batch, SimpleNamespace(epoch=5, epochs=10))
    with torch.no_grad():
        uni = torch.stack(method.model.unimodal_logits(method.model.encode(batch)))  # [2, B, C]
    logp = torch.log_softmax(uni, -1)
    H = -(logp.exp() * logp).sum(-1).mean(1)  # [2] batch-mean entropy
    Dm = uni.abs().mean(1).sum(-1)  # [2] sum over classes of the batch-mean |z|

    def arl_w(ent, dep):
        h = torch.clamp_min(ent / ent.sum(), 0.3)
        q = (1 / h) / (1 / h).sum()
        d = dep / dep.sum()
        return torch.softmax(4.0 * torch.stack([d[1] * q[0], d[0] * q[1]]), 0)

    assert float((H / H.sum()).min()) < 0.3  # the floor is active
    expected, swapped = arl_w(H, Dm), arl_w(Dm, H)
    assert float((expected - swapped).abs().max()) > 0.05  # the test can tell the two apart
    torch.testing.assert_close(method.last_weights, expected, rtol=1e-7, atol=1e-9)


def test_floor_and_temperature_settings_reach_both_coefficient_paths():
    """Non-default ``floor`` and ``temperature`` are used by the step and by :meth:`ARL.coefficients`
    (with the defaults, dropping either argument would go unnoticed: the kernel's defaults agree)."""
    data, method = build(floor=0.55, temperature=2.5)
    batch = batch_of(data)
    method_grads(method, batch, SimpleNamespace(epoch=5, epochs=10))
    with torch.no_grad():
        uni = torch.stack(method.model.unimodal_logits(method.model.encode(batch)))
    expected = torch.from_numpy(ref_coefficients(uni.numpy(), 2.5, floor=0.55))
    assert float((expected - torch.from_numpy(ref_coefficients(uni.numpy(), 4.0))).abs().max()) > 1e-3
    assert float((expected - torch.from_numpy(ref_coefficients(uni.numpy(), 2.5))).abs().max()) > 1e-4
    torch.testing.assert_close(method.last_weights, expected, rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(method.coefficients(uni, batch.labels), expected, rtol=1e-7, atol=1e-9)


def test_ce_weights_by_hand_with_a_modality_on_one_sample():
    """``[M + 1, B]`` weights: 1 for the fused CE; ``coef * B / n_m`` on the ``n_m`` samples having m, so
    the kernel's mean over B gives ``coef * mean_{b has m} CE(z_m)``; exact for ``n_m = 1`` and 0 too."""
    from mmbench.methods.arl import ce_weights

    mask = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])  # b once, c never
    expected = torch.tensor([[1.0, 1.0, 1.0, 1.0],
                             [3.0 * 4 / 3, 3.0 * 4 / 3, 0.0, 3.0 * 4 / 3],
                             [0.0, 3.0 * 4 / 1, 0.0, 0.0],
                             [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(ce_weights(mask, 3.0), expected)
