"""MMANet margin-aware distillation (MAD): an entropy-weighted loss between row-normalised Grams.

``docs/methods.md`` §5 and §6.3. For student and teacher features ``F_s, F_t`` ``[N, D]``:

* ``G = F F^T`` (``N x N``) and ``G_hat[i, :] = G[i, :] / max(||G[i, :]||_2, 1e-12)``;
* ``variant="column"`` (classification): ``L = sum_ij (G_hat_s - G_hat_t)[i, j]^2 * w_j``;
* ``variant="row"`` (segmentation): ``L = sum_ij (G_hat_s - G_hat_t)[i, j]^2 * w_i``;
* ``split_halves=True`` (released segmentation quirk): the columns of ``G`` are split in two halves
  (the first ``ceil(N / 2)`` columns, as ``torch.chunk(2)`` would, then the rest) and each half is
  row-normalised on its own.

The weights are the teacher's normalised prediction entropy (:func:`mad_weights`). The teacher, and
the weights, are constants: no gradient reaches them.

The eager reference materialises ``N x N`` matrices; for segmentation (``N = 9600``) each is 369 MB.
The Triton path (:mod:`kernels.mad_triton`) never does: it recomputes Gram tiles in one tiled
forward pass (per-row sums from which the loss and the backward's row statistics follow) and one
tiled backward pass, so its memory is ``O(N * D)``.

Public API: :func:`mad_loss`, :func:`mad_loss_reference`, :func:`mad_weights`.
"""
from __future__ import annotations

import torch

from ._utils import resolve_backend

EPS = 1e-12  # the clamp of F.normalize, as in the released code
_VARIANTS = ("column", "row")


def mad_weights(teacher_logits: torch.Tensor) -> torch.Tensor:
    """Per-sample MAD weights: normalised teacher softmax entropy ``w_j = H_j / sum_l H_l``.

    ``H_j = -sum_k p_jk log p_jk`` is computed with ``log_softmax`` so that ``0 * log 0`` is 0 rather
    than NaN (the released code has no eps). If every entropy is 0 (a one-hot teacher), the weights
    fall back to uniform ``1 / N`` so they still sum to one; this is decided on device (no host sync).
    Computed in at least float32 and without gradient (the teacher is a constant).

    Args:
        teacher_logits: ``[N, C]``, N >= 1 (for segmentation: the teacher's per-pixel scores, rows = pixels).

    Returns:
        ``[N]`` weights in the logits' dtype (float32 for half inputs), summing to one; all NaN when a
        teacher entropy is not finite (a NaN or +inf logit), so a diverged teacher is not hidden.
    """
    if teacher_logits.dim() != 2 or teacher_logits.shape[0] == 0 or teacher_logits.shape[1] == 0:
        raise ValueError(f"teacher_logits must be [N, C] with N, C >= 1; got {tuple(teacher_logits.shape)}")
    if not teacher_logits.is_floating_point():
        raise ValueError(f"teacher_logits must be floating point; got {teacher_logits.dtype}")
    logits = teacher_logits.detach()
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    log_p = torch.log_softmax(logits, dim=1)
    # p log p with p = exp(log_p): finite logits give finite log_p, so underflowed p contribute 0 * finite = 0;
    # a -inf logit (a masked class) gives log_p = -inf, clamped so that 0 * log 0 is 0, not NaN.
    entropy = -(log_p.exp() * log_p.clamp_min(torch.finfo(log_p.dtype).min)).sum(dim=1)
    total = entropy.sum()
    uniform = torch.full_like(entropy, 1.0 / entropy.shape[0])
    w = torch.where(total > 0, entropy / total.clamp_min(torch.finfo(entropy.dtype).tiny), uniform)
    # A NaN / inf teacher logit (a diverged teacher) gives NaN weights, never the uniform fallback.
    return torch.where(torch.isfinite(entropy).all(), w, torch.full_like(w, float("nan")))


def _use_triton(backend: str, device: torch.device) -> bool:
    """Resolve ``backend`` with the package rule (:func:`kernels._utils.resolve_backend`); no C++ path here."""
    if backend not in ("auto", "eager", "triton"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'triton'; got {backend!r}")
    return resolve_backend(backend, device) == "triton"


def _check_inputs(student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor, variant: str) -> None:
    if variant not in _VARIANTS:
        raise ValueError(f"variant must be 'column' or 'row'; got {variant!r}")
    if student.dim() != 2 or teacher.dim() != 2:
        raise ValueError(f"student and teacher must be [N, D]; got {tuple(student.shape)} and {tuple(teacher.shape)}")
    n = student.shape[0]
    if n == 0 or student.shape[1] == 0:
        raise ValueError(f"empty input: student is {tuple(student.shape)}")
    if teacher.shape[0] != n or teacher.shape[1] == 0:
        raise ValueError(f"teacher must be [N, D_t] with the student's N = {n}; got {tuple(teacher.shape)}")
    if weights.shape != (n,):
        raise ValueError(f"weights must be [N] = [{n}]; got {tuple(weights.shape)}")
    for name, t in (("student", student), ("teacher", teacher), ("weights", weights)):
        if not t.is_floating_point():
            raise ValueError(f"{name} must be floating point; got {t.dtype}")
        if t.device != student.device:
            raise ValueError(f"{name} is on {t.device}, student on {student.device}")


def _normalise_rows(gram: torch.Tensor, split_halves: bool) -> torch.Tensor:
    if not split_halves:
        return gram / gram.norm(dim=1, keepdim=True).clamp_min(EPS)
    return torch.cat([h / h.norm(dim=1, keepdim=True).clamp_min(EPS) for h in gram.chunk(2, dim=1)], dim=1)


def mad_loss_reference(
    student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor, variant: str = "column",
    split_halves: bool = False,
) -> torch.Tensor:
    """Eager specification of :func:`mad_loss`; materialises the ``N x N`` Grams.

    Args:
        student: ``[N, D]`` student features (differentiable).
        teacher: ``[N, D_t]`` teacher features (detached here).
        weights: ``[N]`` sample weights (detached here), e.g. from :func:`mad_weights`.
        variant: ``"column"`` weights ``(i, j)`` by ``w_j``; ``"row"`` by ``w_i``.
        split_halves: row-normalise the two column halves separately (released segmentation code).

    Returns:
        Scalar loss (0-dim) in the student's dtype.
    """
    _check_inputs(student, teacher, weights, variant)
    t = teacher.detach().to(student.dtype)
    w = weights.detach().to(student.dtype)
    g_s = _normalise_rows(student @ student.t(), split_halves)
    g_t = _normalise_rows(t @ t.t(), split_halves)
    sq = (g_s - g_t).square()
    return (sq * (w[None, :] if variant == "column" else w[:, None])).sum()


def mad_loss(
    student: torch.Tensor, teacher: torch.Tensor, weights: torch.Tensor, variant: str = "column",
    backend: str = "auto", split_halves: bool = False,
) -> torch.Tensor:
    """Margin-aware distillation loss between row-normalised student and teacher Grams.

    ``L = sum_ij (G_hat_s - G_hat_t)[i, j]^2 * w_j`` (``"column"``) or ``* w_i`` (``"row"``); see the
    module docstring. Gradient flows to ``student`` only.

    Args:
        student: ``[N, D]`` (float16 / bfloat16 / float32; float64 on the eager path), N >= 1.
        teacher: ``[N, D_t]``; a constant.
        weights: ``[N]``; a constant.
        variant: ``"column"`` or ``"row"``.
        backend: ``"auto"`` (Triton on CUDA tensors, eager otherwise and for float64), ``"eager"`` or
            ``"triton"``.
        split_halves: per-half row normalisation (released segmentation quirk); both backends.

    Returns:
        Scalar (0-dim) loss in the student's dtype. The Triton path accumulates in float32.

    Raises:
        ValueError: bad shapes, dtypes, devices, variant or backend; float64 with ``backend="triton"``.
    """
    _check_inputs(student, teacher, weights, variant)
    use_triton = _use_triton(backend, student.device)  # validates `backend` first
    is_f64 = torch.float64 in (student.dtype, teacher.dtype)
    if is_f64 and backend == "triton":
        raise ValueError("the Triton MAD path computes in float32; use backend='eager' for float64")
    if is_f64 or not use_triton:  # "auto" keeps float64 on the eager path
        return mad_loss_reference(student, teacher, weights, variant, split_halves)
    from .mad_triton import MADLossFunction

    return MADLossFunction.apply(student, teacher.detach(), weights.detach(), variant == "row", split_halves)
