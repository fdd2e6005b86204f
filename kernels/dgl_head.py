"""DGL fused concat head: fused and unimodal logits with disentangled gradients, in one backward.

DGL (``docs/methods.md`` §2) trains a concat-fusion head ``z = W[x_1; ...; x_M] + b`` so that

* the encoders receive only the *unimodal* loss gradient, through ``z_m = W_m x_m + b`` (the same
  ``W``, ``b`` with the other modalities zero-filled), and
* the head ``(W, b)`` receives only the *fused* loss gradient; the fused path sees detached features.

The released code gets this with two backward passes (``retain_graph=True`` on the unimodal loss,
then deleting the head gradients, then the fused loss on detached features) and zero-padded
concatenations. Here both outputs come from one op whose backward routes each gradient to the right
place, so the caller computes ``L = CE(z, y) + alpha * sum_m CE(z_m, y)`` and calls ``.backward()``
once (``docs/methods.md`` §6.2).

Public API:

* :func:`dgl_concat_head` -- the op, ``backend="auto" | "eager" | "triton"``.
* :func:`dgl_concat_head_reference` -- the eager specification (also the CPU path).
* :func:`dgl_released_logits`, :func:`dgl_released_step` -- the released forward (zero-padded
  concatenations) and two-backward update (benchmark baseline, test oracle).
"""
from __future__ import annotations

from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F

from ._utils import resolve_backend

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def _check_inputs(features: Sequence[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor) -> List[int]:
    """Validate shapes, dtypes and devices before any launch; return the per-modality widths ``D_m``."""
    if isinstance(features, torch.Tensor) or len(features) == 0:
        raise ValueError("features must be a non-empty list of [B, D_m] tensors, one per modality")
    if weight.dim() != 2 or bias.dim() != 1 or bias.shape[0] != weight.shape[0]:
        raise ValueError(f"weight must be [C, sum D_m] and bias [C]; got {tuple(weight.shape)} and {tuple(bias.shape)}")
    batch = features[0].shape[0] if features[0].dim() == 2 else -1
    widths = []
    for m, x in enumerate(features):
        if x.dim() != 2 or x.shape[0] != batch:
            raise ValueError(f"features[{m}] must be [B, D_m] with the same B for every modality; got {tuple(x.shape)}")
        if x.dtype != weight.dtype or x.device != weight.device:
            raise ValueError(f"features[{m}] is {x.dtype} on {x.device}, weight is {weight.dtype} on {weight.device}")
        widths.append(x.shape[1])
    if batch == 0:
        raise ValueError("empty batch: features have B = 0 rows")
    if weight.dtype not in _FLOAT_DTYPES or bias.dtype != weight.dtype or bias.device != weight.device:
        raise ValueError(f"weight/bias must share a floating dtype and device; got {weight.dtype}, {bias.dtype}")
    if sum(widths) != weight.shape[1]:
        raise ValueError(f"sum of feature widths {widths} = {sum(widths)} != weight columns {weight.shape[1]}")
    return widths


def dgl_concat_head_reference(
    features: Sequence[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Eager specification of :func:`dgl_concat_head` (the single-backward form of ``docs/methods.md`` §2).

    The stop-gradients are explicit: the fused logits see detached features, the unimodal logits see
    detached ``W_m`` and ``b``. Autograd then routes gradients exactly as the released two-pass
    procedure does, without ``retain_graph`` or zero padding.

    Args:
        features: M tensors ``[B, D_m]``.
        weight: ``[C, sum_m D_m]``, column blocks ``W_m`` in modality order.
        bias: ``[C]``.

    Returns:
        ``(fused [B, C], unimodal [M, B, C])``.
    """
    widths = _check_inputs(features, weight, bias)
    blocks = torch.split(weight, widths, dim=1)
    fused = bias
    unimodal = []
    for x, w_m in zip(features, blocks):
        fused = fused + x.detach() @ w_m.t()  # head-only path
        unimodal.append(F.linear(x, w_m.detach(), bias.detach()))  # encoder-only path
    return fused, torch.stack(unimodal)


def dgl_concat_head(
    features: Sequence[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor, backend: str = "auto"
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fused and unimodal logits of a concat head with DGL gradient routing.

    Forward: ``z_m = x_m W_m^T + b`` and ``z = sum_m x_m W_m^T + b`` (no padded concatenation and no
    third GEMM). Backward, in one pass:

    * the gradient at ``z`` reaches only ``weight`` and ``bias`` (``dW_m = g^T x_m``, ``db = sum_rows g``);
    * the gradient at ``z_m`` reaches only ``features[m]`` (``dx_m = g_m W_m``), never ``weight``/``bias``.

    The Triton path keeps the skinny GEMMs in cuBLAS and fuses the bias/sum epilogue into one launch
    (why: :mod:`kernels.dgl_head_triton`); both paths give the same gradients as the released
    two-backward procedure (:func:`dgl_released_step`).

    Args:
        features: M tensors ``[B, D_m]`` (same dtype and device as ``weight``; B >= 1).
        weight: ``[C, sum_m D_m]``, column blocks ``W_m`` in modality order.
        bias: ``[C]``.
        backend: ``"auto"`` (Triton on CUDA tensors, eager otherwise and for float64), ``"eager"`` or ``"triton"``.

    Returns:
        ``(fused_logits [B, C], unimodal_logits [M, B, C])``.

    Raises:
        ValueError: shape, dtype or device mismatch, empty batch, unknown backend.
    """
    _check_inputs(features, weight, bias)
    fp64 = weight.dtype == torch.float64 or any(x.dtype == torch.float64 for x in features)
    if _use_triton(backend, weight.device) and not (fp64 and backend == "auto"):  # "auto" keeps fp64 on eager
        from .dgl_head_triton import DGLConcatHeadFunction

        return DGLConcatHeadFunction.apply(weight, bias, *features)
    return dgl_concat_head_reference(features, weight, bias)


def _use_triton(backend: str, device: torch.device) -> bool:
    """Resolve ``backend`` with the package rule (:func:`kernels._utils.resolve_backend`); no C++ path here."""
    if backend not in ("auto", "eager", "triton"):
        raise ValueError(f"backend must be 'auto', 'eager' or 'triton'; got {backend!r}")
    return resolve_backend(backend, device) == "triton"


def dgl_released_logits(
    features: Sequence[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Forward of the released code (``docs/methods.md`` §2 steps 2-3): zero-padded concatenations.

    Returns ``(fused [B, C], unimodal [M, B, C])``; the fused logits see detached features, the
    unimodal logits see ``W``, ``b`` undetached (the released code fixes that up in backward).
    """
    widths = _check_inputs(features, weight, bias)
    # 2. fused logits from detached, concatenated features
    fused = F.linear(torch.cat([x.detach() for x in features], dim=1), weight, bias)
    # 3. unimodal logits: the same W, b with every other modality zero-filled
    unimodal = []
    for m, x in enumerate(features):
        parts = [x if k == m else x.new_zeros(x.shape[0], widths[k]) for k in range(len(features))]
        unimodal.append(F.linear(torch.cat(parts, dim=1), weight, bias))
    return fused, torch.stack(unimodal)


def dgl_released_step(
    features: Sequence[torch.Tensor], weight: torch.Tensor, bias: torch.Tensor, labels: torch.Tensor, alpha: float
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The released DGL update (``docs/methods.md`` §2 steps 2-7), for benchmarks and as a test oracle.

    Zero-padded concatenations, backward of ``alpha * L_uni`` with ``retain_graph=True``, deletion of
    the head gradients, then backward of ``L_f`` on detached features. Gradients accumulate into
    ``.grad`` of the leaves behind ``features`` and into ``weight.grad``/``bias.grad`` (overwritten:
    step 6 deletes them), as in the released code.

    Args:
        features: M tensors ``[B, D_m]`` requiring grad.
        weight: ``[C, sum D_m]`` leaf; bias: ``[C]`` leaf.
        labels: ``[B]`` int64 class indices.
        alpha: unimodal loss weight.

    Returns:
        ``(fused [B, C], unimodal [M, B, C], loss)`` (detached), where ``loss = L_f + alpha * L_uni``.
    """
    fused, unimodal = dgl_released_logits(features, weight, bias)
    # 4. losses
    loss_f = F.cross_entropy(fused, labels)
    loss_uni = alpha * sum(F.cross_entropy(z_m, labels) for z_m in unimodal)
    # 5. first backward (the released code keeps the backbone graph alive for the second one)
    loss_uni.backward(retain_graph=True)
    # 6. delete the head gradients the unimodal loss produced
    weight.grad = None
    bias.grad = None
    # 7. second backward: only W and b receive gradient (inputs are detached)
    loss_f.backward()
    return fused.detach(), unimodal.detach(), (loss_f + loss_uni).detach()
