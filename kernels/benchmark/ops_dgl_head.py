"""Benchmark: DGL fused concat head, one full loss step (``docs/methods.md`` §2, §6.2).

Providers (all compute ``L = CE(z, y) + alpha * sum_m CE(z_m, y)`` with DGL gradient routing):

* ``eager`` (baseline): :func:`kernels.dgl_head.dgl_concat_head_reference`, single backward.
* ``released``: the released code, zero-padded concatenations and two backward passes
  (``retain_graph``), :func:`kernels.dgl_head.dgl_released_step`.
* ``compile``: ``torch.compile`` of the eager loss (CUDA only: compiling on CPU takes ~20 s per shape).
* ``triton``: :func:`kernels.dgl_head.dgl_concat_head` with cuBLAS GEMMs and the Triton epilogue.

The op is launch-bound at these shapes (``B = 64``, ``C <= 309``): report microseconds, not GB/s.
Every provider returns ``(fused, unimodal)`` in "fwd" mode and the scalar loss in "fwd_bwd" mode.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import torch
import torch.nn.functional as F

from kernels.benchmark.registry import BenchOp, Provider, lazily_compiled, needs_cuda, register_op
from kernels.dgl_head import dgl_concat_head, dgl_concat_head_reference, dgl_released_logits, dgl_released_step

ALPHA = 2.0


def make_inputs(shape: Dict[str, Any], device, dtype) -> Dict[str, Any]:
    """``shape = {"M", "B", "D", "C"}``: M modalities of ``[B, D]`` features, head ``[C, M*D]``."""
    g = torch.Generator().manual_seed(0)
    m, b, d, c = shape["M"], shape["B"], shape["D"], shape["C"]
    feats = [torch.randn(b, d, generator=g).to(device, dtype).requires_grad_() for _ in range(m)]
    weight = (torch.randn(c, m * d, generator=g) * (2.0 / (c + m * d)) ** 0.5).to(device, dtype).requires_grad_()
    bias = torch.zeros(c, device=device, dtype=dtype).requires_grad_()
    labels = torch.randint(0, c, (b,), generator=g).to(device)
    return {"features": feats, "weight": weight, "bias": bias, "labels": labels}


def _reset_grads(inputs: Dict[str, Any]) -> None:
    for t in [inputs["weight"], inputs["bias"], *inputs["features"]]:
        t.grad = None


def _loss(fused: torch.Tensor, unimodal: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(fused, labels) + ALPHA * sum(F.cross_entropy(u, labels) for u in unimodal)


def _single_backward(head: Callable) -> Callable[[Dict[str, Any], str], Callable[[], Any]]:
    """Provider factory for the single-backward forms (eager, compile, triton)."""

    def make(inputs: Dict[str, Any], mode: str) -> Callable[[], Any]:
        feats, weight, bias, labels = inputs["features"], inputs["weight"], inputs["bias"], inputs["labels"]
        if mode == "fwd":
            def fwd():
                with torch.no_grad():
                    return head(feats, weight, bias)
            return fwd

        def fwd_bwd():
            _reset_grads(inputs)
            loss = _loss(*head(feats, weight, bias), labels)
            loss.backward()
            return loss
        return fwd_bwd

    return make


def _make_released(inputs: Dict[str, Any], mode: str) -> Callable[[], Any]:
    feats, weight, bias, labels = inputs["features"], inputs["weight"], inputs["bias"], inputs["labels"]
    if mode == "fwd":
        def fwd():
            with torch.no_grad():
                return dgl_released_logits(feats, weight, bias)
        return fwd

    def fwd_bwd():
        _reset_grads(inputs)
        return dgl_released_step(feats, weight, bias, labels, ALPHA)[2]  # the loss, like the other providers
    return fwd_bwd




def model_bytes(shape: Dict[str, Any], mode: str) -> int:
    """Minimal fp32 traffic: read features, W, b; write M + 1 logit tensors (+ the mirror in backward)."""
    m, b, d, c = shape["M"], shape["B"], shape["D"], shape["C"]
    fwd = 4 * (m * b * d + c * m * d + c + (m + 1) * b * c)
    if mode == "fwd":
        return fwd
    # backward: read the M + 1 logit gradients, features and W again; write dW, db and dx
    return fwd + 4 * ((m + 1) * b * c + m * b * d + c * m * d + c * m * d + c + m * b * d)


_REALISTIC = [{"M": m, "B": 64, "D": 512, "C": c} for m in (2, 3) for c in (6, 28, 31, 309)]

register_op(BenchOp(
    name="dgl_head",
    providers=[
        Provider("eager", _single_backward(lambda f, w, b: dgl_concat_head(f, w, b, backend="eager")), baseline=True,
                 reference=True),
        Provider("released", _make_released, reference=True),
        Provider("compile", _single_backward(lazily_compiled(dgl_concat_head_reference)), available=needs_cuda,
                 reference=True),
        Provider("triton", _single_backward(lambda f, w, b: dgl_concat_head(f, w, b, backend="triton")),
                 available=needs_cuda),
    ],
    make_inputs=make_inputs,
    model_bytes=model_bytes,
    shapes={
        "realistic": _REALISTIC,
        "sweep": [{"M": 3, "B": b, "D": 512, "C": c} for b in (256, 1024, 4096) for c in (309, 1000)],
        "cpu_sweep": [{"M": m, "B": 64, "D": 512, "C": c} for m in (2, 3) for c in (6, 309)],
        "quick": [{"M": 2, "B": 64, "D": 512, "C": 31}],
    },
    description="DGL concat head: fused + unimodal logits, CE loss step, one backward (vs released two)",
))
