"""DMRNet PME sample + KL: eager formula, Triton kernel (with its own eps), eps regeneration in backward."""
import pytest
import torch

from kernels.pme import pme_reference, pme_sample_kl, pme_triton_eps

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _inputs(shape, dtype=torch.float32, seed=0, device=DEVICE):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(shape, generator=g, dtype=torch.float64)
    logvar = 0.5 * torch.randn(shape, generator=g, dtype=torch.float64)
    return mu.to(device, dtype).requires_grad_(), logvar.to(device, dtype).requires_grad_()


def _kl_by_hand(mu, logvar):
    return 0.5 * (logvar.exp() + mu**2 - logvar - 1).flatten(1).sum(1).mean()


# --------------------------------------------------------------------------------------------- eager
def test_eager_formula_and_determinism():
    mu, logvar = _inputs((4, 6), dtype=torch.float64)
    z, kl = pme_sample_kl(mu, logvar, seed=7, backend="eager")
    eps = torch.randn((4, 6), generator=torch.Generator(device=DEVICE).manual_seed(7), dtype=torch.float64,
                      device=DEVICE)
    torch.testing.assert_close(z, mu + eps * (0.5 * logvar).exp())
    torch.testing.assert_close(kl, _kl_by_hand(mu, logvar))
    assert torch.equal(pme_sample_kl(mu, logvar, seed=torch.tensor(7), backend="eager")[0], z)
    assert not torch.equal(pme_sample_kl(mu, logvar, seed=8, backend="eager")[0], z)


def test_reference_gradcheck():
    mu, logvar = _inputs((3, 2, 2), dtype=torch.float64, device="cpu")
    eps = torch.randn(3, 2, 2, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda m, v: pme_reference(m, v, eps), (mu, logvar))
    assert torch.autograd.gradcheck(lambda m, v: pme_reference(m, v)[1], (mu, logvar))


@pytest.mark.parametrize("backend", ["eager", "triton"])
def test_eval_is_mean_only(backend):
    mu, logvar = _inputs((5, 3, 4))
    z, kl = pme_sample_kl(mu, logvar, seed=1, training=False, backend=backend)
    assert z is mu
    torch.testing.assert_close(kl, _kl_by_hand(mu, logvar))
    grads = torch.autograd.grad(kl, (mu, logvar))
    expected = torch.autograd.grad(_kl_by_hand(mu, logvar), (mu, logvar))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)


# --------------------------------------------------------------------------------------------- triton
@pytest.mark.parametrize("seed_kind", ["int", "tensor"])
@pytest.mark.parametrize("shape", [(5, 3, 7), (3, 1100)], ids=["small", "multi-block"])
def test_triton_matches_reference_with_kernel_eps(shape, seed_kind):
    """Forward vs the eager formula at the kernel's eps; backward regenerates the very same eps."""
    mu, logvar = _inputs(shape)
    seed = 1234 if seed_kind == "int" else torch.tensor([1234], device=DEVICE)
    z, kl = pme_sample_kl(mu, logvar, seed, backend="triton")
    eps = pme_triton_eps(mu, seed)
    z_ref, kl_ref = pme_reference(mu, logvar, eps)
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(kl, kl_ref)
    gz = torch.randn_like(z)
    # dz/dlogvar = eps exp(logvar/2) / 2 differs unless backward regenerated exactly the forward eps
    grads = torch.autograd.grad((z * gz).sum() + 2.5 * kl, (mu, logvar))
    expected = torch.autograd.grad((z_ref * gz).sum() + 2.5 * kl_ref, (mu, logvar))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)


def test_triton_eps_is_standard_normal_and_seeded():
    mu = torch.zeros(8, 1024, device=DEVICE)
    eps = pme_triton_eps(mu, 3)
    assert abs(eps.mean().item()) < 0.03 and abs(eps.std().item() - 1.0) < 0.03
    assert torch.equal(eps, pme_triton_eps(mu, torch.tensor(3, device=DEVICE)))  # int and tensor seeds agree
    assert not torch.equal(eps, pme_triton_eps(mu, 4))
    z, _ = pme_sample_kl(mu, mu.clone(), 3, backend="triton")  # logvar = 0: z = eps
    torch.testing.assert_close(z, eps)


def test_triton_grad_through_one_output_only():
    mu, logvar = _inputs((4, 9))
    z, kl = pme_sample_kl(mu, logvar, 5, backend="triton")
    for g, e in zip(torch.autograd.grad(kl, (mu, logvar), retain_graph=True),
                    torch.autograd.grad(_kl_by_hand(mu, logvar), (mu, logvar))):
        torch.testing.assert_close(g, e)
    eps = pme_triton_eps(mu, 5)
    gmu, glv = torch.autograd.grad(z.sum(), (mu, logvar))
    torch.testing.assert_close(gmu, torch.ones_like(mu))
    torch.testing.assert_close(glv, 0.5 * eps * (0.5 * logvar.detach()).exp())


def test_triton_bfloat16():
    mu, logvar = _inputs((6, 40), dtype=torch.bfloat16)
    z, kl = pme_sample_kl(mu, logvar, 9, backend="triton")
    assert z.dtype == kl.dtype == torch.bfloat16
    z_ref, kl_ref = pme_reference(mu.float(), logvar.float(), pme_triton_eps(mu, 9))
    torch.testing.assert_close(z.float(), z_ref, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(kl.float(), kl_ref, rtol=2e-2, atol=2e-2)
    gmu, glv = torch.autograd.grad(z.float().sum() + kl.float(), (mu, logvar))
    assert gmu.dtype == glv.dtype == torch.bfloat16 and torch.isfinite(glv.float()).all()


def test_triton_does_not_modify_inputs():
    mu, logvar = _inputs((4, 9))
    before = (mu.detach().clone(), logvar.detach().clone())
    z, kl = pme_sample_kl(mu, logvar, 5, backend="triton")
    (z.sum() + kl).backward()
    assert torch.equal(mu.detach(), before[0]) and torch.equal(logvar.detach(), before[1])


@pytest.mark.parametrize("case", ["shape", "dtype", "empty", "scalar", "float_seed", "seed_shape", "neg_seed",
                                  "backend", "int", "float64"])
def test_bad_input_raises(case):
    mu, logvar, seed, backend = torch.randn(4, 3), torch.randn(4, 3), 0, "triton"
    if case == "shape":
        logvar = torch.randn(4, 2)
    elif case == "dtype":
        logvar = logvar.double()
    elif case == "empty":
        mu, logvar = torch.randn(0, 3), torch.randn(0, 3)
    elif case == "scalar":
        mu, logvar = torch.tensor(1.0), torch.tensor(1.0)
    elif case == "float_seed":
        seed = 1.5
    elif case == "seed_shape":
        seed = torch.tensor([1, 2])
    elif case == "neg_seed":
        seed = -1
    elif case == "backend":
        backend = "fast"
    elif case == "int":
        mu, logvar = torch.ones(4, 3, dtype=torch.int64), torch.ones(4, 3, dtype=torch.int64)
    elif case == "float64":
        mu, logvar = mu.double(), logvar.double()
    with pytest.raises(ValueError):
        pme_sample_kl(mu, logvar, seed, backend=backend)


# --------------------------------------------------------------------------------------------- gpu
@pytest.mark.gpu
def test_gpu_compiled_no_host_sync_with_device_seed():
    mu, logvar = _inputs((64, 512, 4, 4), device="cuda")
    seed = torch.tensor([11], device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        z, kl = pme_sample_kl(mu, logvar, seed)  # auto -> Triton on CUDA
        grads = torch.autograd.grad(z.square().sum() + kl, (mu, logvar))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    z_ref, kl_ref = pme_reference(mu, logvar, pme_triton_eps(mu, seed))
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(kl, kl_ref, rtol=1e-5, atol=1e-3)
    for g, e in zip(grads, torch.autograd.grad(z_ref.square().sum() + kl_ref, (mu, logvar))):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5)


def test_benchmark_op_runs_on_cpu():
    import kernels.benchmark.ops_pme  # noqa: F401  (registers the op)
    from kernels.benchmark.registry import get_op

    op = get_op("pme_sample_kl")
    shape = {"B": 4, "feat": (3, 2)}
    inputs = op.make_inputs(shape, torch.device("cpu"), torch.float32)
    for mode in ("fwd", "fwd_bwd"):
        op.provider("eager").make_fn(inputs, mode)()
    assert inputs["mu"].grad is not None and op.model_bytes(shape, "fwd") == 4 * 24 * 3
