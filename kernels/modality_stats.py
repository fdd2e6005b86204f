"""Public API of op 1: per-modality logit statistics and the re-weighted multimodal cross-entropy.

>>> stats = modality_stats([z_audio, z_visual], labels)          # ModalityStats, [M, B] / [M]
>>> k = ogm_ge_coefficients(stats.p_true_sum, alpha=0.8)          # device tensor, no host sync
>>> loss = weighted_multimodal_ce([z_audio, z_visual], labels, k)  # scalar, differentiable

Backends: "auto" (the measured fastest correct provider for the op, dtype and shape class on this kind
of device, ``torch.compile``'s compile time counted, from the dispatch table made by ``python -m mmbench bench``; eager for fp64, the only
provider that keeps fp64 -- :mod:`kernels.dispatch`),
"eager" (the specification, :mod:`kernels.stats_reference`), "triton" (:mod:`kernels.stats_triton`),
"cpp" (:mod:`kernels.cpp_ext`, falls back to eager with one warning if the extension cannot be built),
"compile" (``torch.compile`` of the eager specification, one graph per shape, :mod:`kernels.compiled_stats`;
falls back to eager with one warning naming the reason when torch.compile cannot run here).

Non-finite input: a NaN or +inf logit makes its row's statistics NaN, and NaN weights a NaN loss, on
every provider (eager, C++, Triton, the ``.cu`` kernel), so a diverging run is seen as one.
"""
from __future__ import annotations

from typing import Sequence, Tuple, Union

import torch

from ._utils import check_labels, check_logits, check_weights, resolve_backend, weights_2d
from .stats_reference import ModalityStats, modality_stats_reference, weighted_ce_reference

LogitsLike = Union[torch.Tensor, Sequence[torch.Tensor]]


def _stats_from_buffers(lse, ce, ent, pt, sums, M: int) -> ModalityStats:
    """Wrap kernel outputs (``sums`` = fp32 ``[4*M+1]``, laid out ``[4, M]`` + loss) as views (no launch)."""
    return ModalityStats(lse, ce, ent, pt, *sums[: 4 * M].view(4, M).unbind(0))


def _backend_for(device: torch.device, backend: str, dtype: torch.dtype, op: str, mode: str, shape) -> str:
    """Concrete backend of op 1 for a call: ``backend`` itself, or for "auto" the dispatch table's choice
    (:func:`kernels.dispatch.table_choice`: eager for fp64). "cpp" falls back to eager when the extension
    does not build (one warning when asked for explicitly), "compile" when torch.compile cannot run here
    (one warning naming the reason, :func:`kernels.compiled.usable_or_warn`), and "triton" is refused on
    the CPU unless the interpreter is on (:func:`kernels._utils.resolve_backend`)."""
    dev = torch.device(device)
    if backend == "auto":
        from .dispatch import table_choice

        if dev.type == "cpu" and dtype != torch.float64 and resolve_backend("auto", dev) == "triton":
            return "triton"  # the interpreter's test override (MMBENCH_KERNELS_BACKEND=triton)
        name = table_choice(op, mode, dev.type, dtype, *shape)
        if name == "triton" and dev.type != "cuda":
            name = "eager"
        if name == "cpp":
            from .cpp_ext import get_extension

            ext_ok = get_extension() is not None  # built once, cached on disk by torch
            if ext_ok and dev.type == "cuda":
                from .cpp_ext import _STATE

                ext_ok = bool(_STATE.get("with_cuda"))
            return "cpp" if ext_ok else ("triton" if dev.type == "cuda" else "eager")
        if name == "compile":
            from .compiled import usable_or_warn

            return "compile" if usable_or_warn(dev.type) else "eager"
        return name
    name = resolve_backend(backend, dev)
    if name == "compile":
        from .compiled import usable_or_warn

        return "compile" if usable_or_warn(dev.type) else "eager"
    if name == "cpp":
        from .cpp_ext import load_extension_or_warn

        if load_extension_or_warn(dev) is None:
            return "eager"
    return name


def _as_list(logits: LogitsLike):
    """The extension takes a list: ``[x]`` for a stacked tensor, the modalities otherwise (no stack)."""
    return [logits] if isinstance(logits, torch.Tensor) else list(logits)


def _stacked(logits: LogitsLike) -> torch.Tensor:
    """``[M, B, C]``: a list is stacked (one copy, differentiable: each element keeps its gradient)."""
    return logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits), 0)


def modality_stats(logits: LogitsLike, labels: torch.Tensor, backend: str = "auto", check: bool = True) -> ModalityStats:
    """Per-modality softmax statistics of multimodal logits, in one pass.

    Args:
        logits: ``[M, B, C]`` tensor or a list of ``M`` tensors ``[B, C]`` (fp16/bf16/fp32/fp64).
            A list is stacked into ``[M, B, C]`` first (one copy) so one launch covers all modalities.
        labels: ``[B]`` int64/int32 class indices in ``[0, C)``.
        backend: "auto" | "eager" | "triton" | "cpp" | "compile".
        check: range-check the labels (default). CPU labels are checked on the host (free); CUDA
            labels with a device-side assert (``torch._assert_async``: no host sync; a bad label fails
            the next synchronising call). ``check=False`` is **unsafe** on CUDA: nothing is checked
            before the kernels, which then give a NaN ce (Triton, ``.cu``) for an out-of-range label;
            on the CPU labels are checked anyway.

    Returns:
        :class:`ModalityStats` of detached tensors (fp32; fp64 for fp64 logits on the eager path):
        ``lse, ce, entropy, p_true`` ``[M, B]`` and ``ce_mean, entropy_mean, p_true_sum,
        abs_logit_mean`` ``[M]``.

    Raises:
        ValueError: bad shapes, dtypes, devices, empty inputs, or out-of-range labels (before any launch).
    """
    with torch.no_grad():
        info = check_logits(logits)
        name = _backend_for(info[4], backend, info[3], "modality_stats", "fwd", info[:3])
        if name == "cpp":
            from .cpp_ext import get_extension

            # The extension range-checks CPU labels itself before computing (ValueError): saves a pass here.
            check_labels(labels, info, check, range_check=info[4].type != "cpu")
            lse, ce, ent, pt, sums = get_extension().stats_forward(_as_list(logits), labels, None)[:5]
            return _stats_from_buffers(lse, ce, ent, pt, sums, info[0])
        check_labels(labels, info, check)
        if name == "compile":
            from .compiled_stats import stats_compiled

            return stats_compiled(logits, labels, info[4].type)
        x = _stacked(logits)
        if name == "eager":
            return modality_stats_reference(x, labels)
        from .stats_triton import stats_forward

        lse, ce, ent, pt, sums = stats_forward(x, labels)[:5]
        return _stats_from_buffers(lse, ce, ent, pt, sums, info[0])


def weighted_multimodal_ce(
    logits: LogitsLike,
    labels: torch.Tensor,
    weights: torch.Tensor,
    backend: str = "auto",
    check: bool = True,
    return_stats: bool = False,
) -> Union[torch.Tensor, Tuple[torch.Tensor, ModalityStats]]:
    """Re-weighted multimodal cross-entropy ``sum_m mean_b w[m(, b)] * CE(z_m[b], y[b])``.

    Args:
        logits: ``[M, B, C]`` tensor or list of ``M`` tensors ``[B, C]``; gradients flow to each
            list element (eager/Triton stack the list: one copy; cpp reads the elements in place).
        labels: ``[B]`` int64/int32.
        weights: ``[M]`` (per modality) or ``[M, B]`` (per sample) device tensor; treated as a
            constant (detached, no gradient).
        backend: "auto" | "eager" | "triton" | "cpp" | "compile".
        check: range-check the labels (default; see :func:`modality_stats`: a device-side assert on
            CUDA, no host sync). ``check=False`` is unsafe on CUDA.
        return_stats: also return the :class:`ModalityStats` of the same pass (free on the fused
            backends: one kernel computes both).

    Returns:
        Scalar loss (fp32; fp64 for fp64 logits on eager), or ``(loss, stats)``.
        Backward (fused backends) recomputes the softmax from the saved ``lse`` and writes
        ``w * (softmax - onehot) / B * grad_out`` into a new buffer: the caller's logits are never modified.
    """
    info = check_logits(logits)
    M, B = info[0], info[1]
    check_weights(weights, M, B, info[4])
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in _as_list(logits))
    name = _backend_for(info[4], backend, info[3], "weighted_multimodal_ce", "fwd_bwd" if grad else "fwd", info[:3])
    if name == "cpp":
        from .cpp_ext import WeightedCECpp

        check_labels(labels, info, check, range_check=info[4].type != "cpu")  # CPU: checked in C++
        holder = []
        xs = _as_list(logits)
        if torch.is_grad_enabled() and any(t.requires_grad for t in xs):
            loss = WeightedCECpp.apply(holder, labels, weights.detach(), *xs)
        else:  # no graph needed: skip the autograd.Function machinery (host overhead)
            from .cpp_ext import get_extension

            holder.append(get_extension().stats_forward(xs, labels, weights.detach())[:5])
            loss = holder[0][4][-1]
    elif name == "compile":
        from .compiled_stats import stats_compiled, weighted_ce_compiled

        check_labels(labels, info, check)
        loss = weighted_ce_compiled(logits, labels, weights, info[4].type)
        if return_stats:
            detached = logits.detach() if isinstance(logits, torch.Tensor) else [t.detach() for t in logits]
            return loss, stats_compiled(detached, labels, info[4].type)
        return loss
    else:
        check_labels(labels, info, check)
        x = _stacked(logits)
        w2d = weights_2d(weights, x)
        if name == "eager":
            loss = weighted_ce_reference(x, labels, w2d)
            if return_stats:
                return loss, modality_stats_reference(x.detach(), labels)
            return loss
        from .stats_triton import WeightedCETriton

        holder = []
        if torch.is_grad_enabled() and x.requires_grad:
            loss = WeightedCETriton.apply(holder, x, labels, w2d)
        else:  # no graph needed: skip the autograd.Function machinery (host overhead)
            from .stats_triton import stats_forward

            holder.append(stats_forward(x, labels, w2d)[:5])
            loss = holder[0][4][-1]
    if return_stats:
        return loss, _stats_from_buffers(*holder[0], M)
    return loss


__all__ = ["ModalityStats", "modality_stats", "weighted_multimodal_ce"]
