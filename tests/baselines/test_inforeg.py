"""InfoReg: the strength formula by hand, the window signal against the released trace arithmetic, which
tensors get the proximal pull (only the leader's encoder, never the head), nothing outside the window,
the Fisher trace, side-by-side steps against the released train_epoch, and end-to-end runs."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset
from side_by_side import LR, max_param_diff

from baselines.inforeg import regulation_strengths, window_signal
from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext


def batch_of(data, n=16):
    return SplitTensors(data, "train").batch(torch.arange(n))


def test_strengths_by_hand():
    beta = regulation_strengths(torch.tensor([5.0, 3.5]), 0.95)
    torch.testing.assert_close(beta, torch.tensor([0.95 * math.exp(math.tanh(1.5)), 0.0]))
    beta = regulation_strengths(torch.tensor([3.0, 3.2, 1.0]), 0.1)  # M = 3: the leader, gap to the runner-up
    torch.testing.assert_close(beta, torch.tensor([0.0, 0.1 * math.exp(math.tanh(0.2)), 0.0]))
    assert regulation_strengths(torch.tensor([2.0, 2.0]), 0.95).sum() == 0  # a tie: none (released elif/else)


def released_k(traces):
    """main.py: audio_trace_list = [0] * 10, appended each epoch; train_epoch's k."""
    lst = [0] * 10
    ks = []
    for epoch, t in enumerate(traces + [None]):
        if epoch == 0:
            k = 1
        else:
            tr1 = sum(lst[-10:]) / 10
            tr2 = sum(lst[-11:-1]) / 10
            k = (tr1 - tr2) / tr1
        ks.append(k)
        if t is not None:
            lst.append(t)
    return ks


def test_window_signal_is_the_released_arithmetic():
    g = torch.Generator().manual_seed(0)
    traces = (torch.rand(25, generator=g) * torch.linspace(1, 5, 25)).tolist()
    ours = [window_signal(traces[:e], 10) for e in range(len(traces) + 1)]
    assert ours == pytest.approx(released_k(traces), rel=1e-12, abs=1e-12)
    assert window_signal([0.0, 0.0], 10) == 0.0  # nothing acquired: outside the window


def make_ctx(method, data):
    opt = torch.optim.SGD([p for p in method.modules().parameters() if p.requires_grad], lr=LR)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0), None, 64, None)
    return ctx


def perturbed(params, seed=3):
    g = torch.Generator().manual_seed(seed)
    return [p.detach() + 0.05 * torch.randn(p.shape, generator=g) for p in params]


def start_epoch_with_anchor(method, ctx):
    """on_fit_start + on_epoch_start, then epoch-start weights that differ from the current ones."""
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    method.anchors = [perturbed(params, seed=3 + m) for m, params in enumerate(method.encoder_params)]


def grads_after_backward(method, batch, ctx):
    method.model.zero_grad(set_to_none=True)
    method.compute_loss(batch, ctx).backward()
    method.after_backward(batch, ctx)
    return {n: p.grad.clone() for n, p in method.model.named_parameters() if p.grad is not None}


def test_only_the_leaders_encoder_is_pulled_toward_its_epoch_start_weights():
    data = toy_dataset()
    method = make_method("inforeg", data)
    with torch.no_grad():
        method.model.head.fc.weight[:, :64] *= 4.0  # a leads
    batch = batch_of(data)
    ctx = make_ctx(method, data)
    start_epoch_with_anchor(method, ctx)
    inside = grads_after_backward(method, batch, ctx)
    beta = method._beta.clone()
    assert beta[0] > 0 and beta[1] == 0
    method.k = 0.0  # outside the window: the plain gradient of the three CEs
    outside = grads_after_backward(method, batch, ctx)
    names = dict(method.model.named_parameters())
    anchors = {id(p): a for params, anc in zip(method.encoder_params, method.anchors) for p, a in zip(params, anc)}
    for n, g in inside.items():
        p = names[n]
        if n.startswith("encoders.a."):
            torch.testing.assert_close(g - outside[n], beta[0] * (p.detach() - anchors[id(p)]))
        else:  # encoder b and the fusion head: untouched
            torch.testing.assert_close(g, outside[n])
    # outside the window the loss is fused CE + the two unimodal CEs through the shared head (b / M)
    feats = method.model.encode(batch)
    W, b = method.model.head.fc.weight, method.model.head.fc.bias
    ref = F.cross_entropy(method.model.head(feats), batch.labels) + sum(
        F.cross_entropy(f @ W[:, m * 64:(m + 1) * 64].T + b / 2, batch.labels) for m, f in enumerate(feats))
    torch.testing.assert_close(method.compute_loss(batch, ctx), ref)


def released_step(model, anchor, batch, k, fisher_of):
    """One step of InfoReg_CVPR2025 main.py train_epoch (concat, M = 2, D = 64), SGD without momentum.
    Returns the model after the step and the squared gradients the released fim accumulates."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    label = batch.labels
    a, v = ref.encode(batch)
    out = ref.head([a, v])
    W, bias = ref.head.fc.weight, ref.head.fc.bias
    out_v = torch.mm(v, torch.transpose(W[:, 64:], 0, 1)) + bias / 2
    out_a = torch.mm(a, torch.transpose(W[:, :64], 0, 1)) + bias / 2
    criterion = torch.nn.CrossEntropyLoss()
    loss, loss_out_a, loss_out_v = criterion(out, label), criterion(out_a, label), criterion(out_v, label)
    loss_out_v.backward(retain_graph=True)
    loss_out_a.backward(retain_graph=True)
    loss.backward()
    softmax = torch.nn.Softmax(dim=1)
    score_v = sum([softmax(out_v)[i][label[i]] for i in range(out_v.size(0))])
    score_a = sum([softmax(out_a)[i][label[i]] for i in range(out_a.size(0))])
    tanh = torch.nn.Tanh()
    if score_a > score_v and k > 0.05:
        beta, beta2 = 0.95 * torch.exp(tanh(score_a - score_v)), 0
    elif score_a < score_v and k > 0.05:
        beta, beta2 = 0, 0.1 * torch.exp(tanh(score_v - score_a))
    else:
        beta, beta2 = 0, 0
    audio = list(ref.encoders["a"].parameters())
    visual = list(ref.encoders["b"].parameters())
    with torch.no_grad():
        for p, g in zip(ref.parameters(), anchor.parameters()):
            if any(p is q for q in audio):
                p.grad += beta * (p - g)
            if any(p is q for q in visual):
                p.grad += beta2 * (p - g)
    fisher = [p.grad * p.grad for p in fisher_of(ref)]
    opt.step()
    return ref, fisher


@pytest.mark.parametrize("leader,scale,gamma", [("a", 4.0, 0.95), ("b", 8.0, 0.1)])
def test_side_by_side_one_step_against_released_code(leader, scale, gamma):
    data = toy_dataset()
    method = make_method("inforeg", data, hp={"gamma": gamma})
    m = "ab".index(leader)
    with torch.no_grad():
        method.model.head.fc.weight[:, m * 64:(m + 1) * 64] *= scale
    batch = batch_of(data)
    ctx = make_ctx(method, data)
    start_epoch_with_anchor(method, ctx)
    anchor = copy.deepcopy(method.model)
    with torch.no_grad():
        for params, anc, mod in zip(method.encoder_params, method.anchors, "ab"):
            for p, a in zip(anchor.encoders[mod].parameters(), anc):
                p.copy_(a)

    def weights(model):
        return [p for p in model.parameters() if p.dim() >= 2]

    ref, fisher = released_step(method.model, anchor, batch, method.k, weights)
    method.training_step(batch, ctx)
    assert method._beta[m] > 0 and method._beta[1 - m] == 0
    assert max_param_diff(method.model, ref) < 1e-6
    method.on_epoch_end(ctx)  # the released fim_trace of this one-step epoch: sum of per-tensor means
    assert method.traces[-1] == pytest.approx(float(sum(f.mean() for f in fisher)), rel=1e-5)


def test_first_modality_trace_reads_only_that_encoder():
    data = toy_dataset()
    method = make_method("inforeg", data, hp={"trace": "first"})
    ids = {id(p) for p in method.fisher_params}
    assert ids and ids <= {id(p) for p in method.model.encoders["a"].parameters()}
    assert all(p.dim() >= 2 for p in method.fisher_params)


@pytest.mark.parametrize("three,pattern", [(False, "complete"), (True, "complete"), (False, "dropout")])
def test_end_to_end(three, pattern):
    out = quick_fit("inforeg", toy_dataset(three=three), epochs=2, pattern=pattern)
    method = out["method"]
    assert out["metrics"]["best_epoch"] >= 0 and len(method.traces) == 2 and method.traces[0] > 0
    coefs = out["history"][0]["coefficients"]
    assert coefs["k"] == 1.0 and any(k.startswith("beta") for k in coefs)
