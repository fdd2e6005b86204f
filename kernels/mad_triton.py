"""Tiled Triton MAD loss (see :mod:`kernels.mad` for the definition); never materialises ``N x N``.

Notation: ``S = F_s F_s^T``, ``T = F_t F_t^T``; ``d_i = max(||G[i, seg]||, eps)`` per row ``i`` and
column segment (one segment, or two with ``split_halves``); ``Sh = S / d^s``, ``Th = T / d^t``;
``omega_ij = w_j`` (column variant) or ``w_i`` (row variant).

Forward, ONE pass (:func:`mad_stats_kernel`) over ``(row block, column block)`` tiles, recomputing
the Gram tiles with ``tl.dot`` over ``D``. A norm-then-normalise scheme needs two passes (the row
norm is known only after the whole row); instead the kernel accumulates per row and segment
``sum S^2``, ``sum T^2``, ``A = sum S^2 omega``, ``B = sum S T omega``, ``C = sum T^2 omega`` and the
host recombines, in float64, ``loss_i = A/a^2 - 2B/(ab) + C/b^2`` and the backward's row statistic
``c_i = <Sh_i, dSh_i> = 2 (A/a^2 - B/(ab))`` with ``dSh = 2 (Sh - Th) omega`` (see :func:`_row_stats`).

Backward (``docs/methods.md`` §6.3), :func:`mad_grad_kernel`:

* ``dS_ij = (dSh_ij - [n_i > eps] c_i Sh_ij) / d_i`` (the Jacobian of a row normalisation);
* ``dF_s = (dS + dS^T) F_s``. ``S`` is symmetric, so the tile ``(i, j)`` of ``S`` also gives the
  entries ``(j, i)``: one recomputed tile yields both ``dS[i, j]`` and ``dS[j, i]^T``, and
  ``dF_s[i] += (dS[i, j] + dS[j, i]^T) F_s[j]`` accumulates tile by tile in registers.

Cost: the forward computes both Grams once (``2 N^2 D`` FLOP each, 2 "Gram units"); the backward
recomputes them once per ``NUM_DO * BLOCK_DO`` (up to 512) output columns (the accumulators must
fit in registers; once at D = 512) plus one Gram unit for ``E F``: about 5 units for forward +
backward at D <= 512, against about 4 GEMM units plus ~20 passes over ``N x N`` fp32 matrices for
eager. Memory: ``O(N * D)`` plus ``O(N)`` statistics and ``O(splits * N * D)`` fp32 partials.

A second grid axis splits the column loop (``splits``) so that ``N = 9600`` gives enough programs to
fill an H100; partial sums are reduced by torch afterwards, deterministically (no atomics).
Block sizes come from :func:`_config` (no ``@triton.autotune``: it does not run under the interpreter).
"""
from __future__ import annotations

import torch

from ._triton import tl, triton  # stand-ins without triton: importable, kernels raise
from ._utils import interpreting
from .mad import EPS


@triton.jit
def _gram_tile(f_ptr, stride, rows, cols, row_mask, col_mask, D,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr):
    """``F[rows] @ F[cols]^T`` as a ``[BLOCK_M, BLOCK_N]`` fp32 tile; masked rows/cols give 0."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        k_mask = ks < D
        a = tl.load(f_ptr + rows[:, None] * stride + ks[None, :], mask=row_mask[:, None] & k_mask[None, :], other=0.0)
        # load the column block already transposed ([BLOCK_K, BLOCK_N]) so tl.dot needs no tl.trans
        b = tl.load(f_ptr + cols[None, :] * stride + ks[:, None], mask=col_mask[None, :] & k_mask[:, None], other=0.0)
        acc = tl.dot(a.to(tl.float32), b.to(tl.float32), acc, input_precision=PRECISION)
    return acc


@triton.jit
def mad_stats_kernel(
    fs_ptr, ft_ptr, w_ptr,  # [N, D_s], [N, D_t] (unit column stride), [N]
    part_ptr,  # [splits, 10, N] fp64 out: per-row partial sums, see step 4
    N, DS, DT, stride_s, stride_t,
    SPLIT,  # first column of segment 1 (N when there is a single segment)
    ROW_WEIGHT: tl.constexpr,  # True: omega_ij = w_i ("row"); False: w_j ("column")
    SPLITS: tl.constexpr,  # programs along the column loop
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, PRECISION: tl.constexpr,
):
    """The whole forward in one pass: every per-row sum the loss and the backward need."""
    # 1. rows of this program; column blocks pid_s, pid_s + SPLITS, ...
    pid_m = tl.program_id(0)
    pid_s = tl.program_id(1)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < N
    w_row = tl.load(w_ptr + rows, mask=row_mask, other=0.0).to(tl.float64)[:, None]
    zero = tl.zeros((BLOCK_M,), dtype=tl.float64)
    ss0, ss1, tt0, tt1, a0, a1, b0, b1, c0, c1 = zero, zero, zero, zero, zero, zero, zero, zero, zero, zero
    for n0 in range(pid_s * BLOCK_N, N, SPLITS * BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_mask = cols < N
        # 2. recompute the Gram tiles (masked entries are exactly 0, so they add nothing below)
        s = _gram_tile(fs_ptr, stride_s, rows, cols, row_mask, col_mask, DS, BLOCK_M, BLOCK_N, BLOCK_K, PRECISION)
        t = _gram_tile(ft_ptr, stride_t, rows, cols, row_mask, col_mask, DT, BLOCK_M, BLOCK_N, BLOCK_K, PRECISION)
        # 3. float64 from here: the loss is recombined from these sums (cancellation), and this
        #    elementwise work is ~5 flop per entry against 2 * D for the Gram tiles, so it is cheap
        s = s.to(tl.float64)
        t = t.to(tl.float64)
        if ROW_WEIGHT:
            omega = w_row
        else:
            omega = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(tl.float64)[None, :]
        seg1 = (cols >= SPLIT)[None, :]
        ss, tt = s * s, t * t
        sso, sto, tto = ss * omega, s * t * omega, tt * omega
        # 4. per segment: sum S^2, sum T^2 (norms), sum S^2 w, sum S T w, sum T^2 w
        ss0 += tl.sum(tl.where(seg1, 0.0, ss), axis=1)
        ss1 += tl.sum(tl.where(seg1, ss, 0.0), axis=1)
        tt0 += tl.sum(tl.where(seg1, 0.0, tt), axis=1)
        tt1 += tl.sum(tl.where(seg1, tt, 0.0), axis=1)
        a0 += tl.sum(tl.where(seg1, 0.0, sso), axis=1)
        a1 += tl.sum(tl.where(seg1, sso, 0.0), axis=1)
        b0 += tl.sum(tl.where(seg1, 0.0, sto), axis=1)
        b1 += tl.sum(tl.where(seg1, sto, 0.0), axis=1)
        c0 += tl.sum(tl.where(seg1, 0.0, tto), axis=1)
        c1 += tl.sum(tl.where(seg1, tto, 0.0), axis=1)
    # 5. store this program's partial sums (reduced over splits by torch)
    out = part_ptr + pid_s.to(tl.int64) * 10 * N + rows
    tl.store(out, ss0, mask=row_mask)
    tl.store(out + N, ss1, mask=row_mask)
    tl.store(out + 2 * N, tt0, mask=row_mask)
    tl.store(out + 3 * N, tt1, mask=row_mask)
    tl.store(out + 4 * N, a0, mask=row_mask)
    tl.store(out + 5 * N, a1, mask=row_mask)
    tl.store(out + 6 * N, b0, mask=row_mask)
    tl.store(out + 7 * N, b1, mask=row_mask)
    tl.store(out + 8 * N, c0, mask=row_mask)
    tl.store(out + 9 * N, c1, mask=row_mask)


@triton.jit
def _normalised_tiles(s, t, ns0, ns1, nt0, nt1, seg1, EPS: tl.constexpr):
    """Row-normalise Gram tiles; ``n*`` are row norms broadcast to the tile, ``seg1`` picks segment 1."""
    ds = tl.maximum(tl.where(seg1, ns1, ns0), EPS)
    dt = tl.maximum(tl.where(seg1, nt1, nt0), EPS)
    return s / ds, t / dt, ds


@triton.jit
def _accumulate_chunk(acc, e, fs_ptr, stride, cols, col_mask, d0, DS, BLOCK_DO: tl.constexpr, PRECISION: tl.constexpr):
    """``acc += e @ F_s[cols, d0:d0 + BLOCK_DO]``."""
    dcols = d0 + tl.arange(0, BLOCK_DO)
    f_j = tl.load(fs_ptr + cols[:, None] * stride + dcols[None, :], mask=col_mask[:, None] & (dcols < DS)[None, :],
                  other=0.0)
    return tl.dot(e, f_j.to(tl.float32), acc, input_precision=PRECISION)


@triton.jit
def _store_chunk(dfs_ptr, acc, rows, row_mask, d0, DS, BLOCK_DO: tl.constexpr):
    dcols = d0 + tl.arange(0, BLOCK_DO)
    tl.store(dfs_ptr + rows[:, None] * DS + dcols[None, :], acc, mask=row_mask[:, None] & (dcols < DS)[None, :])


@triton.jit
def mad_grad_kernel(
    fs_ptr, ft_ptr, w_ptr, norms_ptr,
    c_ptr,  # [2, N] fp32: c_i per segment (already summed over splits)
    grad_ptr,  # [1] fp32: upstream gradient of the scalar loss (read on device: no host sync)
    dfs_ptr,  # [splits, N, DS] fp32 out: partial dF_s
    N, DS, DT, stride_s, stride_t, SPLIT,
    ROW_WEIGHT: tl.constexpr, EPS: tl.constexpr, SPLITS: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_DO: tl.constexpr,
    NUM_DO: tl.constexpr,  # 1, 2 or 4 accumulators of BLOCK_DO columns: one Gram recompute serves them all
    PRECISION: tl.constexpr,
):
    """Backward: ``dF_s[i, chunk] = sum_j (dS[i, j] + dS[j, i]) F_s[j, chunk]``, tile by tile."""
    # 1. this program: row block pid_m, output columns [d0, d0 + NUM_DO * BLOCK_DO), column split pid_s.
    #    Separate accumulators (not one [BLOCK_M, NUM_DO * BLOCK_DO]) keep each tl.dot and each loaded
    #    feature tile small, while the costly recomputed Gram tiles are shared by all of them.
    pid_m = tl.program_id(0)
    pid_d = tl.program_id(1)
    pid_s = tl.program_id(2)
    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    row_mask = rows < N
    d0 = pid_d * (NUM_DO * BLOCK_DO)
    # 2. statistics of the rows i ([BLOCK_M, 1]); those of the columns j are loaded per tile below
    ns0_i = tl.load(norms_ptr + rows, mask=row_mask, other=1.0)[:, None]
    ns1_i = tl.load(norms_ptr + N + rows, mask=row_mask, other=1.0)[:, None]
    nt0_i = tl.load(norms_ptr + 2 * N + rows, mask=row_mask, other=1.0)[:, None]
    nt1_i = tl.load(norms_ptr + 3 * N + rows, mask=row_mask, other=1.0)[:, None]
    c0_i = tl.load(c_ptr + rows, mask=row_mask, other=0.0)[:, None]
    c1_i = tl.load(c_ptr + N + rows, mask=row_mask, other=0.0)[:, None]
    w_i = tl.load(w_ptr + rows, mask=row_mask, other=0.0).to(tl.float32)[:, None]
    seg1_i = (rows >= SPLIT)[:, None]  # segment of column i in the transposed entries dS[j, i]
    acc0 = tl.zeros((BLOCK_M, BLOCK_DO), dtype=tl.float32)
    acc1 = tl.zeros((BLOCK_M, BLOCK_DO), dtype=tl.float32)
    acc2 = tl.zeros((BLOCK_M, BLOCK_DO), dtype=tl.float32)
    acc3 = tl.zeros((BLOCK_M, BLOCK_DO), dtype=tl.float32)
    for n0 in range(pid_s * BLOCK_N, N, SPLITS * BLOCK_N):
        cols = n0 + tl.arange(0, BLOCK_N)
        col_mask = cols < N
        ns0_j = tl.load(norms_ptr + cols, mask=col_mask, other=1.0)[None, :]
        ns1_j = tl.load(norms_ptr + N + cols, mask=col_mask, other=1.0)[None, :]
        nt0_j = tl.load(norms_ptr + 2 * N + cols, mask=col_mask, other=1.0)[None, :]
        nt1_j = tl.load(norms_ptr + 3 * N + cols, mask=col_mask, other=1.0)[None, :]
        c0_j = tl.load(c_ptr + cols, mask=col_mask, other=0.0)[None, :]
        c1_j = tl.load(c_ptr + N + cols, mask=col_mask, other=0.0)[None, :]
        w_j = tl.load(w_ptr + cols, mask=col_mask, other=0.0).to(tl.float32)[None, :]
        seg1_j = (cols >= SPLIT)[None, :]
        # 3. one pair of recomputed tiles S[i, j], T[i, j] (= S[j, i]^T, T[j, i]^T: Grams are symmetric)
        s = _gram_tile(fs_ptr, stride_s, rows, cols, row_mask, col_mask, DS, BLOCK_M, BLOCK_N, BLOCK_K, PRECISION)
        t = _gram_tile(ft_ptr, stride_t, rows, cols, row_mask, col_mask, DT, BLOCK_M, BLOCK_N, BLOCK_K, PRECISION)
        # 4. dS[i, j]: row i's normalisation, segment of column j
        sh, th, ds = _normalised_tiles(s, t, ns0_i, ns1_i, nt0_i, nt1_i, seg1_j, EPS)
        if ROW_WEIGHT:
            omega = w_i
        else:
            omega = w_j
        c = tl.where(seg1_j, c1_i, c0_i)
        c = tl.where(tl.where(seg1_j, ns1_i, ns0_i) > EPS, c, 0.0)  # clamped norm: constant denominator
        e = (2.0 * (sh - th) * omega - c * sh) / ds
        # 5. dS[j, i]^T: row j's normalisation, segment of column i, weight of (j, i)
        sh, th, ds = _normalised_tiles(s, t, ns0_j, ns1_j, nt0_j, nt1_j, seg1_i, EPS)
        if ROW_WEIGHT:
            omega = w_j
        else:
            omega = w_i
        c = tl.where(seg1_i, c1_j, c0_j)
        c = tl.where(tl.where(seg1_i, ns1_j, ns0_j) > EPS, c, 0.0)
        e += (2.0 * (sh - th) * omega - c * sh) / ds
        # 6. dF_s[i, chunk] += (dS[i, j] + dS[j, i]^T) F_s[j, chunk] for each of this program's chunks
        acc0 = _accumulate_chunk(acc0, e, fs_ptr, stride_s, cols, col_mask, d0, DS, BLOCK_DO, PRECISION)
        if NUM_DO > 1:
            acc1 = _accumulate_chunk(acc1, e, fs_ptr, stride_s, cols, col_mask, d0 + BLOCK_DO, DS, BLOCK_DO,
                                     PRECISION)
        if NUM_DO > 2:
            acc2 = _accumulate_chunk(acc2, e, fs_ptr, stride_s, cols, col_mask, d0 + 2 * BLOCK_DO, DS, BLOCK_DO,
                                     PRECISION)
            acc3 = _accumulate_chunk(acc3, e, fs_ptr, stride_s, cols, col_mask, d0 + 3 * BLOCK_DO, DS, BLOCK_DO,
                                     PRECISION)
    # 7. chain rule with the upstream scalar gradient, then store the partials
    g = tl.load(grad_ptr)
    out = dfs_ptr + pid_s.to(tl.int64) * N * DS
    _store_chunk(out, acc0 * g, rows, row_mask, d0, DS, BLOCK_DO)
    if NUM_DO > 1:
        _store_chunk(out, acc1 * g, rows, row_mask, d0 + BLOCK_DO, DS, BLOCK_DO)
    if NUM_DO > 2:
        _store_chunk(out, acc2 * g, rows, row_mask, d0 + 2 * BLOCK_DO, DS, BLOCK_DO)
        _store_chunk(out, acc3 * g, rows, row_mask, d0 + 3 * BLOCK_DO, DS, BLOCK_DO)


_FORCE_SPLITS = None  # tests set this to cover the split column loop on CPU


def _sm_count(device: torch.device):
    """Streaming multiprocessors of a CUDA ``device`` (None otherwise). The one device query of
    :func:`_config`; :mod:`kernels.compile_check` answers it per compile target instead."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else None


def _config(n: int, d_s: int, device: torch.device, backward: bool = False, precision: str = "ieee") -> dict:
    """Block sizes and grid split. Heuristic, not autotuned (the interpreter cannot autotune).

    * ``tl.dot`` needs every block dimension >= 16.
    * GPU forward: 32 x 32 Gram tiles, 8 warps (64 x 64 tiles would reuse each K-slice more, but spill on
      sm_80 with the ten float64 row accumulators).
    * GPU backward, tf32 (tensor cores): 32 x 32 tiles and up to 4 accumulators of ``[32, 128]`` fp32
      (64 registers per thread at 8 warps), so one Gram recomputation covers 512 output columns: D = 512
      costs one. ieee (the default: fp32 matmuls without TF32): 16 x 16 tiles and 2 accumulators, the
      largest setting that compiles without register spills for sm_80 and sm_90 (see below).
    * The column loop is split so that about four programs per SM are in flight.
    * Under the interpreter every program instance costs milliseconds: large tiles, no split; the
      backward uses 32-wide chunks so that small test shapes still cover several accumulators.
    These sizes are untuned guesses until measured on a GPU.
    """
    interpret = interpreting()
    if interpret:
        block_m, block_k, block_do = 64, max(16, min(64, triton.next_power_of_2(d_s))), 32
    elif backward and precision == "ieee":
        # ieee fp32 tl.dot runs on FMA units in a blocked layout that keeps whole K-slices of both operands
        # in registers: 32 x 32 tiles with 4 [32, 128] accumulators spilled 1.5 KB per thread (ptxas -v,
        # sm_90), 2 accumulators still 440 B. 16 x 16 tiles with 2 accumulators: 186 registers, no spill
        # (results/KERNELS.md, static table); D = 512 then costs 2 Gram recomputations instead of 1.
        # (BLOCK_K 16 for D <= 32: with 32, ptxas capped the D = 32 variant at 96 registers and spilled 20 B.)
        block_m, block_k, block_do = 16, (16 if d_s <= 32 else 32), 128
    else:
        # 32 x 32 Gram tiles: 64 x 64 forward tiles (more reuse per K-slice) spilled 24-320 B on sm_80.
        block_m, block_k, block_do = 32, 32, 128
    block_m = block_n = max(16, min(block_m, triton.next_power_of_2(n)))
    block_do = max(16, min(block_do, triton.next_power_of_2(d_s)))
    max_do = 2 if (backward and precision == "ieee" and not interpret) else 4
    num_do = min(max_do, triton.next_power_of_2(triton.cdiv(d_s, block_do)))
    d_programs = triton.cdiv(d_s, block_do * num_do)
    row_blocks, col_blocks = triton.cdiv(n, block_m), triton.cdiv(n, block_n)
    splits = 1
    if _FORCE_SPLITS is not None:  # test hook: exercise the split-and-reduce path under the interpreter
        splits = min(_FORCE_SPLITS, col_blocks)
    elif not interpret and _sm_count(device) is not None:
        sms = _sm_count(device)
        programs = row_blocks * (d_programs if backward else 1)
        splits = max(1, min(col_blocks, triton.cdiv(4 * sms, programs)))
    # 16 x 16 tiles (ieee backward) hold one tile entry per thread at 4 warps; at 8 warps ptxas capped the
    # small-D variants at 64-80 registers and spilled 8-24 B.
    num_warps = 4 if block_m == 16 and backward and not interpret else 8
    return dict(BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, BLOCK_DO=block_do, NUM_DO=num_do,
                num_warps=num_warps,
                d_programs=d_programs, splits=splits, row_blocks=row_blocks)


def _precision() -> str:
    # Follow eager matmul semantics: TF32 tensor cores only when torch allows them for fp32 matmuls.
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


def _row_stats(student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor, row_weight: bool, split: int):
    """The forward pass. Returns ``(loss [] fp32, norms [4, N] fp32, c [2, N] fp32)``.

    With ``a_i = max(||S_i||, eps)``, ``b_i = max(||T_i||, eps)`` and per-row sums
    ``A = sum_j S^2 omega``, ``B = sum_j S T omega``, ``C = sum_j T^2 omega`` (per segment):

    * loss row ``i`` = ``sum_j (S/a - T/b)^2 omega = A/a^2 - 2B/(ab) + C/b^2``;
    * ``c_i = <Sh_i, dSh_i> = 2 sum_j (S/a)(S/a - T/b) omega = 2 (A/a^2 - B/(ab))``.

    The norms are only known after a full row, but these sums are not: one pass over the Gram
    tiles suffices (not the two passes a norm-then-normalise scheme needs), halving the forward FLOPs.
    The recombination cancels when student and teacher agree, so the sums are float64 and so is this
    O(N) epilogue.
    """
    n, d_s = student.shape
    cfg = _config(n, d_s, student.device, precision=_precision())
    splits = cfg["splits"]
    part = torch.empty((splits, 10, n), dtype=torch.float64, device=student.device)
    mad_stats_kernel[(cfg["row_blocks"], splits)](
        student, teacher, weights, part, n, d_s, teacher.shape[1], student.stride(0), teacher.stride(0), split,
        ROW_WEIGHT=row_weight, SPLITS=splits, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
        BLOCK_K=cfg["BLOCK_K"], PRECISION=_precision(), num_warps=8,  # 8 warps: fp64 tile copies in registers
    )
    sums = part[0] if splits == 1 else part.sum(0)
    norms = sums[:4].sqrt()  # S seg 0, S seg 1, T seg 0, T seg 1
    a, b = norms[:2].clamp_min(EPS), norms[2:].clamp_min(EPS)
    ss, st = sums[4:6] / (a * a), sums[6:8] / (a * b)
    loss = (ss - 2.0 * st + sums[8:10] / (b * b)).clamp_min(0.0).sum()  # each row term is a sum of squares
    return loss.float(), norms.float(), (2.0 * (ss - st)).float()


class MADLossFunction(torch.autograd.Function):
    """``(student [N, D], teacher [N, D_t], weights [N], row_weight, split_halves) -> loss []``.

    Inputs are validated by :func:`kernels.mad.mad_loss`. Only ``student`` receives a gradient.
    """

    @staticmethod
    def forward(ctx, student, teacher, weights, row_weight: bool, split_halves: bool):
        # unit column stride is all the kernels assume; copies (never writes) only when needed
        student = student if student.stride(1) == 1 else student.contiguous()
        teacher = teacher if teacher.stride(1) == 1 else teacher.contiguous()
        weights = weights.contiguous()
        n = student.shape[0]
        split = (n + 1) // 2 if split_halves else n  # torch.chunk(2) convention, as in the reference
        loss, norms, c = _row_stats(student, teacher, weights, row_weight, split)
        ctx.save_for_backward(student, teacher, weights, norms, c)
        ctx.row_weight, ctx.split = row_weight, split
        return loss.to(student.dtype)

    @staticmethod
    def backward(ctx, grad_loss):
        student, teacher, weights, norms, c = ctx.saved_tensors
        if not ctx.needs_input_grad[0]:
            return None, None, None, None, None
        n, d_s = student.shape
        cfg = _config(n, d_s, student.device, backward=True, precision=_precision())
        splits = cfg["splits"]
        grad = grad_loss.reshape(1).to(torch.float32)
        part = torch.empty((splits, n, d_s), dtype=torch.float32, device=student.device)
        grid = (cfg["row_blocks"], cfg["d_programs"], splits)
        mad_grad_kernel[grid](
            student, teacher, weights, norms, c, grad, part,
            n, d_s, teacher.shape[1], student.stride(0), teacher.stride(0), ctx.split,
            ROW_WEIGHT=ctx.row_weight, EPS=EPS, SPLITS=splits, BLOCK_M=cfg["BLOCK_M"], BLOCK_N=cfg["BLOCK_N"],
            BLOCK_K=cfg["BLOCK_K"], BLOCK_DO=cfg["BLOCK_DO"], NUM_DO=cfg["NUM_DO"], PRECISION=_precision(),
            num_warps=cfg["num_warps"],
        )
        grad_student = (part[0] if splits == 1 else part.sum(0)).to(student.dtype)
        return grad_student, None, None, None, None
