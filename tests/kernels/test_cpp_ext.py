"""Op 5: the C++ extension of op 1 vs the eager reference, and its eager fallback."""
import warnings

import pytest
import torch

import kernels.cpp_ext as cpp_ext
from kernels import ModalityStats, modality_stats, weighted_multimodal_ce
from kernels.stats_reference import weighted_ce_reference


@pytest.fixture(scope="module")
def ext():
    """Build the extension once per test session (about a minute the first time, cached after)."""
    if not cpp_ext.cpp_available():
        pytest.skip(f"C++ extension unavailable: {cpp_ext.cpp_unavailable_reason()}")
    return cpp_ext.get_extension()


def _make(M, B, C, dtype=torch.float32, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(M, B, C, generator=g, dtype=torch.float64) * scale).to(dtype)
    return x, torch.randint(0, C, (B,), generator=g)


@pytest.mark.parametrize("M", [1, 2, 3])
@pytest.mark.parametrize("B", [1, 7, 64, 257])
@pytest.mark.parametrize("C", [2, 6, 31, 309, 1000])
def test_cpp_stats_match_eager(ext, M, B, C):
    x, y = _make(M, B, C)
    got = modality_stats(x, y, backend="cpp")
    want = modality_stats(x.double(), y, backend="eager")
    for name in ModalityStats._fields:
        w = getattr(want, name)
        tol = 2e-5 * max(1.0, float(w.abs().max()))
        torch.testing.assert_close(getattr(got, name).double(), w, rtol=2e-5, atol=tol, msg=lambda m: f"{name}: {m}")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("M,B,C", [(2, 64, 6), (3, 64, 309), (2, 9, 4099)])
def test_cpp_weighted_ce_forward_backward(ext, M, B, C, dtype, per_sample):
    x, y = _make(M, B, C, dtype)
    w = torch.rand(M, B) + 0.5 if per_sample else torch.rand(M) + 0.5
    xg = x.clone().requires_grad_()
    before = x.clone()
    loss = weighted_multimodal_ce(xg, y, w, backend="cpp")
    loss.backward()
    assert torch.equal(xg.detach(), before)  # the caller's logits are never written
    xr = x.double().requires_grad_()
    w2d = w.double() if per_sample else w.double()[:, None].expand(M, B)
    ref = weighted_ce_reference(xr, y, w2d)
    ref.backward()
    torch.testing.assert_close(loss.double(), ref.detach(), rtol=1e-5, atol=1e-5)
    assert xg.grad.dtype == dtype
    tol = {torch.float32: 1e-5, torch.float16: 2e-3, torch.bfloat16: 1e-2}[dtype]
    torch.testing.assert_close(xg.grad.double(), xr.grad, rtol=tol, atol=tol / 10)


def test_cpp_list_input_and_grad_out(ext):
    x, y = _make(2, 5, 7)
    items = [x[0].clone().requires_grad_(), x[1].clone().requires_grad_()]
    (2.0 * weighted_multimodal_ce(items, y, torch.tensor([1.0, 0.5]), backend="cpp")).backward()
    xr = x.double().requires_grad_()
    (2.0 * weighted_ce_reference(xr, y, torch.tensor([1.0, 0.5], dtype=torch.float64)[:, None].expand(2, 5))).backward()
    for m in range(2):
        torch.testing.assert_close(items[m].grad.double(), xr.grad[m], rtol=1e-5, atol=1e-7)


def test_cpp_extreme_logits(ext):
    x, y = _make(2, 9, 31, scale=1e4)
    got = modality_stats(x, y, backend="cpp")
    want = modality_stats(x, y, backend="eager")
    for name in ModalityStats._fields:
        assert torch.isfinite(getattr(got, name)).all(), name
    torch.testing.assert_close(got.entropy, want.entropy, rtol=1e-4, atol=1e-4)


def test_cpp_fallback_warns_once(monkeypatch):
    """A failed build falls back to eager with a single warning, never a crash."""
    monkeypatch.setattr(cpp_ext, "_STATE", {"ext": None, "tried": True, "error": "RuntimeError: no compiler", "warned": False})
    x, y = _make(2, 4, 3)
    with pytest.warns(RuntimeWarning, match="falling back to eager"):
        s = modality_stats(x, y, backend="cpp")
    torch.testing.assert_close(s.ce, modality_stats(x, y, backend="eager").ce)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        loss = weighted_multimodal_ce(x.requires_grad_(), y, torch.ones(2), backend="cpp")  # no second warning
    loss.backward()
    assert not cpp_ext.cpp_available()
    assert "no compiler" in cpp_ext.cpp_unavailable_reason()


@pytest.mark.gpu
def test_gpu_cpp_cuda_matches_eager(ext):
    if not cpp_ext._STATE.get("with_cuda"):
        pytest.skip("extension built without CUDA")
    x, y = _make(3, 64, 309)
    x, y = x.cuda(), y.cuda()
    got = modality_stats(x, y, backend="cpp")
    want = modality_stats(x.double(), y, backend="eager")
    for name in ModalityStats._fields:
        w = getattr(want, name)
        torch.testing.assert_close(getattr(got, name).double(), w, rtol=2e-5, atol=2e-5 * max(1.0, float(w.abs().max())))


@pytest.mark.parametrize("labels", [torch.tensor([0, 1, 3, 0]), torch.tensor([0, -1, 2, 0])], ids=["high", "negative"])
def test_cpp_label_range_checked_before_compute(ext, labels):
    """The extension range-checks CPU labels itself (first step, before any row is computed)."""
    x = torch.randn(2, 4, 3)
    with pytest.raises(ValueError, match="out of range"):
        modality_stats(x, labels, backend="cpp")
    with pytest.raises(ValueError, match="out of range"):
        weighted_multimodal_ce([x[0], x[1]], labels, torch.ones(2), backend="cpp")
    with pytest.raises(ValueError):
        weighted_multimodal_ce(x, torch.zeros(4, dtype=torch.long), torch.ones(3), backend="cpp")


@pytest.mark.gpu
@pytest.mark.parametrize("C", [6, 31, 309, 1000])
def test_gpu_cpp_cuda_out_of_range_label_reads_nothing(ext, C):
    """Issue 9 bug 3: the .cu forward compares class indices with the label instead of reading z[y]:
    an unchecked out-of-range label (check=False, no host sync) gives a NaN CE for that row only,
    never an out-of-bounds read (run under compute-sanitizer to see the difference)."""
    if not cpp_ext._STATE.get("with_cuda"):
        pytest.skip("extension built without CUDA")
    x, y = _make(2, 5, C)
    y[2] = C + 1000
    st = modality_stats(x.cuda(), y.cuda(), backend="cpp", check=False)  # unchecked: the kernel's own guard
    torch.cuda.synchronize()
    assert torch.isnan(st.ce[:, 2]).all()
    ok = torch.tensor([0, 1, 3, 4])
    want = modality_stats(x[:, ok].double(), y[ok], backend="eager")
    torch.testing.assert_close(st.ce[:, ok].cpu().double(), want.ce, rtol=2e-5, atol=2e-5)
    torch.testing.assert_close(st.lse.cpu().double()[:, ok], want.lse, rtol=2e-5, atol=2e-5)


def test_auto_backend_on_cpu_follows_the_dispatch_table(ext, monkeypatch, tmp_path):
    """Issue 22 item 6: backend="auto" is the dispatch table's choice per op, mode and shape class
    (here a table naming cpp for small statistics and eager for the small CE), eager for fp64."""
    import json

    from kernels import dispatch
    from kernels.modality_stats import _backend_for

    table = tmp_path / "t.json"
    table.write_text(json.dumps({"choices": {"cpu/modality_stats/fwd/float32/small": "cpp",
                                             "cpu/weighted_multimodal_ce/fwd/float32/small": "eager"}}))
    monkeypatch.setenv(dispatch.ENV_TABLE, str(table))
    monkeypatch.delenv("MMBENCH_KERNELS_BACKEND", raising=False)
    cpu = torch.device("cpu")
    assert _backend_for(cpu, "auto", torch.float32, "modality_stats", "fwd", (2, 8, 5)) == "cpp"
    assert _backend_for(cpu, "auto", torch.bfloat16, "modality_stats", "fwd", (2, 8, 5)) == "cpp"
    assert _backend_for(cpu, "auto", torch.float32, "weighted_multimodal_ce", "fwd", (2, 8, 5)) == "eager"
    assert _backend_for(cpu, "auto", torch.float64, "modality_stats", "fwd", (2, 8, 5)) == "eager"
    assert _backend_for(cpu, "eager", torch.float32, "modality_stats", "fwd", (2, 8, 5)) == "eager"
    calls = []
    real = ext.stats_forward
    monkeypatch.setattr(cpp_ext, "get_extension", lambda: type("E", (), {
        "stats_forward": staticmethod(lambda *a: calls.append(1) or real(*a))})())
    x, y = _make(2, 8, 5)
    modality_stats(x, y)  # auto
    assert calls == [1]


def test_cpp_exp_is_accurate_over_the_whole_fp32_range(ext):
    """Issue 22 item 4: without -ffast-math the extension's class loops use its own vectorisable exp
    (Cephes expf). Softmax probabilities of logits spread over [-110, 0] (every exponent down to the
    underflow) match float64 within 2e-6 relative wherever they are normal fp32 numbers, and the -inf
    logit of a masked class gives probability 0."""
    C = 1024
    z = torch.linspace(-110.0, 0.0, C).reshape(1, 1, C).repeat(1, 2, 1)
    z[0, 1, 5] = float("-inf")
    y = torch.tensor([C - 1, C - 1])
    leaf = z.clone().requires_grad_()
    weighted_multimodal_ce(leaf, y, torch.ones(1), backend="cpp").backward()
    p = leaf.grad.double() * 2  # grad = (p - onehot) / B with B = 2
    p[..., C - 1] += 1
    want = torch.softmax(z.double(), -1)
    normal = want > torch.finfo(torch.float32).tiny
    torch.testing.assert_close(p[normal], want[normal], rtol=2e-6, atol=0)
    assert float(p[0, 1, 5]) == 0.0
    st = modality_stats(z, y, backend="cpp")
    ref = modality_stats(z.double(), y, backend="eager")
    torch.testing.assert_close(st.lse.double(), ref.lse, rtol=1e-6, atol=0)
