"""DGL fused concat head: values, single-backward gradient routing vs the released two-pass code."""
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from kernels.dgl_head import dgl_concat_head, dgl_concat_head_reference, dgl_released_step

BACKENDS = ["eager", "triton"]  # triton runs under TRITON_INTERPRET=1 on CPU (root conftest)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _setup(widths, batch=7, classes=5, dtype=torch.float64, seed=0, device=DEVICE):
    """Tiny per-modality encoders (so gradients reach real parameters) plus a concat head."""
    g = torch.Generator().manual_seed(seed)
    encoders = [torch.randn(3 + m, d, generator=g, dtype=dtype) for m, d in enumerate(widths)]
    inputs = [torch.randn(batch, 3 + m, generator=g, dtype=dtype) for m in range(len(widths))]
    weight = torch.randn(classes, sum(widths), generator=g, dtype=dtype)
    bias = torch.randn(classes, generator=g, dtype=dtype)
    labels = torch.randint(0, classes, (batch,), generator=g)
    move = lambda t: t.to(device)  # noqa: E731
    return ([move(e).requires_grad_() for e in encoders], [move(x) for x in inputs],
            move(weight).requires_grad_(), move(bias).requires_grad_(), move(labels))


def _released_grads(encoders, inputs, weight, bias, labels, alpha):
    feats = [torch.tanh(x @ e) for x, e in zip(inputs, encoders)]
    dgl_released_step(feats, weight, bias, labels, alpha)
    return [p.grad.clone() for p in [weight, bias, *encoders]]


def _single_backward_grads(encoders, inputs, weight, bias, labels, alpha, backend):
    feats = [torch.tanh(x @ e) for x, e in zip(inputs, encoders)]
    fused, uni = dgl_concat_head(feats, weight, bias, backend=backend)
    loss = F.cross_entropy(fused, labels) + alpha * sum(F.cross_entropy(u, labels) for u in uni)
    return torch.autograd.grad(loss, [weight, bias, *encoders])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("widths", [(4, 6), (3, 5, 2)], ids=["M2", "M3"])
def test_single_backward_equals_released_two_backward(widths, backend):
    params = _setup(widths)
    expected = _released_grads(*params, alpha=3.0)
    got = _single_backward_grads(*params, alpha=3.0, backend=backend)
    for e, g in zip(expected, got):
        # float64; the sums run in a different order (blocks vs padded GEMMs), hence 1e-12, not bitwise
        torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@settings(max_examples=8, deadline=None)
@given(widths=st.lists(st.integers(1, 9), min_size=1, max_size=4), batch=st.integers(1, 9),
       classes=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_any_shape_matches_released(widths, batch, classes, seed):
    """Odd shapes, M = 1..4, both backends, against the released procedure (float64)."""
    params = _setup(tuple(widths), batch=batch, classes=classes, seed=seed)
    expected = _released_grads(*params, alpha=1.5)
    for backend in BACKENDS:
        got = _single_backward_grads(*params, alpha=1.5, backend=backend)
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forward_matches_padded_concat(backend):
    _, _, weight, bias, _ = _setup((4, 6, 3), batch=9, classes=31)
    feats = [torch.randn(9, d, dtype=torch.float64, device=DEVICE) for d in (4, 6, 3)]
    fused, uni = dgl_concat_head(feats, weight, bias, backend=backend)
    cat = torch.cat(feats, dim=1)
    torch.testing.assert_close(fused, F.linear(cat, weight, bias))
    off = 0
    for m, x in enumerate(feats):
        padded = torch.zeros_like(cat)
        padded[:, off:off + x.shape[1]] = x
        torch.testing.assert_close(uni[m], F.linear(padded, weight, bias))
        off += x.shape[1]
    assert fused.shape == (9, 31) and uni.shape == (3, 9, 31)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_routing(backend):
    """Fused-logit gradient reaches only W, b; unimodal-logit gradient reaches only the features."""
    _, _, weight, bias, _ = _setup((4, 6))
    feats = [torch.randn(7, d, dtype=torch.float64, device=DEVICE, requires_grad=True) for d in (4, 6)]
    fused, uni = dgl_concat_head(feats, weight, bias, backend=backend)
    grads = torch.autograd.grad(fused.square().sum(), [weight, bias, *feats], allow_unused=True)
    assert grads[0].abs().sum() > 0 and grads[1].abs().sum() > 0
    assert all(g is None or g.abs().sum() == 0 for g in grads[2:])
    fused, uni = dgl_concat_head(feats, weight, bias, backend=backend)
    grads = torch.autograd.grad(uni.square().sum(), [weight, bias, *feats], allow_unused=True)
    assert all(g is None or g.abs().sum() == 0 for g in grads[:2])
    for g in grads[2:]:  # dx_m = g_m W_m with g_m = 2 z_m
        assert g.abs().sum() > 0


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 6e-2)])
def test_triton_matches_eager_low_precision(dtype, tol):
    # bf16: eager rounds each partial sum to bf16, the epilogue adds in fp32; logits are O(5), so atol ~ 2 ulp
    encoders, inputs, weight, bias, labels = _setup((16, 24), batch=64, classes=28, dtype=torch.float32)
    feats = [torch.randn(64, d, device=DEVICE, dtype=dtype, requires_grad=True) for d in (16, 24)]
    w, b = weight.detach().to(dtype).requires_grad_(), bias.detach().to(dtype).requires_grad_()
    outs = {}
    for backend in BACKENDS:
        fused, uni = dgl_concat_head(feats, w, b, backend=backend)
        loss = F.cross_entropy(fused.float(), labels) + 2.0 * sum(F.cross_entropy(u.float(), labels) for u in uni)
        outs[backend] = [fused, uni, *torch.autograd.grad(loss, [w, b, *feats])]
    for e, t in zip(outs["eager"], outs["triton"]):
        assert t.dtype == dtype
        torch.testing.assert_close(t.float(), e.float(), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
def test_inputs_not_modified(backend):
    _, _, weight, bias, _ = _setup((4, 6))
    feats = [torch.randn(7, d, dtype=torch.float64, device=DEVICE) for d in (4, 6)]
    before = [t.clone() for t in [weight, bias, *feats]]
    fused, uni = dgl_concat_head(feats, weight, bias, backend=backend)
    (fused.sum() + uni.sum()).backward()
    for b, a in zip(before, [weight, bias, *feats]):
        assert torch.equal(a.detach(), b.detach())


def test_reference_is_eager_path():
    _, _, weight, bias, _ = _setup((4, 6))
    feats = [torch.randn(7, d, dtype=torch.float64, device=DEVICE) for d in (4, 6)]
    eager = dgl_concat_head(feats, weight, bias, backend="eager")
    for a, b in zip(eager, dgl_concat_head_reference(feats, weight, bias)):
        assert torch.equal(a, b)


@pytest.mark.parametrize("case", ["batch", "widths", "dtype", "empty", "no_features", "bias", "backend", "tensor"])
def test_bad_input_raises(case):
    w, b = torch.randn(5, 10), torch.randn(5)
    feats = [torch.randn(4, 4), torch.randn(4, 6)]
    if case == "batch":
        feats[1] = torch.randn(3, 6)
    elif case == "widths":
        feats[1] = torch.randn(4, 5)
    elif case == "dtype":
        feats[1] = feats[1].double()
    elif case == "empty":
        feats = [torch.randn(0, 4), torch.randn(0, 6)]
    elif case == "no_features":
        feats = []
    elif case == "bias":
        b = torch.randn(4)
    elif case == "tensor":
        feats = torch.randn(4, 10)
    with pytest.raises(ValueError):
        dgl_concat_head(feats, w, b, backend="nope" if case == "backend" else "triton")


@pytest.mark.gpu
def test_gpu_compiled_matches_eager_without_host_sync():
    params = _setup((512, 512, 512), batch=64, classes=309, dtype=torch.float32, device="cuda")
    expected = _single_backward_grads(*params, alpha=2.0, backend="eager")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = _single_backward_grads(*params, alpha=2.0, backend="triton")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for e, g in zip(expected, got):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_benchmark_providers_agree_on_cpu():
    import kernels.benchmark.ops_dgl_head  # noqa: F401  (registers the op)
    from kernels.benchmark.registry import get_op

    op = get_op("dgl_head")
    assert op.baseline.name == "eager"
    inputs = op.make_inputs({"M": 3, "B": 4, "D": 8, "C": 3}, torch.device("cpu"), torch.float64)
    leaves = [inputs["weight"], inputs["bias"], *inputs["features"]]
    grads = {}
    for name in ("eager", "released"):
        op.provider(name).make_fn(inputs, "fwd")()
        op.provider(name).make_fn(inputs, "fwd_bwd")()
        grads[name] = [t.grad.clone() for t in leaves]
    for a, b in zip(grads["eager"], grads["released"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
