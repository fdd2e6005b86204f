"""DMRNet probabilistic multimodal embedding (PME): reparameterised sample and KL, fused.

``docs/methods.md`` §3 and §6.4. For ``mu, logvar`` ``[B, ...]``:

* train: ``z = mu + eps * exp(logvar / 2)``, ``eps ~ N(0, 1)`` elementwise; eval: ``z = mu``;
* ``kl = (1 / B) sum_i sum_d 1/2 (exp(logvar) + mu^2 - logvar - 1)`` (a scalar), differentiable in
  ``mu`` and ``logvar`` in both modes.

Randomness comes from an integer ``seed`` (a Python int or a one-element integer tensor):

* eager: ``eps`` is drawn with a ``torch.Generator`` seeded from ``seed``. A tensor seed is read with
  ``.item()`` there (a host sync when it lives on the GPU; the eager path is the CPU path).
* Triton: ``eps = tl.randn(seed, offset)`` (Philox keyed by the flat element index). The seed is
  read inside the kernel when it is a tensor, so there is no host sync. ``eps`` is never stored: the
  backward regenerates it from the same seed and offsets (saves a ``[B, ...]`` tensor).

**Eager and Triton draw different eps for the same seed** (different generators). Both are exact
Gaussian reparameterisations; :func:`pme_triton_eps` returns the kernel's eps so tests can evaluate
the eager formula (:func:`pme_reference`) with it.

Public API: :func:`pme_sample_kl`, :func:`pme_reference`, :func:`pme_triton_eps`.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from ._triton import tl, triton
from ._utils import resolve_backend

Seed = Union[int, torch.Tensor]
_BLOCK = 1024
#: Warps of the backward launch (8: 4 elements per thread; at 4 warps, 8 per thread, ptxas spilled 4 B on
#: sm_90 for bf16; see the static table of results/KERNELS.md).
_BWD_WARPS = 8


def _use_triton(backend: str, device: torch.device) -> bool:
    """Resolve ``backend`` with the package rule (:func:`kernels._utils.resolve_backend`); no C++ path here."""
    if backend not in ("auto", "eager", "triton"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'triton'; got {backend!r}")
    return resolve_backend(backend, device) == "triton"


def _check_inputs(mu: torch.Tensor, logvar: torch.Tensor, seed: Seed) -> None:
    if mu.shape != logvar.shape:
        raise ValueError(f"mu and logvar must have the same shape; got {tuple(mu.shape)} and {tuple(logvar.shape)}")
    if mu.dim() == 0 or mu.shape[0] == 0 or mu.numel() == 0:
        raise ValueError(f"mu must be [B, ...] with B >= 1 and no empty dimension; got {tuple(mu.shape)}")
    if not mu.is_floating_point() or logvar.dtype != mu.dtype or logvar.device != mu.device:
        raise ValueError(f"mu/logvar must share a floating dtype and device; got {mu.dtype}, {logvar.dtype}")
    if isinstance(seed, torch.Tensor):
        if seed.numel() != 1 or seed.is_floating_point() or seed.is_complex() or seed.dtype == torch.bool:
            raise ValueError(f"a tensor seed must be one integer element; got {seed.dtype} {tuple(seed.shape)}")
    elif isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int or a one-element integer tensor; got {type(seed).__name__}")
    elif not 0 <= seed < 2**63:
        raise ValueError(f"seed must be in [0, 2**63); got {seed}")


def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return 0.5 * (logvar.exp() + mu.square() - logvar - 1.0).sum() / mu.shape[0]


def pme_reference(
    mu: torch.Tensor, logvar: torch.Tensor, eps: Optional[torch.Tensor] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eager PME formula with an explicit noise tensor.

    Args:
        mu, logvar: ``[B, ...]``.
        eps: ``[B, ...]`` standard-normal noise, or ``None`` for the mean-only (eval) path ``z = mu``.

    Returns:
        ``(z [B, ...], kl [])``.
    """
    z = mu if eps is None else mu + eps.to(mu.dtype) * (0.5 * logvar).exp()
    return z, _kl(mu, logvar)


def _eager_eps(mu: torch.Tensor, seed: Seed) -> torch.Tensor:
    seed = int(seed.item()) if isinstance(seed, torch.Tensor) else seed  # syncs if seed is on the GPU
    gen = torch.Generator(device=mu.device)
    gen.manual_seed(seed)
    return torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)


def pme_sample_kl(
    mu: torch.Tensor, logvar: torch.Tensor, seed: Seed, training: bool = True, backend: str = "auto"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """PME reparameterised sample and KL regulariser in one pass.

    Args:
        mu: ``[B, ...]`` mean (any trailing shape: ``[B, 1024]``, ``[B, 512, 4, 4]``, ...).
        logvar: ``[B, ...]`` log-variance, same shape, dtype and device.
        seed: Python int in ``[0, 2**63)`` or a one-element integer tensor (for Triton, on ``mu``'s
            device: it is read in the kernel, no host sync). Eager and Triton give different eps.
        training: ``True`` samples ``z``; ``False`` returns ``z = mu`` (the same tensor, mean only).
        backend: ``"auto"`` (Triton on CUDA tensors, eager otherwise and for float64), ``"eager"`` or
            ``"triton"`` (float16 / bfloat16 / float32).

    Returns:
        ``(z [B, ...] in mu's dtype, kl [] in mu's dtype)``; Triton accumulates the KL in float32.

    Raises:
        ValueError: shape/dtype/device mismatch, empty batch, bad seed or backend, float64 with "triton".
    """
    _check_inputs(mu, logvar, seed)
    use_triton = _use_triton(backend, mu.device)  # validates `backend` first
    if mu.dtype == torch.float64 and backend == "triton":
        raise ValueError("the Triton PME path computes in float32; use backend='eager' for float64")
    if mu.dtype == torch.float64 or not use_triton:  # "auto" keeps float64 on the eager path
        return pme_reference(mu, logvar, _eager_eps(mu, seed) if training else None)
    if mu.numel() >= 2**31:
        raise ValueError("the Triton PME path indexes with int32 offsets: numel must be < 2**31")
    if isinstance(seed, torch.Tensor) and seed.device != mu.device:
        raise ValueError(f"a tensor seed must be on mu's device {mu.device}; got {seed.device}")
    if not training:
        return mu, PMEFunction.apply(mu, logvar, seed, False)[1]
    return PMEFunction.apply(mu, logvar, seed, True)


def pme_triton_eps(mu: torch.Tensor, seed: Seed) -> torch.Tensor:
    """The ``eps [B, ...]`` (float32) that the Triton path draws for ``mu``'s shape and ``seed``.

    Runs the forward kernel itself with an extra store, so it is the kernel's noise, not a re-derivation.
    For tests and debugging; training never stores eps.
    """
    _check_inputs(mu, mu, seed)
    eps = torch.empty(mu.shape, dtype=torch.float32, device=mu.device)
    _launch_forward(mu.contiguous(), mu.contiguous(), seed, True, eps)
    return eps


@triton.jit
def _load_seed(seed_ptr, seed_value, SEED_FROM_PTR: tl.constexpr):
    if SEED_FROM_PTR:
        seed = tl.load(seed_ptr).to(tl.int64)  # device-side seed: no host sync
    else:
        seed = seed_value
    return seed


@triton.jit
def pme_fwd_kernel(
    mu_ptr, lv_ptr,  # [n] contiguous, any float dtype
    seed_ptr, seed_value,  # the seed: a one-element integer tensor (SEED_FROM_PTR) or an int argument
    z_ptr,  # [n] out (unused when not TRAINING)
    eps_ptr,  # [n] fp32 out, only when STORE_EPS (testing)
    kl_ptr,  # [programs] fp32 out: per-program partial KL sums (reduced by torch: deterministic)
    n,
    SEED_FROM_PTR: tl.constexpr, TRAINING: tl.constexpr, STORE_EPS: tl.constexpr, BLOCK: tl.constexpr,
):
    """Forward: one program per BLOCK elements; sample z and a partial KL sum."""
    # 1. locate; offsets double as the Philox counters, so backward regenerates the same eps
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    lv = tl.load(lv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    # 2. KL terms 1/2 (e^lv + mu^2 - lv - 1); masked lanes give 1/2 (1 + 0 - 0 - 1) = 0, zeroed anyway
    kl = 0.5 * (tl.exp(lv) + mu * mu - lv - 1.0)
    tl.store(kl_ptr + pid, tl.sum(tl.where(mask, kl, 0.0), axis=0))
    # 3. reparameterised sample
    if TRAINING:
        eps = tl.randn(_load_seed(seed_ptr, seed_value, SEED_FROM_PTR), offs)
        tl.store(z_ptr + offs, (mu + eps * tl.exp(0.5 * lv)).to(z_ptr.dtype.element_ty), mask=mask)
        if STORE_EPS:
            tl.store(eps_ptr + offs, eps, mask=mask)


@triton.jit
def pme_bwd_kernel(
    mu_ptr, lv_ptr, seed_ptr, seed_value,
    gz_ptr,  # [n] upstream gradient of z (only when HAS_GZ)
    gkl_ptr,  # [1] upstream gradient of kl (only when HAS_GKL), read on device
    dmu_ptr, dlv_ptr,  # [n] out
    n, inv_batch,
    SEED_FROM_PTR: tl.constexpr, TRAINING: tl.constexpr, HAS_GZ: tl.constexpr, HAS_GKL: tl.constexpr,
    BLOCK: tl.constexpr,
):
    """Backward. dz/dmu = 1, dz/dlv = eps e^{lv/2} / 2; dkl/dmu = mu / B, dkl/dlv = (e^lv - 1) / (2B)."""
    # 1. locate and load (same offsets as forward)
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    mu = tl.load(mu_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    lv = tl.load(lv_ptr + offs, mask=mask, other=0.0).to(tl.float32)
    dmu = tl.zeros((BLOCK,), dtype=tl.float32)
    dlv = tl.zeros((BLOCK,), dtype=tl.float32)
    # 2. KL part, scaled by the upstream scalar gradient / B
    if HAS_GKL:
        g = tl.load(gkl_ptr).to(tl.float32) * inv_batch
        dmu += g * mu
        dlv += g * 0.5 * (tl.exp(lv) - 1.0)
    # 3. sample part; eps is regenerated from (seed, offset), never stored
    if HAS_GZ:
        gz = tl.load(gz_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        dmu += gz
        if TRAINING:
            eps = tl.randn(_load_seed(seed_ptr, seed_value, SEED_FROM_PTR), offs)
            dlv += gz * eps * 0.5 * tl.exp(0.5 * lv)
    tl.store(dmu_ptr + offs, dmu.to(dmu_ptr.dtype.element_ty), mask=mask)
    tl.store(dlv_ptr + offs, dlv.to(dlv_ptr.dtype.element_ty), mask=mask)


def _seed_args(seed: Seed, device: torch.device):
    """``(seed_ptr, seed_value, SEED_FROM_PTR)``; the pointer is a dummy when the seed is an int."""
    if isinstance(seed, torch.Tensor):
        return seed.reshape(1), 0, True
    return torch.empty(1, dtype=torch.int64, device=device), seed, False


def _launch_forward(mu, logvar, seed, training, eps_out=None):
    n = mu.numel()
    grid = (triton.cdiv(n, _BLOCK),)
    z = torch.empty_like(mu) if training else mu  # eval: z is not written
    kl_part = torch.empty(grid[0], dtype=torch.float32, device=mu.device)
    seed_ptr, seed_value, from_ptr = _seed_args(seed, mu.device)
    pme_fwd_kernel[grid](
        mu, logvar, seed_ptr, seed_value, z, eps_out if eps_out is not None else kl_part, kl_part, n,
        SEED_FROM_PTR=from_ptr, TRAINING=training, STORE_EPS=eps_out is not None, BLOCK=_BLOCK, num_warps=4,
    )
    return z, kl_part


class PMEFunction(torch.autograd.Function):
    """``(mu, logvar, seed, training) -> (z, kl)``; validated by :func:`pme_sample_kl`.

    In eval mode the returned ``z`` is a placeholder (the caller returns ``mu`` itself) and only the
    KL carries gradient.
    """

    @staticmethod
    def forward(ctx, mu, logvar, seed, training: bool):
        mu_c, lv_c = mu.contiguous(), logvar.contiguous()  # copies only if strided; inputs never written
        z, kl_part = _launch_forward(mu_c, lv_c, seed, training)
        kl = (kl_part.sum() / mu.shape[0]).to(mu.dtype)
        seed_t = seed if isinstance(seed, torch.Tensor) else None
        ctx.save_for_backward(mu_c, lv_c, seed_t)
        ctx.seed_int = None if isinstance(seed, torch.Tensor) else seed
        ctx.training = training
        if not training:
            z = mu.new_empty(0)  # not used; avoids returning an input from forward
        return z, kl

    @staticmethod
    def backward(ctx, grad_z, grad_kl):
        mu, logvar, seed_t = ctx.saved_tensors
        has_gz = grad_z is not None and ctx.training
        n = mu.numel()
        dmu, dlv = torch.empty_like(mu), torch.empty_like(logvar)
        seed_ptr, seed_value, from_ptr = _seed_args(seed_t if seed_t is not None else ctx.seed_int, mu.device)
        gz = grad_z.contiguous() if has_gz else dmu  # dummy pointer when absent
        gkl = grad_kl.reshape(1) if grad_kl is not None else dmu
        pme_bwd_kernel[(triton.cdiv(n, _BLOCK),)](
            mu, logvar, seed_ptr, seed_value, gz, gkl, dmu, dlv, n, 1.0 / mu.shape[0],
            SEED_FROM_PTR=from_ptr, TRAINING=ctx.training, HAS_GZ=has_gz, HAS_GKL=grad_kl is not None,
            BLOCK=_BLOCK, num_warps=_BWD_WARPS,
        )
        return dmu, dlv, None, None
