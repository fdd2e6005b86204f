"""Benchmark: MMANet margin-aware distillation loss (``docs/methods.md`` §5, §6.3).

Providers:

* ``eager`` (baseline): :func:`kernels.mad.mad_loss_reference`, materialises ``N x N`` Grams.
* ``triton``: the tiled path, ``O(N * D)`` memory (CUDA only).
* ``eager_tf32`` / ``triton_tf32``: the same with ``torch.backends.cuda.matmul.allow_tf32 = True``
  for the call (the Triton path follows that flag: TF32 tensor cores for its ``tl.dot`` tiles).

Target (segmentation, ``N = 9600``, ``D = 512``): >= 10x lower peak memory than eager and no slower.
The op is compute-bound (``~4 N^2 D`` FLOP forward), so there is no byte model (no GB/s).
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import torch

from kernels.benchmark.registry import BenchOp, Provider, needs_cuda, register_op
from kernels.mad import mad_loss, mad_weights


def make_inputs(shape: Dict[str, Any], device, dtype) -> Dict[str, Any]:
    """``shape = {"N", "D", "variant"}``: student/teacher features ``[N, D]``, weights ``[N]``."""
    g = torch.Generator().manual_seed(0)
    n, d = shape["N"], shape["D"]
    teacher = torch.randn(n, d, generator=g).relu()  # post-ReLU encoder features, like ESANet's
    student = (teacher + 0.5 * torch.randn(n, d, generator=g)).relu()
    weights = mad_weights(torch.randn(n, 40, generator=g))
    return {
        "student": student.to(device, dtype).requires_grad_(),
        "teacher": teacher.to(device, dtype),
        "weights": weights.to(device),
        "variant": shape.get("variant", "row"),
    }


def _provider(backend: str, tf32: bool = False) -> Callable[[Dict[str, Any], str], Callable[[], Any]]:
    def make(inputs: Dict[str, Any], mode: str) -> Callable[[], Any]:
        s, t, w, variant = inputs["student"], inputs["teacher"], inputs["weights"], inputs["variant"]

        def call():
            old = torch.backends.cuda.matmul.allow_tf32
            torch.backends.cuda.matmul.allow_tf32 = tf32
            try:
                if mode == "fwd":
                    with torch.no_grad():
                        return mad_loss(s, t, w, variant, backend=backend)
                s.grad = None
                loss = mad_loss(s, t, w, variant, backend=backend)
                loss.backward()
                return loss
            finally:
                torch.backends.cuda.matmul.allow_tf32 = old
        return call

    return make


register_op(BenchOp(
    name="mad_loss",
    providers=[
        Provider("eager", _provider("eager"), baseline=True, reference=True),
        Provider("triton", _provider("triton"), available=needs_cuda),
        Provider("eager_tf32", _provider("eager", tf32=True), available=needs_cuda),
        Provider("triton_tf32", _provider("triton", tf32=True), available=needs_cuda),
    ],
    make_inputs=make_inputs,
    model_bytes=None,
    shapes={
        # segmentation: context output (N = 8*15*20, D = 512), skip3 (N = 8*30*40, D = 512), skip2 (D = 256);
        # classification: SURF layer4 (N = B = 64, D = 8192)
        "realistic": [{"N": 2400, "D": 512}, {"N": 9600, "D": 512}, {"N": 9600, "D": 256},
                      {"N": 64, "D": 8192, "variant": "column"}],
        "sweep": [{"N": n, "D": 512} for n in (1024, 2048, 4096, 9600, 16384)],
        "cpu_sweep": [{"N": 64, "D": 32}, {"N": 256, "D": 64, "variant": "column"}],
        "quick": [{"N": 2400, "D": 512}],
    },
    grad_to_none=("student",),
    description="MMANet MAD: entropy-weighted distance of row-normalised Grams (eager N x N vs tiled)",
))
