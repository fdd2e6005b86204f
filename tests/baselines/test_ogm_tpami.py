"""OGM (TPAMI 2024): both coefficient formulas by hand, the scores against a numpy reference, which
gradients are scaled (and only those), what is detached, the warm-up and window, a side-by-side step
against the released BML_TPAMI2024 code, and end-to-end runs."""
import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, tiny_av_dataset, toy_dataset
from side_by_side import LR, max_param_diff, method_step

import baselines.ogm_ge as ogm_ge
from baselines.ogm_ge import modulated_tensors
from baselines.ogm_tpami import ogm_tpami_coefficients
from mmbench.batching import SplitTensors


def batch_of(data, n=64, mask=None):
    return SplitTensors(data, "train").batch(torch.arange(n), mask)


def ctx_at(epoch=6, epochs=100, seed=0):
    return SimpleNamespace(epoch=epoch, epochs=epochs, generator=torch.Generator().manual_seed(seed))


def grads_after(method, batch, ctx, modulated=True):
    """Gradients after the method's loss and (``modulated``) its after_backward; else the plain fused CE's."""
    method.model.zero_grad(set_to_none=True)
    if modulated:
        method.compute_loss(batch, ctx).backward()
        method.after_backward(batch, ctx)
    else:
        F.cross_entropy(method.model(batch), batch.labels).backward()
    return {n: p.grad.clone() for n, p in method.model.named_parameters()}


def lead_a(method, factor=4.0):
    """Scale the head block reading modality a, so that a leads the scores clearly."""
    with torch.no_grad():
        method.model.head.fc.weight[:, : method.model.head.feature_dim] *= factor


def test_coefficients_by_hand():
    log = torch.tensor([30.0, 20.0]).log()
    released = ogm_tpami_coefficients(log, 0.8, "pair", "released")
    torch.testing.assert_close(released, torch.tensor([1 - math.tanh(0.8 * 1.5), 1.0]))
    shifted = ogm_tpami_coefficients(log, 0.8, "pair", "shifted")
    torch.testing.assert_close(shifted, torch.tensor([1 - 0.8 * math.tanh(0.5), 1.0]))
    # shifted is continuous at rho = 1 and clamped at 0 for a large alpha
    near = ogm_tpami_coefficients(torch.tensor([1.001, 1.0]).log(), 0.8, "pair", "shifted")
    assert 0.999 < float(near[0]) < 1.0
    big = ogm_tpami_coefficients(torch.tensor([60.0, 20.0]).log(), 2.6, "pair", "shifted")
    torch.testing.assert_close(big, torch.tensor([0.0, 1.0]))
    # three modalities, the ratio to the weakest: 3, 2, 1
    log3 = torch.tensor([30.0, 20.0, 10.0]).log()
    torch.testing.assert_close(ogm_tpami_coefficients(log3, 0.3, "min", "released"),
                               torch.tensor([1 - math.tanh(0.9), 1 - math.tanh(0.6), 1.0]))
    torch.testing.assert_close(ogm_tpami_coefficients(log3, 0.3, "min", "shifted"),
                               torch.tensor([1 - 0.3 * math.tanh(2.0), 1 - 0.3 * math.tanh(1.0), 1.0]))
    # saturated scores: 0 against 0 is a tie, a positive score against 0 is an infinite lead
    inf = float("-inf")
    both_zero, one_zero = torch.tensor([inf, inf]), torch.tensor([0.0, inf])
    for formula in ("released", "shifted"):
        torch.testing.assert_close(ogm_tpami_coefficients(both_zero, 0.8, "pair", formula), torch.ones(2))
    torch.testing.assert_close(ogm_tpami_coefficients(one_zero, 0.8, "pair", "released"), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(ogm_tpami_coefficients(one_zero, 0.8, "pair", "shifted"), torch.tensor([0.2, 1.0]))
    assert torch.isnan(ogm_tpami_coefficients(torch.tensor([float("nan"), 0.0]), 0.8, "pair", "shifted")).all()


def ref_k(method, batch, alpha, formula):
    """Numpy reference: z_m = W_m x_m + b/2, s = sum of the true-class softmax, pair ratio."""
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
    k = 1 - np.tanh(alpha * rho) if formula == "released" else np.clip(1 - alpha * np.tanh(rho - 1), 0, 1)
    return np.where(rho > 1, k, 1.0)


@pytest.mark.parametrize("formula", ["released", "shifted"])
def test_method_coefficients_match_reference(formula):
    data = toy_dataset()
    method = make_method("ogm-tpami", data, epochs=100, hp={"formula": formula})
    batch = batch_of(data)
    method.compute_loss(batch, ctx_at())
    assert not method.last_k.requires_grad  # the coefficients are constants of the step
    np.testing.assert_allclose(method.last_k.numpy(), ref_k(method, batch, 0.8, formula), rtol=1e-5)


def test_loss_is_the_plain_fused_ce_and_only_the_leader_is_scaled():
    data = toy_dataset()
    method = make_method("ogm-tpami", data, epochs=100, hp={"ge": False})
    lead_a(method)
    batch = batch_of(data)
    loss = method.compute_loss(batch, ctx_at())
    torch.testing.assert_close(loss, F.cross_entropy(method.model(batch), batch.labels))
    ref = grads_after(method, batch, ctx_at(), modulated=False)
    got = grads_after(method, batch, ctx_at())
    k = method.last_k
    assert k[0] < 1 and k[1] == 1  # a leads: only a is slowed
    torch.testing.assert_close(k[0], torch.tensor(1 - math.tanh(0.8 * _rho(method, batch))), rtol=1e-5, atol=1e-6)
    scaled = {id(p) for p in modulated_tensors(method.model.encoders["a"], "weights")}
    n_scaled = 0
    for name, p in method.model.named_parameters():
        if id(p) in scaled:
            torch.testing.assert_close(got[name], k[0] * ref[name])
            n_scaled += 1
        else:  # a's biases, every tensor of b, the fusion head: the plain gradient
            torch.testing.assert_close(got[name], ref[name], rtol=0, atol=0)
    assert n_scaled == 2  # the MLP encoder's two linear weights


def _rho(method, batch):
    """s_a / s_b with the b/2 bias split (the released score)."""
    with torch.no_grad():
        feats = method.model.encode(batch)
        W, b = method.model.head.weight, method.model.head.bias
        D = feats[0].shape[1]
        s = [F.softmax(f @ W[:, m * D:(m + 1) * D].T + b / 2, 1).gather(1, batch.labels[:, None]).sum()
             for m, f in enumerate(feats)]
    return float(s[0] / s[1])


@pytest.mark.parametrize("epoch,active", [(0, False), (5, False), (6, True), (60, True), (61, False), (99, False)])
def test_warm_up_and_window_by_default(epoch, active):
    """Released: warm-up epochs 0-5, modulation epochs 6-60 of 100 (defaults start=0.06, end=0.61)."""
    data = toy_dataset()
    method = make_method("ogm-tpami", data, epochs=100, hp={"ge": False})
    lead_a(method)
    batch = batch_of(data)
    ref = grads_after(method, batch, ctx_at(epoch), modulated=False)
    got = grads_after(method, batch, ctx_at(epoch))
    same = all(torch.equal(got[n], ref[n]) for n in ref)
    assert same != active
    assert method.selection_start_epoch() == 6


def test_ge_noise_goes_on_every_selected_tensor_with_the_unmodulated_std(monkeypatch):
    data = toy_dataset()
    method = make_method("ogm-tpami", data, epochs=100)
    assert method.hp["ge"]
    lead_a(method)
    batch = batch_of(data)
    ref = grads_after(method, batch, ctx_at(), modulated=False)
    fixed = {}

    def known_noise(tensors, generator):
        fixed["noise"] = [torch.linspace(-1.0, 2.0, t.numel()).view_as(t) for t in tensors]
        return fixed["noise"]

    monkeypatch.setattr(ogm_ge, "noise_like", known_noise)
    got = grads_after(method, batch, ctx_at())
    k, i = method.last_k, 0
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
    assert i == len(fixed["noise"]) >= 4 and k[0] < 1 == k[1]


def transcribed_bml_step(model, batch, noise, epoch, alpha=0.8, starts=0, ends=60):
    """BML_TPAMI2024 ``Classifier.forward`` scores + ``train``'s OGM_GE block (M = 2, concat), one SGD
    step on a copy of ``model``. ``noise[name]`` is the N(0, 1) draw behind the released
    ``torch.zeros_like(grad).normal_(0, grad.std().item() + 1e-8)``."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    softmax, relu, tanh = torch.nn.Softmax(dim=1), torch.nn.ReLU(inplace=True), torch.nn.Tanh()
    out_1, out_2 = ref.encode(batch)
    label = batch.labels
    w = ref.head.fc.weight.clone().detach()
    b = ref.head.fc.bias.clone().detach()
    d1 = out_1.shape[1]
    t1 = torch.mm(out_1, torch.transpose(w[:, :d1], 0, 1)) + b / 2
    t2 = torch.mm(out_2, torch.transpose(w[:, d1:], 0, 1)) + b / 2
    performance_1 = sum([softmax(t1)[i][int(label[i].item())] for i in range(t1.shape[0])])
    performance_2 = sum([softmax(t2)[i][int(label[i].item())] for i in range(t2.shape[0])])
    out = ref.head.fc(torch.cat([out_1, out_2], dim=1))
    loss = torch.nn.CrossEntropyLoss()(out, label)
    loss.backward()
    warm_up = 1 if epoch <= 5 else 0
    if warm_up == 0:
        radio_1 = performance_1 / performance_2
        radio_2 = performance_2 / performance_1
        if radio_1 > 1:
            coeff_1, coeff_2 = 1 - tanh(alpha * relu(radio_1)), 1
        else:
            coeff_1, coeff_2 = 1, 1 - tanh(alpha * relu(radio_2))
        if starts <= epoch <= ends:
            first, second = list(ref.encoders)
            for name, parms in ref.named_parameters():
                for enc, coeff in ((first, coeff_1), (second, coeff_2)):
                    if name.startswith(f"encoders.{enc}.") and parms.grad is not None and len(parms.grad.size()) == 4:
                        parms.grad = parms.grad * coeff + noise[name] * (parms.grad.std().item() + 1e-8)
    opt.step()
    return ref


@pytest.mark.parametrize("epoch", [6, 5])
def test_side_by_side_one_step(epoch, monkeypatch):
    data = tiny_av_dataset(n_train=8)
    method = make_method("ogm-tpami", data, epochs=100, hp={"modulate": "conv"}, encoder="resnet18")
    lead_a(method, 3.0)
    batch = batch_of(data, 8)
    g = torch.Generator().manual_seed(3)
    noise = {n: torch.randn(p.shape, generator=g) for n, p in method.model.named_parameters()}

    def same_noise(tensors, generator):
        by_grad = {id(p.grad): n for n, p in method.model.named_parameters() if p.grad is not None}
        return [noise[by_grad[id(t)]] for t in tensors]

    monkeypatch.setattr(ogm_ge, "noise_like", same_noise)
    ref = transcribed_bml_step(method.model, batch, noise, epoch)
    method_step(method, data, batch, epoch=epoch)
    diff = max_param_diff(method.model, ref)
    assert diff < 1e-6, diff
    if epoch == 6:
        assert method.last_k.min() < 1 == method.last_k.max()  # the modulation did act (one encoder slowed)
        assert sum(p.dim() == 4 for p in method.model.encoders["audio"].parameters()) >= 10


def test_rejects_bad_settings():
    with pytest.raises(ValueError, match="pair"):
        make_method("ogm-tpami", toy_dataset(three=True), hp={"rule": "pair"})
    with pytest.raises(ValueError, match="formula"):
        make_method("ogm-tpami", toy_dataset(), hp={"formula": "paper"})
    with pytest.raises(ValueError, match="only slows"):
        make_method("ogm-tpami", toy_dataset(), hp={"rule": "mean"})
    with pytest.raises(ValueError, match="fusion"):
        make_method("ogm-tpami", toy_dataset(), fusion="gated")
    assert make_method("ogm-tpami", toy_dataset(three=True)).rule == "min"


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("ogm-tpami", toy_dataset(three=three), epochs=2, pattern=pattern)
    m = out["metrics"]
    assert np.isfinite(m["test_acc"]) and m["best_epoch"] >= 1  # epoch 0 is the warm-up
    assert len(out["method"].k_history) == 1  # modulated in epoch 1 only
    assert any(k.startswith("k") for k in out["history"][1]["coefficients"])
