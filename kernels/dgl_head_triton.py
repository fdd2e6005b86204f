"""Triton path of the DGL fused concat head (see :mod:`kernels.dgl_head` for the maths).

Design choice: the three GEMM families stay in cuBLAS and only the elementwise epilogue is a Triton
kernel.

* The GEMMs are skinny (``B = 64``, ``D_m = 512``, ``C`` in 6..309): ``M`` forward products
  ``x_m W_m^T`` and, in backward, ``M`` products ``g^T x_m`` and ``M`` products ``g_m W_m``. cuBLAS
  already runs each near its launch floor; a hand-written ``tl.dot`` kernel would not beat it and
  would need per-shape tuning that cannot be done under the CPU interpreter.
* The win of the op is structural (``docs/methods.md`` §6.2): no zero-padded ``[B, sum D]``
  concatenations, no third (fused) GEMM, no discarded ``dW`` from the unimodal loss, and one backward
  without ``retain_graph``. That is ~2.7x fewer GEMM FLOPs than the released code.
* What is left to fuse is the bias/sum epilogue: one Triton launch turns the ``M`` bias-free products
  ``P_m`` into ``z_m = P_m + b`` (in place, in our own buffer) and ``z = sum_m P_m + b``, instead of
  ``M`` bias adds plus ``M - 1`` tensor sums (and their temporaries) in eager.

The backward is pure GEMMs plus one row-sum, so it has no Triton kernel.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from ._triton import tl, triton  # stand-ins without triton: importable, kernels raise


@triton.jit
def dgl_head_epilogue_kernel(
    p_ptr,  # [M, B*C] bias-free products x_m W_m^T, contiguous; overwritten with z_m (our buffer)
    bias_ptr,  # [C]
    fused_ptr,  # [B*C] output: z = sum_m P_m + b
    n_elements,  # B * C
    num_classes,  # C
    M: tl.constexpr,  # number of modalities (unrolled)
    IS_F64: tl.constexpr,  # keep float64 inputs in float64; everything else accumulates in float32
    BLOCK: tl.constexpr,
):
    """One program handles BLOCK consecutive (b, c) entries of every modality."""
    # 1. locate this program's slice of the flattened [B, C] logits
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n_elements
    # 2. the bias broadcasts along rows: column index = flat index mod C
    b = tl.load(bias_ptr + offs % num_classes, mask=mask, other=0.0)
    if not IS_F64:
        b = b.to(tl.float32)  # bf16/fp16 arithmetic is not emulated by the interpreter; fp32 is also more accurate
    acc = b
    # 3. per modality: z_m = P_m + b (stored in place) and accumulate z = b + sum_m P_m
    for m in tl.static_range(M):
        p = tl.load(p_ptr + m * n_elements + offs, mask=mask, other=0.0)
        if not IS_F64:
            p = p.to(tl.float32)
        acc += p
        tl.store(p_ptr + m * n_elements + offs, (p + b).to(p_ptr.dtype.element_ty), mask=mask)
    # 4. fused logits
    tl.store(fused_ptr + offs, acc.to(fused_ptr.dtype.element_ty), mask=mask)


def _epilogue(products: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """Launch the epilogue on ``products [M, B, C]`` (modified in place to ``z_m``); return ``z [B, C]``."""
    n_modalities, batch, num_classes = products.shape
    fused = torch.empty((batch, num_classes), dtype=products.dtype, device=products.device)
    n_elements = batch * num_classes
    block = min(1024, triton.next_power_of_2(n_elements))
    grid = (triton.cdiv(n_elements, block),)
    dgl_head_epilogue_kernel[grid](
        products, bias, fused, n_elements, num_classes,
        M=n_modalities, IS_F64=products.dtype == torch.float64, BLOCK=block, num_warps=4,
    )
    return fused


class DGLConcatHeadFunction(torch.autograd.Function):
    """``(weight, bias, *features) -> (fused [B, C], unimodal [M, B, C])`` with DGL gradient routing.

    Inputs are validated by :func:`kernels.dgl_head.dgl_concat_head` before this is applied.
    """

    @staticmethod
    def forward(ctx, weight: torch.Tensor, bias: torch.Tensor, *features: torch.Tensor):
        widths = [x.shape[1] for x in features]
        blocks = torch.split(weight, widths, dim=1)  # views, no copy
        batch, num_classes = features[0].shape[0], weight.shape[0]
        # 1. M skinny GEMMs straight into one [M, B, C] buffer that we own (no concatenation)
        products = torch.empty((len(features), batch, num_classes), dtype=weight.dtype, device=weight.device)
        for m, (x, w_m) in enumerate(zip(features, blocks)):
            torch.mm(x, w_m.t(), out=products[m])
        # 2. one epilogue launch: z_m = P_m + b in place, z = sum_m P_m + b
        fused = _epilogue(products, bias)
        ctx.widths = widths
        ctx.save_for_backward(weight, *features)
        return fused, products

    @staticmethod
    def backward(ctx, grad_fused: Optional[torch.Tensor], grad_unimodal: Optional[torch.Tensor]):
        weight, *features = ctx.saved_tensors
        blocks = torch.split(weight, ctx.widths, dim=1)
        grad_weight = grad_bias = None
        # 1. fused-logit gradient -> head only: dW_m = g^T x_m, db = sum over rows of g
        if grad_fused is not None:
            if ctx.needs_input_grad[0]:
                grad_weight = torch.cat([grad_fused.t() @ x for x in features], dim=1)
            if ctx.needs_input_grad[1]:
                grad_bias = grad_fused.sum(0)
        # 2. unimodal-logit gradient -> encoders only: dx_m = g_m W_m (W_m is a strided view, no copy)
        grad_features: Tuple[Optional[torch.Tensor], ...] = tuple(
            grad_unimodal[m] @ w_m if grad_unimodal is not None and ctx.needs_input_grad[2 + m] else None
            for m, w_m in enumerate(blocks)
        )
        return (grad_weight, grad_bias) + grad_features
