"""DGL: encoders learn only from alpha * unimodal CE, the fusion head only from the fused CE."""
import math
import os

import pytest
import torch
import torch.nn.functional as F
from helpers import make_method, quick_fit, toy_dataset

from mmbench.batching import SplitTensors
from mmbench.methods.dgl import dgl_logits


def batch_of(data, n=40, dtype=torch.float64, mask=None):
    b = SplitTensors(data, "train").batch(torch.arange(n), mask)
    return b.__class__({k: v.to(dtype) for k, v in b.inputs.items()}, b.labels, b.mask.to(dtype), b.index, b.modalities)


def build(three=False, fusion="concat", **hp):
    data = toy_dataset(three=three)
    method = make_method("dgl", data, hp=hp, fusion=fusion)
    method.model.double().eval()
    return data, method


def grads(model):
    return {n: (p.grad.clone() if p.grad is not None else None) for n, p in model.named_parameters()}


def method_grads(method, batch):
    method.model.zero_grad(set_to_none=True)
    loss = method.compute_loss(batch, None)
    loss.backward()
    return loss.detach(), grads(method.model)


def released_two_backward(model, batch, alpha):
    """docs/methods.md 2(a) steps 1-7 with zero-padded concatenations and two backward passes."""
    model.zero_grad(set_to_none=True)
    feats = model.encode(batch)
    W, b = model.head.weight, model.head.bias
    fused = F.linear(torch.cat([f.detach() for f in feats], 1), W, b)
    uni = []
    for m in range(len(feats)):
        parts = [f if k == m else torch.zeros_like(f) for k, f in enumerate(feats)]
        uni.append(F.linear(torch.cat(parts, 1), W, b))
    loss_f = F.cross_entropy(fused, batch.labels)
    loss_uni = alpha * sum(F.cross_entropy(z, batch.labels) for z in uni)
    loss_uni.backward(retain_graph=True)
    for p in model.head.parameters():  # step 6: delete every fusion-module gradient
        p.grad = None
    loss_f.backward()
    return (loss_f + loss_uni).detach(), grads(model)


def zero_or_none(g):
    return g is None or torch.count_nonzero(g) == 0


@pytest.mark.parametrize("three", [False, True])
def test_concat_equals_released_two_backward(three):
    data, method = build(three=three, alpha=3.0)
    batch = batch_of(data)
    loss, got = method_grads(method, batch)
    ref_loss, ref = released_two_backward(method.model, batch, 3.0)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-12, atol=1e-12)
    for name, g in ref.items():
        assert g is not None, name
        torch.testing.assert_close(got[name], g, rtol=1e-10, atol=1e-12)


def test_concat_gradient_sources():
    """Encoder grads = alpha x grad of the unimodal loss; head grads = grad of the fused loss."""
    data, method = build(alpha=2.5)
    batch, model = batch_of(data), method.model
    _, got = method_grads(method, batch)
    model.zero_grad(set_to_none=True)
    feats = model.encode(batch)
    sum(F.cross_entropy(z, batch.labels) for z in model.unimodal_logits(feats)).backward()
    uni = grads(model)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(batch), batch.labels).backward()
    fused = grads(model)
    for name, g in got.items():
        if name.startswith("encoders."):
            torch.testing.assert_close(g, 2.5 * uni[name], rtol=1e-10, atol=1e-12)
        else:
            torch.testing.assert_close(g, fused[name], rtol=1e-10, atol=1e-12)


def _split_losses(method, batch):
    """(fused CE, alpha * unimodal CE) from the method's stop-gradient logits."""
    feats = method.model.encode(batch)
    fused, uni = dgl_logits(method.model.head, feats, method.hp["gated_quirk"])
    loss_f = F.cross_entropy(fused, batch.labels)
    loss_u = method.hp["alpha"] * sum(F.cross_entropy(z, batch.labels) for z in uni)
    return loss_f, loss_u


@pytest.mark.parametrize("fusion", ["concat", "sum", "gated", "film"])
@pytest.mark.parametrize("three", [False, True])
def test_gradient_routing_all_fusions(fusion, three):
    data, method = build(three=three, fusion=fusion, alpha=2.0)
    batch, model = batch_of(data), method.model
    # fused loss alone: nothing reaches the encoders, every head parameter trains
    model.zero_grad(set_to_none=True)
    _split_losses(method, batch)[0].backward()
    for name, p in model.named_parameters():
        if name.startswith("encoders."):
            assert zero_or_none(p.grad), name
        else:
            assert not zero_or_none(p.grad), name
    # unimodal loss alone: nothing reaches the head, every encoder trains
    model.zero_grad(set_to_none=True)
    _split_losses(method, batch)[1].backward()
    for name, p in model.named_parameters():
        if name.startswith("encoders."):
            assert not zero_or_none(p.grad), name
        else:
            assert zero_or_none(p.grad), name
    # the method's one backward is the sum of the two
    model.zero_grad(set_to_none=True)
    loss_f, loss_u = _split_losses(method, batch)
    (loss_f + loss_u).backward()
    ref = grads(model)
    loss, got = method_grads(method, batch)
    torch.testing.assert_close(loss, (loss_f + loss_u).detach())
    for name, g in ref.items():
        torch.testing.assert_close(got[name], g, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("fusion", ["sum", "gated", "film"])
def test_other_fusions_unimodal_forms(fusion):
    """Unimodal logits: own layer (sum), self-gating (gated), self-conditioning (film)."""
    data, method = build(fusion=fusion)
    batch, head = batch_of(data), method.model.head
    with torch.no_grad():
        feats = method.model.encode(batch)
        fused, uni = dgl_logits(head, feats)
        torch.testing.assert_close(fused, head(feats))
        for m, f in enumerate(feats):
            if fusion == "sum":
                want = head.fcs[m](f)
            elif fusion == "gated":
                h = head.fcs[m](f)
                want = head.fc_out(torch.sigmoid(h) * h)
            else:
                g, b = head.film(f).chunk(2, dim=1)
                want = head.fc_out(g * f + b)
            torch.testing.assert_close(uni[m], want)


def test_gated_quirk_leaves_gate_layers_untrained():
    data, method = build(fusion="gated", gated_quirk=True)
    _, got = method_grads(method, batch_of(data))
    for name, g in got.items():
        if name.startswith("head.fcs."):
            assert zero_or_none(g), name  # released: fc_x / fc_y never receive gradient
        else:
            assert not zero_or_none(g), name
    # paper intent (default): the fused loss trains fc_x / fc_y
    data, method = build(fusion="gated")
    _, got = method_grads(method, batch_of(data))
    assert all(not zero_or_none(g) for n, g in got.items() if n.startswith("head.fcs."))


def test_missing_modality_sends_no_unimodal_gradient():
    data, method = build(alpha=2.0)
    mask = torch.ones(len(data.split["train"]), 2)
    mask[:, 1] = 0  # modality b missing everywhere
    batch = batch_of(data, mask=mask)
    _, got = method_grads(method, batch)
    assert all(zero_or_none(g) for n, g in got.items() if n.startswith("encoders.b."))
    assert all(not zero_or_none(g) for n, g in got.items() if n.startswith("encoders.a."))


def test_partially_missing_unimodal_ce_over_present_samples():
    data, method = build(alpha=2.0)
    mask = torch.ones(len(data.split["train"]), 2)
    mask[::3, 1] = 0
    batch = batch_of(data, mask=mask)
    loss, got = method_grads(method, batch)
    model = method.model
    model.zero_grad(set_to_none=True)
    feats = model.encode(batch)
    uni = 0.0
    for m, z in enumerate(model.unimodal_logits(feats)):
        present = batch.mask[:, m]
        uni = uni + (F.cross_entropy(z, batch.labels, reduction="none") * present).sum() / present.sum()
    (2.0 * uni).backward()
    ref_enc = grads(model)
    torch.testing.assert_close(loss, (F.cross_entropy(model(batch), batch.labels) + 2.0 * uni).detach())
    for name, g in got.items():
        if name.startswith("encoders."):
            torch.testing.assert_close(g, ref_enc[name], rtol=1e-10, atol=1e-12)


@pytest.mark.skipif(os.environ.get("TRITON_INTERPRET") != "1", reason="CPU Triton interpreter not enabled")
def test_triton_backend_matches_eager():
    """The method's Triton path (run by the CPU interpreter here) gives the eager loss and gradients."""
    data = toy_dataset()
    out = {}
    for backend in ("eager", "triton"):
        method = make_method("dgl", data, hp={"backend": backend})
        batch = SplitTensors(data, "train").batch(torch.arange(32))
        loss = method.compute_loss(batch, None)
        loss.backward()
        out[backend] = (loss.detach(), {n: p.grad for n, p in method.model.named_parameters()})
    torch.testing.assert_close(out["triton"][0], out["eager"][0], rtol=1e-5, atol=1e-6)
    for n, g in out["eager"][1].items():
        torch.testing.assert_close(out["triton"][1][n], g, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("three,pattern,fusion", [(False, "complete", "concat"), (True, "complete", "concat"),
                                                   (False, "dropout", "concat"), (False, "complete", "gated")])
def test_quick_fit(three, pattern, fusion):
    out = quick_fit("dgl", toy_dataset(three=three), epochs=2, pattern=pattern, fusion=fusion)
    metrics = out["metrics"]
    assert math.isfinite(metrics["test_acc"])
    if fusion == "concat":  # (gated fusion, joint-gated included, is still at chance after 2 epochs)
        assert metrics["test_acc"] > 0.3
    assert len(metrics["unimodal_acc"]) == (3 if three else 2)
    assert all(math.isfinite(v) for v in metrics["unimodal_acc"].values())


def test_dgl_logits_default_is_the_paper_form_for_gated_heads():
    """Called without ``gated_quirk`` (the paper's intent is the default), the fused path of a gated
    head trains its ``fc_m`` layers; only ``gated_quirk=True`` cuts them off."""
    data, method = build(fusion="gated")
    head = method.model.head
    feats = [f.detach() for f in method.model.encode(batch_of(data))]
    for quirk, reaches in ((None, True), (True, False)):
        fused, _ = dgl_logits(head, feats) if quirk is None else dgl_logits(head, feats, gated_quirk=quirk)
        grads = torch.autograd.grad(fused.sum(), list(head.fcs.parameters()), allow_unused=True)
        assert all(g is not None and g.abs().sum() > 0 for g in grads) == reaches


def test_gated_quirk_fused_logits_by_hand_two_modalities():
    """With two modalities the gate of modality 1 multiplies modality 2's hidden units, not its own."""
    data, method = build(fusion="gated")
    head = method.model.head
    feats = method.model.encode(batch_of(data))
    fused, _ = dgl_logits(head, feats, gated_quirk=True)
    h = [fc(f) for fc, f in zip(head.fcs, feats)]
    torch.testing.assert_close(fused, head.fc_out(torch.sigmoid(h[0]) * h[1]))
    assert not torch.allclose(fused, head.fc_out(torch.sigmoid(h[0]) * h[0]))


def test_gated_quirk_fused_logits_by_hand_three_modalities():
    """Released gated form: ``z = fc_out(sigmoid(h_1) * sum_{m>1} h_m)`` with ``h_m = fc_m(x_m)`` detached;
    with three modalities the sum over the other two matters (two would hide a wrong reduction)."""
    data, method = build(three=True, fusion="gated")
    head = method.model.head
    feats = method.model.encode(batch_of(data))
    fused, _ = dgl_logits(head, feats, gated_quirk=True)
    h = [fc(f) for fc, f in zip(head.fcs, feats)]
    torch.testing.assert_close(fused, head.fc_out(torch.sigmoid(h[0]) * (h[1] + h[2])))
    torch.testing.assert_close(dgl_logits(head, feats)[0], head([f.detach() for f in feats]))
