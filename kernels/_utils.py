"""Shared host-side helpers: input validation, stacking and backend selection.

Validation runs before any launch and never synchronises with a CUDA device: CPU labels are
range-checked on the host, CUDA labels with a device-side assert (``check=True``, the default).
"""
from __future__ import annotations

import os
from typing import Sequence, Tuple, Union

import torch

FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
LABEL_DTYPES = (torch.int32, torch.int64)
BACKENDS = ("auto", "eager", "triton", "cpp", "compile")

LogitsLike = Union[torch.Tensor, Sequence[torch.Tensor]]


def next_power_of_2(n: int) -> int:
    """Smallest power of two >= n (n >= 1)."""
    return 1 << (max(int(n), 1) - 1).bit_length()


def check_logits(logits: LogitsLike) -> Tuple[int, int, int, torch.dtype, torch.device]:
    """Validate ``logits`` without touching their values; return ``(M, B, C, dtype, device)``.

    Args:
        logits: ``[M, B, C]`` tensor or a list of ``M`` tensors ``[B, C]`` (same shape, dtype, device).

    Raises:
        ValueError: M = 0, B = 0, C = 0, wrong rank, mismatched shapes/dtypes/devices, non-float dtype.
    """
    if isinstance(logits, torch.Tensor):
        if logits.dim() != 3:
            raise ValueError(f"logits must be [M, B, C] or a list of [B, C] tensors; got shape {tuple(logits.shape)}")
        M, B, C = logits.shape
        first = logits
    else:
        if len(logits) == 0:
            raise ValueError("logits is an empty list: need at least one modality (M >= 1)")
        first = logits[0]
        for m, t in enumerate(logits):
            if not isinstance(t, torch.Tensor) or t.dim() != 2:
                raise ValueError(f"logits[{m}] must be a [B, C] tensor; got {getattr(t, 'shape', type(t))}")
            if t.shape != first.shape:
                raise ValueError(f"logits[{m}] has shape {tuple(t.shape)} but logits[0] has {tuple(first.shape)}")
            if t.dtype != first.dtype or t.device != first.device:
                raise ValueError(f"logits[{m}] is {t.dtype} on {t.device}; logits[0] is {first.dtype} on {first.device}")
        M = len(logits)
        B, C = first.shape
    _check_float(first.dtype)
    if M == 0:
        raise ValueError("logits has M = 0 modalities")
    if B == 0:
        raise ValueError("empty batch: logits has B = 0 rows")
    if C == 0:
        raise ValueError("logits has C = 0 classes")
    return int(M), int(B), int(C), first.dtype, first.device


def stack_logits(logits: LogitsLike) -> torch.Tensor:
    """Validate ``logits`` (see :func:`check_logits`) and return one ``[M, B, C]`` tensor.

    A list is stacked with ``torch.stack`` -- a copy of ``M*B*C`` elements, differentiable, so each
    list element still receives its own gradient. A tensor is returned as is (no copy).
    """
    check_logits(logits)
    return logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits), 0)


def _check_float(dtype: torch.dtype) -> None:
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"logits must be floating point (fp16/bf16/fp32/fp64); got {dtype}")


def check_labels(labels: torch.Tensor, x, check: bool = True, range_check: bool = True) -> None:
    """Validate labels ``[B]`` against logits ``[M, B, C]``.

    Args:
        labels: ``[B]`` int64/int32.
        x: the ``[M, B, C]`` logits, or the ``(M, B, C, dtype, device)`` tuple of :func:`check_logits`.
        check: range-check CUDA labels (default) with a device-side assert. False skips it: unsafe.
        range_check: False when the caller's kernel checks the range itself before computing (cpp on CPU).

    The range check ``0 <= labels < C`` runs on the host for CPU labels (free: no device), and for CUDA
    labels as ``torch._assert_async`` (one tiny kernel, no host sync: a bad label raises at the next
    synchronising call, like PyTorch's own ``cross_entropy``) unless ``check=False``.
    """
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"labels must be a tensor; got {type(labels)}")
    if labels.dtype not in LABEL_DTYPES:
        raise ValueError(f"labels must be int64 or int32; got {labels.dtype}")
    M, B, C, _, device = x if isinstance(x, tuple) else (*x.shape, x.dtype, x.device)
    if labels.dim() != 1 or labels.shape[0] != B:
        raise ValueError(f"labels must be [B] with B = {B}; got shape {tuple(labels.shape)}")
    if labels.device != device:
        raise ValueError(f"labels are on {labels.device} but logits are on {device}")
    if not range_check:
        return
    if labels.device.type == "cpu":
        arr = labels.numpy()  # shares memory; numpy's min/max are cheaper than two torch dispatches
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi >= C:
            raise ValueError(f"labels out of range: need 0 <= label < C = {C}; got min {lo}, max {hi}")
    elif check:
        assert_labels_on_device(labels, C)


def assert_labels_on_device(labels: torch.Tensor, C: int) -> None:
    """Device-side range check ``0 <= labels < C``: ``torch._assert_async`` (no host sync on CUDA; a bad
    label fails the next synchronising call; on a CPU tensor it raises at once)."""
    torch._assert_async(((labels >= 0) & (labels < C)).all(), f"labels out of range: need 0 <= label < C = {C}")


def check_weights(weights: torch.Tensor, M: int, B: int, device) -> None:
    """Validate weights ``[M]`` or ``[M, B]`` (floating, on ``device``) without touching values."""
    if not isinstance(weights, torch.Tensor):
        raise ValueError(f"weights must be a tensor [M] or [M, B]; got {type(weights)}")
    if weights.dtype not in FLOAT_DTYPES:
        raise ValueError(f"weights must be floating point; got {weights.dtype}")
    if weights.device != device:
        raise ValueError(f"weights are on {weights.device} but logits are on {device}")
    if not (tuple(weights.shape) == (M,) or tuple(weights.shape) == (M, B)):
        raise ValueError(f"weights must be [M] = [{M}] or [M, B] = [{M}, {B}]; got {tuple(weights.shape)}")


def weights_2d(weights: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Validate weights (``[M]`` or ``[M, B]``) and return a detached ``[M, B]`` fp32 view/expand.

    ``[M]`` weights are expanded with stride 0 over B (no copy beyond a dtype cast).
    """
    if not isinstance(weights, torch.Tensor):
        raise ValueError(f"weights must be a tensor [M] or [M, B]; got {type(weights)}")
    M, B, _ = x.shape
    if weights.dtype not in FLOAT_DTYPES:
        raise ValueError(f"weights must be floating point; got {weights.dtype}")
    if weights.device != x.device:
        raise ValueError(f"weights are on {weights.device} but logits are on {x.device}")
    w = weights.detach()
    if w.dim() == 1 and w.shape[0] == M:
        return w.to(torch.float32 if x.dtype != torch.float64 else torch.float64)[:, None].expand(M, B)
    if w.dim() == 2 and tuple(w.shape) == (M, B):
        return w.to(torch.float32 if x.dtype != torch.float64 else torch.float64)
    raise ValueError(f"weights must be [M] = [{M}] or [M, B] = [{M}, {B}]; got {tuple(weights.shape)}")


def interpreting() -> bool:
    """True when Triton kernels run through the CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve_backend(backend: str, device: torch.device) -> str:
    """Map ``backend`` ("auto" | "eager" | "triton" | "cpp" | "compile") to a concrete backend for ``device``.

    "auto" is Triton on CUDA tensors and eager otherwise (also on CUDA when triton is not installed);
    on CPU it is Triton only when both ``TRITON_INTERPRET=1`` and ``MMBENCH_KERNELS_BACKEND=triton``
    are set (the interpreter is slow, it is a correctness path, not a performance path). Op 1 resolves
    "auto" with its measured dispatch table instead (:mod:`kernels.dispatch`,
    :func:`kernels.modality_stats._backend_for`). "cpp" and "compile" are op-1 providers (the C++
    extension, ``torch.compile`` of the eager specification); the other ops accept neither.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {backend!r}")
    from ._triton import HAVE_TRITON, MISSING_REASON, TritonUnavailable

    dev = torch.device(device)
    if backend == "auto":
        if dev.type == "cuda":
            return "triton" if HAVE_TRITON else "eager"
        if HAVE_TRITON and interpreting() and os.environ.get("MMBENCH_KERNELS_BACKEND", "") == "triton":
            return "triton"
        return "eager"
    if backend == "triton" and not HAVE_TRITON:
        raise TritonUnavailable(f"backend='triton' unavailable: {MISSING_REASON}")
    if backend == "triton" and dev.type != "cuda" and not interpreting():
        raise ValueError("backend='triton' needs CUDA tensors (or TRITON_INTERPRET=1 for the CPU interpreter)")
    return backend


def shape_of(x: torch.Tensor) -> Tuple[int, int, int]:
    """``(M, B, C)`` of a stacked logits tensor."""
    M, B, C = x.shape
    return int(M), int(B), int(C)


def stats_dtype(x: torch.Tensor) -> torch.dtype:
    """Statistics are fp32, except fp64 logits (the eager reference in tests) keep fp64."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


__all__ = [
    "FLOAT_DTYPES",
    "LABEL_DTYPES",
    "BACKENDS",
    "next_power_of_2",
    "check_logits",
    "stack_logits",
    "check_weights",
    "check_labels",
    "assert_labels_on_device",
    "weights_2d",
    "interpreting",
    "resolve_backend",
    "shape_of",
    "stats_dtype",
]
