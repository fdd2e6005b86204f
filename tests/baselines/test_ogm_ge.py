"""OGM-GE: the coefficient formula, which gradients are scaled by k (and only those), the GE noise
std, the modulation window, and end-to-end runs."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

from baselines.ogm_ge import modulated_tensors, unimodal_logits_ogm
from kernels import ogm_ge_coefficients
from mmbench.batching import SplitTensors


def batch_of(data, n=64, mask=None):
    return SplitTensors(data, "train").batch(torch.arange(n), mask)


def ctx_at(epoch=0, epochs=10, seed=0):
    return SimpleNamespace(epoch=epoch, epochs=epochs, generator=torch.Generator().manual_seed(seed))


def plain_grads(method, batch):
    """Gradients of the plain fused CE (no modulation)."""
    method.model.zero_grad(set_to_none=True)
    F.cross_entropy(method.model(batch), batch.labels).backward()
    return {n: p.grad.clone() for n, p in method.model.named_parameters()}


def ogm_grads(method, batch, ctx):
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    method.after_backward(batch, ctx)
    return {n: p.grad.clone() for n, p in method.model.named_parameters()}


def ref_k(method, batch, alpha):
    """Numpy reference of section 3.1: z_m = W_m x_m + b/2, s = sum p_true, pair rule."""
    with torch.no_grad():
        feats = [f.double().numpy() for f in method.model.encode(batch)]
    W = method.model.head.weight.detach().double().numpy()
    b = method.model.head.bias.detach().double().numpy()
    D, y = feats[0].shape[1], batch.labels.numpy()
    s = []
    for m, x in enumerate(feats):
        z = x @ W[:, m * D : (m + 1) * D].T + b / 2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        s.append(p[np.arange(len(y)), y].sum())
    rho = np.array([s[0] / s[1], s[1] / s[0]])
    return np.where(rho > 1, 1 - np.tanh(alpha * rho), 1.0)


def test_coefficient_rules_hand_computed():
    s = torch.tensor([30.0, 20.0])
    k = ogm_ge_coefficients(s, 0.8, rule="pair")
    assert torch.allclose(k, torch.tensor([1 - math.tanh(0.8 * 1.5), 1.0]), atol=1e-6)
    s3 = torch.tensor([30.0, 20.0, 10.0])
    k = ogm_ge_coefficients(s3, 0.3, rule="min")  # ratio to the weakest: 3, 2, 1
    assert torch.allclose(k, torch.tensor([1 - math.tanh(0.9), 1 - math.tanh(0.6), 1.0]), atol=1e-6)
    k = ogm_ge_coefficients(s3, 0.3, rule="mean")  # ratio to the mean 20: 1.5, 1, 0.5 -> boosts the weakest
    assert torch.allclose(k, torch.tensor([1 - math.tanh(0.15), 1.0, 1 + math.tanh(0.15)]), atol=1e-6)


def test_unimodal_logits_use_b_over_m_and_sum_to_fused():
    data = toy_dataset(three=True)
    method = make_method("ogm-ge", data)
    batch = batch_of(data)
    with torch.no_grad():
        feats = method.model.encode(batch)
        z = unimodal_logits_ogm(method.model.head, feats)
        fused = method.model.head(feats)
    assert torch.allclose(z.sum(0), fused, atol=1e-5)
    W, b = method.model.head.weight, method.model.head.bias
    assert torch.allclose(z[1], feats[1] @ W[:, 64:128].T + b / 3, atol=1e-5)
    summed = make_method("ogm-ge", data, fusion="sum")  # official sum fusion: z_m = fc_m(x_m)
    with torch.no_grad():
        feats = summed.model.encode(batch)
        z = unimodal_logits_ogm(summed.model.head, feats)
        assert torch.allclose(z.sum(0), summed.model.head(feats), atol=1e-5)


def test_method_coefficients_match_reference():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"alpha": 0.8})
    batch = batch_of(data)
    method.compute_loss(batch, ctx_at())
    np.testing.assert_allclose(method.last_k.numpy(), ref_k(method, batch, 0.8), rtol=1e-5)


def test_only_dominant_encoder_weights_scaled_by_k_without_noise():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"ge": False, "alpha": 0.8})
    batch = batch_of(data)
    ref = plain_grads(method, batch)
    got = ogm_grads(method, batch, ctx_at())
    k = method.last_k
    dom = int(torch.argmin(k))
    assert k[dom] < 1 and k[1 - dom] == 1  # pair rule: exactly one modality slowed
    dom_name, other = data.modalities[dom], data.modalities[1 - dom]
    scaled = {id(p) for p in modulated_tensors(method.model.encoders[dom_name], "weights")}
    n_scaled = 0
    for name, p in method.model.named_parameters():
        if name.startswith(f"encoders.{dom_name}.") and id(p) in scaled:
            assert p.dim() >= 2
            torch.testing.assert_close(got[name], k[dom] * ref[name])
            n_scaled += 1
        else:  # biases of the dominant encoder, the other encoder, the fusion head: untouched
            torch.testing.assert_close(got[name], ref[name], rtol=0, atol=0)
    assert n_scaled == 2  # the MLP encoder's two linear weights
    assert any(n.startswith(f"encoders.{other}.") for n in got)


def test_modulate_conv_touches_only_conv_kernels():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"ge": False, "modulate": "conv"})
    targets = [modulated_tensors(method.model.encoders[m], "conv") for m in data.modalities]
    assert targets[0] == []  # the MLP encoder of "a" has no conv kernel (official rule leaves it alone)
    assert len(targets[1]) == 2 and all(p.dim() == 3 for p in targets[1])
    everything = modulated_tensors(method.model.encoders["a"], "all")
    assert len(everything) == 4  # weights and biases


def test_ge_noise_has_the_unmodulated_gradient_std():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"ge": True, "alpha": 0.8})
    batch = batch_of(data)
    ref = plain_grads(method, batch)
    got = ogm_grads(method, batch, ctx_at(seed=3))
    k = method.last_k
    checked = 0
    for m, name in enumerate(data.modalities):  # noise on EVERY modality's tensors (official)
        for pname, p in method.model.encoders[name].named_parameters():
            full = f"encoders.{name}.{pname}"
            if p.dim() < 2:
                torch.testing.assert_close(got[full], ref[full], rtol=0, atol=0)
                continue
            noise = got[full] - k[m] * ref[full]
            if p.numel() >= 500:
                ratio = (noise.std() / ref[full].std()).item()
                assert 0.85 < ratio < 1.15, (full, ratio)
                assert abs(noise.mean().item()) < 0.15 * ref[full].std().item()
                checked += 1
    assert checked >= 3
    for name in ref:
        if name.startswith("head."):
            torch.testing.assert_close(got[name], ref[name], rtol=0, atol=0)


def test_noise_is_reproducible_from_the_generator():
    data = toy_dataset()
    method = make_method("ogm-ge", data)
    batch = batch_of(data)
    a = ogm_grads(method, batch, ctx_at(seed=5))
    b = ogm_grads(method, batch, ctx_at(seed=5))
    c = ogm_grads(method, batch, ctx_at(seed=6))
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert not all(torch.equal(a[n], c[n]) for n in a)


def test_no_modulation_outside_the_window():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"start": 0.0, "end": 0.5})
    batch = batch_of(data)
    ref = plain_grads(method, batch)
    got = ogm_grads(method, batch, ctx_at(epoch=5, epochs=10))  # [0, 5) -> epoch 5 is outside
    assert all(torch.equal(got[n], ref[n]) for n in ref)


def test_modality_absent_from_batch_gives_no_modulation():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"ge": False})
    mask = torch.ones(len(data.split["train"]), 2)
    mask[:, 1] = 0
    batch = batch_of(data, mask=mask)
    method.compute_loss(batch, ctx_at())
    assert torch.equal(method.last_k, torch.ones(2))


def test_rejects_bad_settings():
    data = toy_dataset(three=True)
    with pytest.raises(ValueError):
        make_method("ogm-ge", data, hp={"rule": "pair"})
    with pytest.raises(ValueError):
        make_method("ogm-ge", toy_dataset(), fusion="gated")
    assert make_method("ogm-ge", data).rule == "min"


@pytest.mark.parametrize("three, pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("ogm-ge", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["test_acc"] > 0.3
    assert all(np.isfinite(h["loss"]) for h in out["history"])
    assert len(out["method"].k_history) >= 1


def test_log_space_score_matches_masked_mean_and_survives_underflow():
    """OGM-GE scores in log space: log of the masked mean where fp32 can hold it, finite where it cannot."""
    from baselines._balance_utils import masked_mean
    from baselines.ogm_ge import masked_log_mean_exp

    g = torch.Generator().manual_seed(0)
    ce = torch.rand(3, 6, generator=g, dtype=torch.float64) * 5
    mask = torch.tensor([[1, 1, 0]] * 3 + [[1, 0, 0]] * 3, dtype=torch.float64)  # modality 2 absent: fill
    torch.testing.assert_close(masked_log_mean_exp(-ce, mask), masked_mean((-ce).exp(), mask).log())
    ce32 = torch.tensor([[300.0, 310.0], [200.0, 205.0]])  # exp(-ce) = 0 in fp32 for every entry
    log_s = masked_log_mean_exp(-ce32, torch.ones(2, 2))
    assert torch.isfinite(log_s).all() and float(log_s[1] - log_s[0]) > 90  # modality 1 is ahead by e^95


def test_noise_branch_scales_by_k_before_adding_noise(monkeypatch):
    """Default OGM-GE (``ge=True``), with the noise draw replaced by a known tensor: every selected
    tensor of encoder m gets exactly ``k_m * g + noise * (std(g) + 1e-8)`` (std of the un-modulated
    gradient), so swapped or missing coefficients in the noise branch show exactly, not statistically."""
    import baselines.ogm_ge as ogm

    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"alpha": 0.8})
    assert method.hp["ge"]
    batch = batch_of(data)
    ref = plain_grads(method, batch)
    fixed = {}

    def known_noise(tensors, generator):
        fixed["noise"] = [torch.linspace(-1.0, 2.0, t.numel()).view_as(t) for t in tensors]
        return fixed["noise"]

    monkeypatch.setattr(ogm, "noise_like", known_noise)
    got = ogm_grads(method, batch, ctx_at())
    k = method.last_k
    np.testing.assert_allclose(k.numpy(), ref_k(method, batch, 0.8), rtol=1e-5)
    assert k.min() < 1 and k.max() == 1  # one modality slowed: a swap of k would show
    i = 0
    for m, name in enumerate(data.modalities):
        selected = {id(p) for p in modulated_tensors(method.model.encoders[name], "weights")}
        for pname, p in method.model.encoders[name].named_parameters():
            full = f"encoders.{name}.{pname}"
            if id(p) not in selected:
                torch.testing.assert_close(got[full], ref[full], rtol=0, atol=0)
                continue
            expected = k[m] * ref[full] + fixed["noise"][i] * (ref[full].std() + 1e-8)
            torch.testing.assert_close(got[full], expected, rtol=1e-5, atol=1e-7)
            i += 1
    assert i == len(fixed["noise"]) >= 4  # every selected tensor of both encoders checked


def test_no_modulation_after_the_window_closes_though_k_was_computed_inside_it():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"start": 0.0, "end": 0.5, "ge": False})
    with torch.no_grad():
        method.model.head.fc.weight[:, :64] *= 4.0  # a dominant modality: k < 1 inside the window
    batch = batch_of(data)
    inside = ogm_grads(method, batch, ctx_at(epoch=0, epochs=10))
    assert float(method.last_k.min()) < 1.0  # it modulated inside the window
    ref = plain_grads(method, batch)
    assert not all(torch.equal(inside[n], ref[n]) for n in ref)
    outside = ogm_grads(method, batch, ctx_at(epoch=5, epochs=10))  # the stale k must not apply now
    assert all(torch.equal(outside[n], ref[n]) for n in ref)


def test_epoch_history_is_the_mean_of_the_steps_coefficients():
    data = toy_dataset()
    method = make_method("ogm-ge", data, hp={"ge": False})
    with torch.no_grad():
        method.model.head.fc.weight[:, :64] *= 4.0
    ctx, ks = ctx_at(), []
    for start in (0, 16, 32):
        method.compute_loss(SplitTensors(data, "train").batch(torch.arange(start, start + 32)), ctx)
        ks.append(method.last_k.clone())
    method.on_epoch_end(ctx)
    torch.testing.assert_close(torch.tensor(method.k_history[-1]), torch.stack(ks).mean(0))
    assert len(set(tuple(k.tolist()) for k in ks)) > 1  # the steps' k differ, so the mean is a real check
    method.compute_loss(batch_of(data, 32), ctx)  # the next epoch starts from nothing
    method.on_epoch_end(ctx)
    torch.testing.assert_close(torch.tensor(method.k_history[-1]), method.last_k)


def test_noise_generator_is_made_once_per_training_context(monkeypatch):
    import baselines.ogm_ge as ogm

    calls = []
    real = ogm.device_generator
    monkeypatch.setattr(ogm, "device_generator", lambda gen, device: calls.append(gen) or real(gen, device))
    data = toy_dataset()
    method = make_method("ogm-ge", data)
    batch, ctx = batch_of(data), ctx_at()
    for _ in range(3):
        ogm_grads(method, batch, ctx)
    assert len(calls) == 1  # on a GPU each new one would consume a draw of the run's generator
    ogm_grads(method, batch, ctx_at(seed=1))  # a new run's context: a new generator
    assert len(calls) == 2


def test_log_mean_exp_by_hand_with_one_sample_and_an_absent_modality():
    from baselines.ogm_ge import masked_log_mean_exp

    v = torch.tensor([[-0.5, -1.25, -3.0], [-2.0, -0.75, -1.5], [-1.0, -2.0, -0.25]], dtype=torch.float64)
    # modality 0: all three samples; modality 1: only sample 1; modality 2: absent
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [1, 0, 0]], dtype=torch.float64)
    got = masked_log_mean_exp(v, mask)
    m0 = math.log(sum(math.exp(x) for x in v[0].tolist()) / 3)
    m1 = float(v[1, 1])  # one sample: its own value, not halved
    fill = math.log((math.exp(m0) + math.exp(m1)) / 2)  # the mean of the present modalities' means
    torch.testing.assert_close(got, torch.tensor([m0, m1, fill], dtype=torch.float64), rtol=0, atol=1e-14)
    # a batch of one sample, one modality absent: the absent one gets the present one's value
    one = masked_log_mean_exp(v[:2, :1], torch.tensor([[1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(one, torch.tensor([-0.5, -0.5], dtype=torch.float64), rtol=0, atol=0)
