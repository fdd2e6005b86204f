"""Issue 22 item 4: NaN propagates on every provider of op 1, labels are checked on every path, and the
kernels' numerics stay what they say (fp64 under ``auto``, no finite-math build, the C = 28/31 tile).

Triton runs through the interpreter on the CPU (root conftest). Each case builds a tiny problem whose
finite rows are compared with float64 eager, so "NaN where expected" never hides "wrong elsewhere".
"""
import pytest
import torch

from kernels import modality_stats, weighted_multimodal_ce
from kernels import cpp_ext
from kernels.stats_triton import launch_config, stats_forward

PROVIDERS = ["eager", "triton", "cpp"]


@pytest.fixture(scope="module")
def cpp_built():
    if not cpp_ext.cpp_available():
        pytest.skip(f"C++ extension unavailable: {cpp_ext.cpp_unavailable_reason()}")


def _skip_unless(provider, request):
    if provider == "cpp":
        request.getfixturevalue("cpp_built")


def _problem(M=2, B=5, C=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(M, B, C, generator=g) * 3, torch.randint(0, C, (B,), generator=g)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
@pytest.mark.parametrize("col", [0, 3], ids=["first-class", "middle-class"])
def test_nonfinite_logit_gives_nan_row_and_nan_loss(provider, bad, col, request):
    """A NaN (or +inf) logit makes that row's ce, entropy, p_true NaN, the batch sums NaN, the loss NaN
    and that row's gradient NaN -- on every provider (Triton used to return finite, wrong numbers:
    tl.max ignores NaN). Every other row equals float64 eager."""
    _skip_unless(provider, request)
    x, y = _problem()
    x[1, 2, col] = bad
    st = modality_stats(x, y, backend=provider)
    for name in ("ce", "entropy", "p_true"):
        assert torch.isnan(getattr(st, name)[1, 2]), name
    assert torch.isnan(st.ce_mean[1]) and torch.isnan(st.entropy_mean[1]) and torch.isnan(st.p_true_sum[1])
    ok = torch.ones_like(st.ce, dtype=torch.bool)
    ok[1, 2] = False
    ref = modality_stats(x.double(), y, backend="eager")
    torch.testing.assert_close(st.ce[ok].double(), ref.ce[ok], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(st.ce_mean[0].double(), ref.ce_mean[0], rtol=1e-5, atol=1e-5)

    leaves = [x[m].clone().requires_grad_() for m in range(2)]
    loss = weighted_multimodal_ce(leaves, y, torch.tensor([0.7, 1.3]), backend=provider)
    assert torch.isnan(loss)
    loss.backward()
    assert torch.isnan(leaves[1].grad[2]).all()
    assert torch.isfinite(leaves[0].grad).all()  # modality 0 has no bad logit: its gradient is exact
    ref_leaves = [x[m].double().clone().requires_grad_() for m in range(2)]
    weighted_multimodal_ce(ref_leaves, y, torch.tensor([0.7, 1.3]).double(), backend="eager").backward()
    torch.testing.assert_close(leaves[0].grad.double(), ref_leaves[0].grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_nan_weight_and_nan_upstream_gradient_propagate(provider, request):
    """NaN in the weights gives a NaN loss and NaN gradients of that modality; a NaN upstream gradient
    gives NaN gradients everywhere."""
    _skip_unless(provider, request)
    x, y = _problem()
    leaves = [x[m].clone().requires_grad_() for m in range(2)]
    loss = weighted_multimodal_ce(leaves, y, torch.tensor([1.0, float("nan")]), backend=provider)
    assert torch.isnan(loss)
    loss.backward()
    assert torch.isnan(leaves[1].grad).all() and torch.isfinite(leaves[0].grad).all()

    leaves = [x[m].clone().requires_grad_() for m in range(2)]
    loss = weighted_multimodal_ce(leaves, y, torch.ones(2), backend=provider)
    loss.backward(torch.tensor(float("nan")))
    assert all(torch.isnan(t.grad).all() for t in leaves)


def test_minus_inf_logit_is_a_masked_class_not_an_error():
    """-inf is a legal logit (a masked class): Triton's lse and ce equal eager's and stay finite (the
    NaN flag is for NaN and +inf only)."""
    x, y = _problem()
    y[:] = 0
    x[:, :, 4] = float("-inf")
    got = modality_stats(x, y, backend="triton")
    ref = modality_stats(x.double(), y, backend="eager")
    torch.testing.assert_close(got.ce.double(), ref.ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(got.lse.double(), ref.lse, rtol=1e-5, atol=1e-5)
    assert torch.isfinite(got.ce).all()


@pytest.mark.parametrize("label", [7, 100, -1, 2**31 + 1, 2**32 + 3], ids=["C", "100", "-1", "2^31+1", "2^32+3"])
def test_triton_out_of_range_label_gives_nan_not_lse(label):
    """The Triton kernels compare int64 labels with the class index: an unchecked label outside [0, C)
    (``check=False`` on CUDA) gives NaN ce/p_true and NaN gradients for its row -- never ce = lse (no
    class matched) and never a label >= 2^31 wrapped into range by an int32 cast (2^32 + 3 -> 3)."""
    x, y = _problem(C=7)
    y[3] = label
    lse, ce, ent, pt, sums, state = stats_forward(x, y, torch.ones(2, 5))
    assert torch.isnan(ce[:, 3]).all() and torch.isnan(pt[:, 3]).all() and torch.isnan(sums[-1])
    ok = torch.tensor([0, 1, 2, 4])
    ref = modality_stats(x[:, ok].double(), y[ok], backend="eager")
    torch.testing.assert_close(ce[:, ok].double(), ref.ce, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(lse.double(), torch.logsumexp(x.double(), -1), rtol=1e-5, atol=1e-5)
    from kernels.stats_triton import ce_backward

    dx = ce_backward(x, y, torch.ones(2, 5), state, torch.ones(()))
    assert torch.isnan(dx[:, 3]).all() and torch.isfinite(dx[:, ok]).all()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("label", [7, -1, 2**32 + 3])
def test_labels_checked_by_default_on_every_provider(provider, label, request):
    """The default (check=True) rejects an out-of-range label before any kernel, on every provider."""
    _skip_unless(provider, request)
    x, y = _problem(C=7)
    y[1] = label
    with pytest.raises(ValueError, match="out of range"):
        modality_stats(x, y, backend=provider)
    with pytest.raises(ValueError, match="out of range"):
        weighted_multimodal_ce([x[0], x[1]], y, torch.ones(2), backend=provider)


def test_device_side_label_assert():
    """The CUDA default check (check=True) is ``assert_labels_on_device``: ``torch._assert_async`` of the
    range, no host sync (on a CPU tensor the same assert raises at once, which is what is tested here;
    the GPU test below runs the real path)."""
    from kernels._utils import assert_labels_on_device

    assert_labels_on_device(torch.tensor([0, 4]), 5)
    for bad in ([0, 5], [-1, 0], [2**32 + 3]):
        with pytest.raises(RuntimeError):
            assert_labels_on_device(torch.tensor(bad), 5)


@pytest.mark.gpu
def test_gpu_default_label_check_fails_on_sync():
    x, y = _problem(C=7)
    y[1] = 7
    with pytest.raises(RuntimeError):
        modality_stats(x.cuda(), y.cuda())
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("op,mode", [("modality_stats", "fwd"), ("weighted_multimodal_ce", "fwd_bwd")])
def test_fp64_stays_fp64_under_auto(device, op, mode):
    """``auto`` resolves fp64 to eager on every device (Triton and the extensions compute in fp32);
    resolution needs no GPU."""
    from kernels.modality_stats import _backend_for

    assert _backend_for(torch.device(device), "auto", torch.float64, op, mode, (2, 64, 6)) == "eager"
    x, y = _problem()
    st = modality_stats(x.double(), y)
    assert st.ce.dtype == torch.float64 and st.entropy_mean.dtype == torch.float64
    assert weighted_multimodal_ce(x.double(), y, torch.ones(2)).dtype == torch.float64


def test_cpp_extension_is_not_built_with_finite_math():
    """No -ffast-math / -ffinite-math-only in the extension's flags (under them the compiler may assume
    no NaN); the NaN tests above run against the extension built with exactly these flags."""
    flags = " ".join(cpp_ext.CPU_FLAGS)
    assert "-ffast-math" not in flags and "-ffinite-math-only" not in flags and "-Ofast" not in flags
    import inspect

    assert "ffast-math" not in inspect.getsource(cpp_ext._build) + inspect.getsource(cpp_ext.build_cuda_extension)


@pytest.mark.parametrize("C", [28, 31])
def test_c28_c31_forward_tile_is_8_values_per_thread(C):
    """The [64, 32] tile of C = 28/31 at B = 64 runs with 8 warps (8 fp32 values per thread), not 4
    (16 values: 240-246 of 255 registers on sm_80/sm_90)."""
    block_b, block_c, warps = launch_config(64, C)
    assert block_b * block_c / (warps * 32) <= 8


def test_dgl_head_auto_keeps_fp64_on_eager(monkeypatch):
    """The DGL head, like MAD and PME, keeps fp64 on eager under "auto" even where auto means Triton."""
    import kernels.dgl_head as dgl_head

    monkeypatch.setattr(dgl_head, "_use_triton", lambda backend, device: True)  # as on a CUDA device
    x = [torch.randn(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    w = torch.randn(5, 8, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    fused, uni = dgl_head.dgl_concat_head(x, w, b)
    assert fused.dtype == torch.float64 and uni.dtype == torch.float64


@pytest.mark.parametrize("backend", ["eager", "triton"])
def test_nan_propagates_through_mad_pme_and_dgl_head(backend):
    """The other fused ops have no max/guard that could swallow a NaN: a NaN in any input of MAD
    (student, teacher, weights), PME (mu, logvar) or the DGL head (features) reaches the output."""
    from kernels import dgl_concat_head, mad_loss, pme_sample_kl

    g = torch.Generator().manual_seed(0)
    s, t, w = torch.randn(6, 4, generator=g), torch.randn(6, 5, generator=g), torch.full((6,), 1 / 6)
    for which in range(3):
        args = [s.clone(), t.clone(), w.clone()]
        args[which].view(-1)[3] = float("nan")
        leaf = args[0].requires_grad_()
        loss = mad_loss(leaf, args[1], args[2], backend=backend)
        assert torch.isnan(loss), which
        loss.backward()
        assert torch.isnan(leaf.grad).any(), which
    mu, lv = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    for which in range(2):
        args = [mu.clone(), lv.clone()]
        args[which][1, 1] = float("nan")
        z, kl = pme_sample_kl(args[0], args[1], 3, backend=backend)
        assert torch.isnan(kl) and torch.isnan(z[1, 1]), which
    x = [torch.randn(3, 4, generator=g), torch.randn(3, 5, generator=g)]
    x[0][1, 1] = float("nan")
    fused, uni = dgl_concat_head(x, torch.randn(6, 9, generator=g), torch.zeros(6), backend=backend)
    assert torch.isnan(fused[1]).all() and torch.isnan(uni[0, 1]).all() and torch.isfinite(uni[1]).all()
