"""MMANet MAD: weights, eager reference (gradcheck), tiled Triton path vs a float64 reference."""
import pytest
import torch

import kernels.mad_triton as mad_triton
from kernels.mad import mad_loss, mad_loss_reference, mad_weights

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(n, d, d_t=None, seed=0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, d, generator=g, dtype=torch.float64)
    teacher = torch.randn(n, d_t or d, generator=g, dtype=torch.float64)
    weights = mad_weights(torch.randn(n, 6, generator=g, dtype=torch.float64) * 2)
    return student.to(device), teacher.to(device), weights.to(device)


def _check_triton(student, teacher, weights, variant, split_halves=False, upstream=3.0, rtol=1e-4):
    """Triton (float32) loss and gradient vs the float64 eager reference."""
    s64 = student.detach().double().requires_grad_()
    ref = mad_loss_reference(s64, teacher.double(), weights.double(), variant, split_halves)
    (ref_grad,) = torch.autograd.grad(ref * upstream, s64)
    s32 = student.detach().float().requires_grad_()
    out = mad_loss(s32, teacher.float(), weights.float(), variant, backend="triton", split_halves=split_halves)
    (grad,) = torch.autograd.grad(out * upstream, s32)
    assert out.shape == () and out.dtype == torch.float32
    torch.testing.assert_close(out.double(), ref, rtol=rtol, atol=1e-6)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=rtol, atol=rtol * ref_grad.abs().max().item())


# --------------------------------------------------------------------------------------------- weights
def test_weights_sum_to_one_and_follow_entropy():
    logits = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.5, 0.0]])
    w = mad_weights(logits)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))
    assert w[1] > w[2] > w[0]  # uniform prediction = max entropy = largest weight
    p = logits.softmax(1)
    h = -(p * p.log()).sum(1)
    torch.testing.assert_close(w, h / h.sum())


def test_weights_safe_for_zero_probabilities():
    # huge margins underflow p to 0 and a -inf logit gives log p = -inf: both must give 0 * log 0 = 0
    logits = torch.tensor([[1000.0, 0.0, -1000.0], [0.0, float("-inf"), 1.0], [0.5, 0.2, 0.1]])
    w = mad_weights(logits)
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.sum(), torch.tensor(1.0))


def test_weights_uniform_when_every_entropy_is_zero():
    w = mad_weights(torch.tensor([[0.0, float("-inf")], [float("-inf"), 0.0], [0.0, float("-inf")]]))
    torch.testing.assert_close(w, torch.full((3,), 1.0 / 3.0))


def test_weights_half_input_and_bad_shape():
    assert mad_weights(torch.randn(5, 3, dtype=torch.bfloat16)).dtype == torch.float32
    with pytest.raises(ValueError):
        mad_weights(torch.randn(5))
    with pytest.raises(ValueError):
        mad_weights(torch.randn(0, 3))


# --------------------------------------------------------------------------------------------- eager
@pytest.mark.parametrize("variant", ["column", "row"])
@pytest.mark.parametrize("split_halves", [False, True])
def test_reference_gradcheck(variant, split_halves):
    student, teacher, weights = _inputs(7, 4, device="cpu")
    student.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda s: mad_loss_reference(s, teacher, weights, variant, split_halves), (student,))


def test_reference_by_hand():
    # N = 2: G rows normalised; the column variant weights column j, the row variant row i
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    w = torch.tensor([0.25, 0.75], dtype=torch.float64)
    gs = torch.tensor([[1.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    gs = gs / gs.norm(dim=1, keepdim=True)
    sq = (gs - torch.eye(2, dtype=torch.float64)) ** 2
    torch.testing.assert_close(mad_loss_reference(s, t, w, "column"), (sq * w[None, :]).sum())
    torch.testing.assert_close(mad_loss_reference(s, t, w, "row"), (sq * w[:, None]).sum())
    # split halves with N = 2: each half is one column, normalised to +-1 (or 0)
    torch.testing.assert_close(mad_loss_reference(s, t, w, "row", split_halves=True),
                               (torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64) * w[:, None]).sum())


def test_teacher_and_weights_get_no_gradient():
    student, teacher, weights = _inputs(9, 5)
    for backend in ("eager", "triton"):
        s = student.float().requires_grad_()
        t, w = teacher.float().requires_grad_(), weights.float().requires_grad_()
        mad_loss(s, t, w, backend=backend).backward()
        assert s.grad is not None and t.grad is None and w.grad is None


# --------------------------------------------------------------------------------------------- triton
@pytest.mark.parametrize("variant", ["column", "row"])
@pytest.mark.parametrize("shape", [(37, 19, None), (64, 33, 20)], ids=["N37D19", "N64D33-Dt20"])
def test_triton_matches_float64_reference(shape, variant):
    _check_triton(*_inputs(*shape), variant)


@pytest.mark.parametrize("variant", ["column", "row"])
def test_triton_split_halves(variant):
    _check_triton(*_inputs(37, 19, seed=1), variant, split_halves=True)


def test_triton_many_tiles_and_split_reduction(monkeypatch):
    # 2 row blocks x 2 column-loop splits x 4 accumulators over D (one fully masked): the tiling paths
    monkeypatch.setattr(mad_triton, "_FORCE_SPLITS", 2)
    _check_triton(*_inputs(100, 70, 24, seed=2), "column", split_halves=True)


def test_triton_student_close_to_teacher():
    # the one-pass forward recombines A/a^2 - 2B/(ab) + C/b^2: it must not cancel when student ~ teacher.
    # Tolerance: eager float32 itself is off by ~1e-5 (loss) and ~1e-4 of max|grad| here (conditioning)
    _, teacher, weights = _inputs(64, 33, seed=6)
    noise = torch.randn(teacher.shape, generator=torch.Generator().manual_seed(7), dtype=teacher.dtype)
    student = teacher + 1e-3 * noise.to(DEVICE)
    for variant in ("column", "row"):
        _check_triton(student, teacher, weights, variant, rtol=5e-4)


def test_triton_zero_row_uses_clamped_norm():
    # a zero feature row has a zero Gram row: norm < eps, so the denominator is the constant eps
    # (D = 150 also spans two backward programs along D under the interpreter's 4 x 32-column chunks)
    student, teacher, weights = _inputs(20, 150, seed=3)
    student[4] = 0.0
    _check_triton(student, teacher, weights, "column")


def test_triton_half_precision_inputs():
    student, teacher, weights = _inputs(37, 19, seed=4)
    ref = mad_loss_reference(student, teacher, weights)
    s = student.to(torch.bfloat16).requires_grad_()
    out = mad_loss(s, teacher.to(torch.bfloat16), weights, backend="triton")
    out.backward()
    assert out.dtype == torch.bfloat16 and s.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, rtol=5e-2, atol=5e-2)


def test_triton_does_not_modify_inputs():
    student, teacher, weights = (t.float() for t in _inputs(20, 8, seed=5))
    before = [t.clone() for t in (student, teacher, weights)]
    s = student.clone().requires_grad_()
    mad_loss(s, teacher, weights, backend="triton").backward()
    assert torch.equal(s.detach(), before[0]) and torch.equal(teacher, before[1]) and torch.equal(weights, before[2])


@pytest.mark.parametrize("case", ["rows", "weights", "variant", "empty", "dim", "float64", "int", "backend"])
def test_bad_input_raises(case):
    s, t, w = torch.randn(6, 4), torch.randn(6, 4), torch.full((6,), 1 / 6)
    kwargs = dict(variant="column", backend="triton")
    if case == "rows":
        t = torch.randn(5, 4)
    elif case == "weights":
        w = torch.randn(5)
    elif case == "variant":
        kwargs["variant"] = "diagonal"
    elif case == "empty":
        s, t, w = torch.randn(0, 4), torch.randn(0, 4), torch.randn(0)
    elif case == "dim":
        s = torch.randn(6, 4, 1)
    elif case == "float64":
        s, t = s.double(), t.double()
    elif case == "int":
        s = torch.ones(6, 4, dtype=torch.int64)
    elif case == "backend":
        kwargs["backend"] = "cuda"
    with pytest.raises(ValueError):
        mad_loss(s, t, w, **kwargs)


# --------------------------------------------------------------------------------------------- gpu
@pytest.mark.gpu
@pytest.mark.parametrize("variant", ["column", "row"])
def test_gpu_compiled_matches_reference_without_host_sync(variant):
    student, teacher, weights = _inputs(1000, 512, device="cuda")
    student.requires_grad_()
    ref = mad_loss_reference(student, teacher, weights, variant)
    (ref_grad,) = torch.autograd.grad(ref, student)
    s = student.detach().float().requires_grad_()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = mad_loss(s, teacher.float(), weights.float(), variant)  # auto -> Triton on CUDA
        (grad,) = torch.autograd.grad(out, s)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.testing.assert_close(out.double(), ref, rtol=1e-3, atol=1e-5)
    torch.testing.assert_close(grad.double(), ref_grad, rtol=1e-3, atol=1e-3 * ref_grad.abs().max().item())


@pytest.mark.gpu
def test_gpu_peak_memory_tenfold_lower():
    student, teacher, weights = (t.float() for t in _inputs(4096, 128, device="cuda"))
    peaks = {}
    for backend in ("eager", "triton"):
        s = student.clone().requires_grad_()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        mad_loss(s, teacher, weights, backend=backend).backward()
        torch.cuda.synchronize()
        peaks[backend] = torch.cuda.max_memory_allocated() - base
    assert peaks["triton"] * 10 <= peaks["eager"], peaks


def test_benchmark_op_runs_on_cpu():
    import kernels.benchmark.ops_mad  # noqa: F401  (registers the op)
    from kernels.benchmark.registry import get_op

    op = get_op("mad_loss")
    inputs = op.make_inputs({"N": 16, "D": 8}, torch.device("cpu"), torch.float32)
    for mode in ("fwd", "fwd_bwd"):
        loss = op.provider("eager").make_fn(inputs, mode)()
        assert loss.shape == () and torch.isfinite(loss)
    assert inputs["student"].grad is not None
