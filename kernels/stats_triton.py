"""Triton kernels for op 1: per-modality softmax statistics and the weighted multimodal CE.

Design (``docs/kernels-and-style.md`` §2.8 and §5):

* **One launch for all modalities.** Logits are one ``[M, B, C]`` tensor (a list is stacked by the
  caller -- one copy), grid ``(cdiv(B, BLOCK_B), M)``.
* **Tiles.** Each program owns ``BLOCK_B`` rows and walks the classes in ``BLOCK_C`` chunks with an
  online softmax. When ``C <= BLOCK_C`` (the realistic C = 6..309) the loop runs once, so the same
  kernel is the 2-D ``[BLOCK_B, BLOCK_C]`` small-C tile (several rows per program, attorch-style)
  and the long-row online loop (Liger-style). Block sizes come from :func:`launch_config` (a
  heuristic: ``@triton.autotune`` does not run under the interpreter).
* **Numerics.** Loads are cast to fp32 at once (bf16 arithmetic breaks the interpreter), exp is
  ``exp2(x * log2 e)``, masked lanes hold ``-inf`` and fully masked rows are guarded so no
  ``-inf - -inf`` NaN appears. Row offsets are int64. A NaN or +inf logit makes its row's outputs
  NaN (as eager and C++), and a label outside ``[0, C)`` (compared in int64) a NaN ce.
* **Batch reductions.** Per-modality sums use ``tl.atomic_add`` into an ``[4 * M + 1]`` fp32 buffer
  already scaled (by ``1/B`` for means), so the returned ``ce_mean`` etc. are views -- no extra
  launch. fp32 atomics make the last bits of those sums order-dependent (non-deterministic across
  runs on a GPU); the per-row outputs are deterministic.
* **Backward** recomputes ``p = exp((z - max) - log_s)`` from the logits and the row max and
  log-sum saved *apart* by the forward (``[2, M, B]`` "row state"), and writes
  ``w * (p - onehot) / B * grad_out`` into a **new** buffer; the caller's logits are never written.
  Why apart: ``exp(z - lse)`` with ``lse = max + log_s`` rounded to fp32 has an absolute error of
  ``|lse| * 2^-24`` in the exponent (logits ``1e4 + 0.3, 1e4 - 0.2`` gave gradients off by 3e-4 and
  rows that no longer sum to 0); ``z - max`` is exact for nearby values and ``log_s <= log C``.
"""
from __future__ import annotations

from typing import Tuple

import torch

from ._triton import tl, triton  # stand-ins without triton: importable, kernels raise
from ._utils import next_power_of_2

#: log2(e) as a constexpr: compiled @triton.jit functions may only read constexpr globals.
LOG2E = tl.constexpr(1.4426950408889634)
#: Widest class chunk held in registers per row; longer rows loop (register pressure above this).
MAX_BLOCK_C = 2048
#: Target elements per [BLOCK_B, BLOCK_C] tile (attorch-style rows-per-program heuristic).
TILE_ELEMS = 4096
MAX_BLOCK_B = 128


def launch_config(B: int, C: int) -> Tuple[int, int, int]:
    """Heuristic ``(BLOCK_B, BLOCK_C, num_warps)`` for a ``[B, C]`` problem.

    ``BLOCK_C = next_pow2(C)`` capped at :data:`MAX_BLOCK_C`; ``BLOCK_B`` fills a tile of about
    :data:`TILE_ELEMS` fp32 values (so C = 6 packs 128 rows per program, C = 309 packs 8) but never
    exceeds ``next_pow2(B)``; 4 warps for tiles up to 1k elements, else 8 -- at most 8 fp32 values per
    thread per live tile. Chosen for occupancy: 4 warps on the 2k-element tile of C = 28/31 (B = 64:
    ``[64, 32]``, 16 values per thread) took 240-246 of 255 registers on sm_80/sm_90 in the weighted
    forward: 8 resident warps per SM (2 blocks of 4) and no headroom. With 8 warps the same tile takes
    102-128 registers (forward and backward, sm_80/sm_90, no spills): 16 resident warps per SM, twice
    the occupancy (registers per variant in the static table of ``results/KERNELS.md``).
    """
    block_c = min(next_power_of_2(C), MAX_BLOCK_C)
    block_b = max(1, min(TILE_ELEMS // block_c, MAX_BLOCK_B, next_power_of_2(B)))
    num_warps = 4 if block_b * block_c <= 1024 else 8
    return block_b, block_c, num_warps


@triton.jit
def _stats_fwd_kernel(
    x_ptr, y_ptr, w_ptr,
    lse_ptr, ce_ptr, ent_ptr, pt_ptr, sums_ptr, state_ptr,
    B, C,
    stride_xm, stride_xb, stride_xc, stride_y, stride_wm, stride_wb,
    inv_B,
    HAS_WEIGHT: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Per-row lse/ce/entropy/p_true and per-modality sums for one ``[BLOCK_B]`` row block of modality m.

    Args:
        x_ptr: logits ``[M, B, C]`` (any float dtype, strides given).
        y_ptr: labels ``[B]`` (int32/int64).
        w_ptr: weights viewed as ``[M, B]`` via ``stride_wm``/``stride_wb`` (only if HAS_WEIGHT).
        lse_ptr, ce_ptr, ent_ptr, pt_ptr: fp32 ``[M, B]`` contiguous outputs.
        sums_ptr: fp32 ``[4 * M + 1]`` zeroed accumulator laid out ``[4, M]``: rows ce_mean,
            entropy_mean, p_true_sum, abs_logit_mean; then the weighted loss ``sum_m mean_b w * ce``.
        state_ptr: fp32 ``[2, M, B]`` output: row max, then ``log sum exp(z - max)`` (for the backward).
        B, C: batch and class counts. inv_B: ``1 / B``.
    """
    # 1. Locate the row block and the modality; offsets in int64 (M*B*C may exceed 2^31).
    pid_b = tl.program_id(0)
    m = tl.program_id(1).to(tl.int64)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    rows64 = rows.to(tl.int64)
    # Labels stay int64 (an int32 cast would wrap labels >= 2^31 into range). A label outside [0, C)
    # matches no class: its row's outputs are NaN below (device-side, no host sync).
    labels = tl.load(y_ptr + rows64 * stride_y, mask=row_mask, other=0).to(tl.int64)
    label_ok = (labels >= 0) & (labels < C)
    row_base = x_ptr + m * stride_xm + rows64[:, None] * stride_xb

    # 2. Online softmax over class chunks. Running state per row, relative to the running max mx:
    #    s = sum exp(z - mx), a = sum exp(z - mx) * (z - mx) (entropy numerator), plus sum |z| and z_y.
    mx = tl.full([BLOCK_B], float("-inf"), tl.float32)
    s = tl.zeros([BLOCK_B], tl.float32)
    a = tl.zeros([BLOCK_B], tl.float32)
    abs_sum = tl.zeros([BLOCK_B], tl.float32)
    z_true = tl.zeros([BLOCK_B], tl.float32)
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        mask = row_mask[:, None] & (cols < C)[None, :]
        # Cast to fp32 right after the load: bf16 arithmetic is not emulated by the interpreter.
        z = tl.load(row_base + cols[None, :].to(tl.int64) * stride_xc, mask=mask, other=float("-inf")).to(tl.float32)
        new_mx = tl.maximum(mx, tl.max(z, axis=1))
        # Fully masked rows (past B) keep mx = -inf: shift by 0 there so no -inf - -inf = NaN appears.
        shift = tl.where(new_mx == float("-inf"), 0.0, new_mx)
        alpha = tl.exp2((mx - shift) * LOG2E)  # rescale of the old state; exp2(-inf) = 0 on the first chunk
        delta = tl.where(mx == float("-inf"), 0.0, mx - shift)
        t = tl.where(mask, z - shift[:, None], 0.0)
        e = tl.where(mask, tl.exp2(t * LOG2E), 0.0)
        # a is sum e*(z - mx_old); moving the reference to mx_new adds (mx_old - mx_new) * s_old.
        a = alpha * (a + delta * s) + tl.sum(e * t, axis=1)
        s = alpha * s + tl.sum(e, axis=1)
        mx = new_mx
        zf = tl.where(mask, z, 0.0)
        abs_sum += tl.sum(tl.abs(zf), axis=1)
        z_true += tl.sum(tl.where(cols[None, :].to(tl.int64) == labels[:, None], zf, 0.0), axis=1)

    # 3. Per-row results. H = log s - a / s (relative to mx, so no cancellation at |z| ~ 1e4).
    #    A row with a NaN / +inf logit gets NaN everywhere (lse, ce, entropy, p_true and the row state,
    #    so the backward's gradient is NaN too); an out-of-range label makes ce and p_true NaN.
    #    tl.max ignores NaN, but a NaN logit makes its t and e NaN, and a +inf one makes t = inf - inf =
    #    NaN: s is NaN exactly for those rows (no extra per-row state). The old ``s_safe`` turned that
    #    NaN into 1 (finite, wrong outputs); now the row is flagged.
    nan = float("nan")
    bad = s != s
    s_safe = tl.where(s > 0, s, 1.0)
    mx_safe = tl.where(bad, nan, tl.where(mx == float("-inf"), 0.0, mx))
    log_s = tl.where(bad, nan, tl.log(s_safe))
    lse = mx_safe + log_s
    ce = tl.where(label_ok, (mx_safe - z_true) + log_s, nan)  # max - z_y first: no cancellation at |z| ~ 1e4
    ent = log_s - a / s_safe
    pt = tl.exp2(-ce * LOG2E)
    out = m * B + rows64
    tl.store(lse_ptr + out, lse, mask=row_mask)
    tl.store(ce_ptr + out, ce, mask=row_mask)
    tl.store(ent_ptr + out, ent, mask=row_mask)
    tl.store(pt_ptr + out, pt, mask=row_mask)
    M = tl.num_programs(1)
    tl.store(state_ptr + out, mx_safe, mask=row_mask)
    tl.store(state_ptr + M * B + out, log_s, mask=row_mask)

    # 4. Per-modality partial sums, pre-scaled so the buffer holds the final means/sums.
    #    Layout [4, M] (+ loss slot) so the host splits it with one unbind.
    ce_z = tl.where(row_mask, ce, 0.0)
    tl.atomic_add(sums_ptr + 0 * M + m, tl.sum(ce_z, axis=0) * inv_B)
    tl.atomic_add(sums_ptr + 1 * M + m, tl.sum(tl.where(row_mask, ent, 0.0), axis=0) * inv_B)
    tl.atomic_add(sums_ptr + 2 * M + m, tl.sum(tl.where(row_mask, pt, 0.0), axis=0))
    tl.atomic_add(sums_ptr + 3 * M + m, tl.sum(abs_sum, axis=0) * inv_B)
    if HAS_WEIGHT:
        # 5. Weighted loss slot (after the 4*M statistics): sum_m mean_b w[m, b] * ce[m, b].
        w = tl.load(w_ptr + m * stride_wm + rows64 * stride_wb, mask=row_mask, other=0.0).to(tl.float32)
        tl.atomic_add(sums_ptr + 4 * M, tl.sum(w * ce_z, axis=0) * inv_B)


@triton.jit
def _ce_bwd_kernel(
    x_ptr, y_ptr, w_ptr, state_ptr, g_ptr, dx_ptr,
    B, C,
    stride_xm, stride_xb, stride_xc, stride_y, stride_wm, stride_wb,
    inv_B,
    BLOCK_B: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``dx[m, b, c] = w[m, b] * (p[m, b, c] - [c == y_b]) / B * grad_out`` into a new ``[M, B, C]`` buffer.

    Args:
        x_ptr: logits ``[M, B, C]`` (read only). state_ptr: fp32 ``[2, M, B]`` row max and log-sum
            saved by the forward.
        g_ptr: the scalar upstream gradient (a 1-element fp32 tensor: no host read).
        dx_ptr: contiguous ``[M, B, C]`` output in the logits dtype.
    """
    # 1. Row block, modality, per-row scale w * g / B.
    pid_b = tl.program_id(0)
    m = tl.program_id(1).to(tl.int64)
    rows = pid_b * BLOCK_B + tl.arange(0, BLOCK_B)
    row_mask = rows < B
    rows64 = rows.to(tl.int64)
    labels = tl.load(y_ptr + rows64 * stride_y, mask=row_mask, other=0).to(tl.int64)
    # An out-of-range label gives NaN gradients for its row (as its NaN ce in the forward).
    label_nan = tl.where((labels >= 0) & (labels < C), 0.0, float("nan"))
    M = tl.num_programs(1)
    mx = tl.load(state_ptr + m * B + rows64, mask=row_mask, other=0.0)
    log_s = tl.load(state_ptr + M * B + m * B + rows64, mask=row_mask, other=0.0)
    w = tl.load(w_ptr + m * stride_wm + rows64 * stride_wb, mask=row_mask, other=0.0).to(tl.float32)
    g = tl.load(g_ptr).to(tl.float32)
    scale = w * g * inv_B + label_nan
    x_base = x_ptr + m * stride_xm + rows64[:, None] * stride_xb
    dx_base = dx_ptr + (m * B + rows64[:, None]) * C
    # 2. Recompute p chunk by chunk, max and log-sum kept apart (module docstring); the -1 at the label
    #    is applied in fp32 so
    #    p_y -> 1 does not cancel catastrophically before the cast to a 16-bit dtype.
    for c0 in range(0, C, BLOCK_C):
        cols = c0 + tl.arange(0, BLOCK_C)
        mask = row_mask[:, None] & (cols < C)[None, :]
        cols64 = cols[None, :].to(tl.int64)
        z = tl.load(x_base + cols64 * stride_xc, mask=mask, other=0.0).to(tl.float32)
        p = tl.exp2(((z - mx[:, None]) - log_s[:, None]) * LOG2E)
        grad = (p - tl.where(cols64 == labels[:, None], 1.0, 0.0)) * scale[:, None]
        tl.store(dx_base + cols64, grad.to(dx_ptr.dtype.element_ty), mask=mask)


def stats_forward(x: torch.Tensor, labels: torch.Tensor, w2d: torch.Tensor = None):
    """Launch the forward kernel once for all modalities.

    Args:
        x: ``[M, B, C]`` logits. labels: ``[B]``. w2d: optional ``[M, B]`` weights (any strides).

    Returns:
        ``(lse, ce, entropy, p_true, sums, state)``: four fp32 ``[M, B]`` tensors, the fp32 ``[M*4+1]``
        buffer (``sums[:4M].view(4, M)`` rows = ce_mean, entropy_mean, p_true_sum, abs_logit_mean; then
        the weighted loss, 0 when ``w2d`` is None) and the fp32 ``[2, M, B]`` row state (max, log-sum)
        the backward needs.
    """
    M, B, C = x.shape
    f32 = dict(dtype=torch.float32, device=x.device)
    lse, ce, ent, pt = (torch.empty((M, B), **f32) for _ in range(4))
    sums = torch.zeros(M * 4 + 1, **f32)
    state = torch.empty((2, M, B), **f32)
    has_w = w2d is not None
    w = w2d if has_w else lse  # dummy pointer, never read when HAS_WEIGHT is False
    block_b, block_c, num_warps = launch_config(B, C)
    grid = (triton.cdiv(B, block_b), M)
    _stats_fwd_kernel[grid](
        x, labels, w, lse, ce, ent, pt, sums, state, B, C,
        x.stride(0), x.stride(1), x.stride(2), labels.stride(0),
        w.stride(0) if has_w else 0, w.stride(1) if has_w else 0,
        1.0 / B,
        HAS_WEIGHT=has_w, BLOCK_B=block_b, BLOCK_C=block_c, num_warps=num_warps,
    )
    return lse, ce, ent, pt, sums, state


def ce_backward(x: torch.Tensor, labels: torch.Tensor, w2d: torch.Tensor, state: torch.Tensor, grad_out: torch.Tensor):
    """Launch the backward kernel (``state``: the forward's ``[2, M, B]`` row max and log-sum); returns a
    new ``[M, B, C]`` gradient in ``x.dtype``."""
    M, B, C = x.shape
    dx = torch.empty((M, B, C), dtype=x.dtype, device=x.device)
    g = grad_out.detach().to(torch.float32).reshape(1)
    block_b, block_c, num_warps = launch_config(B, C)
    grid = (triton.cdiv(B, block_b), M)
    _ce_bwd_kernel[grid](
        x, labels, w2d, state, g, dx, B, C,
        x.stride(0), x.stride(1), x.stride(2), labels.stride(0), w2d.stride(0), w2d.stride(1),
        1.0 / B,
        BLOCK_B=block_b, BLOCK_C=block_c, num_warps=num_warps,
    )
    return dx


class WeightedCETriton(torch.autograd.Function):
    """Autograd wrapper: forward = fused stats kernel, backward = recompute-softmax kernel.

    ``apply(holder, x, labels, w2d)`` returns the scalar loss and appends the statistics of the same
    pass ``(lse, ce, entropy, p_true, sums)`` to the list ``holder``.
    """

    @staticmethod
    def forward(ctx, holder, x, labels, w2d):
        lse, ce, ent, pt, sums, state = stats_forward(x, labels, w2d)
        holder.append((lse, ce, ent, pt, sums))
        ctx.save_for_backward(x, labels, w2d, state)
        return sums[-1]

    @staticmethod
    def backward(ctx, grad_loss):
        x, labels, w2d, state = ctx.saved_tensors
        return None, ce_backward(x, labels, w2d, state, grad_loss), None, None
