"""Op 1 under ``torch.compile`` (the ``compile`` backend): the eager specification, compiled per shape.

The compiled functions are the eager references of :mod:`kernels.stats_reference` with the stacking
of a list of ``M`` logits ``[B, C]`` and the expansion of ``[M]`` weights inside the graph (inductor
fuses them into the reductions instead of writing an ``[M, B, C]`` copy first). Inputs are validated
by the caller (:mod:`kernels.modality_stats`) before these run; :func:`kernels.compiled.call` compiles
(``dynamic=False``, one graph per shape) or falls back to eager with a warning.
"""
from __future__ import annotations

from typing import Sequence, Union

import torch

from .compiled import call
from .stats_reference import ModalityStats, modality_stats_reference, weighted_ce_reference

LogitsLike = Union[torch.Tensor, Sequence[torch.Tensor]]


def _stacked(logits: LogitsLike) -> torch.Tensor:
    return logits if isinstance(logits, torch.Tensor) else torch.stack(list(logits), 0)


def _stats_spec(logits: LogitsLike, labels: torch.Tensor) -> ModalityStats:
    """:func:`modality_stats_reference` of the stacked ``[M, B, C]`` logits (the function compiled)."""
    return modality_stats_reference(_stacked(logits), labels)


def _ce_spec(logits: LogitsLike, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """:func:`weighted_ce_reference` with ``weights`` ``[M]`` or ``[M, B]`` made ``[M, B]`` in the graph
    (detached: the weights are constants, as on every provider)."""
    x = _stacked(logits)
    w = weights.detach().to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    w2d = w[:, None].expand(x.shape[0], x.shape[1]) if w.dim() == 1 else w
    return weighted_ce_reference(x, labels, w2d)


def stats_compiled(logits: LogitsLike, labels: torch.Tensor, device_type: str) -> ModalityStats:
    """Statistics of ``logits`` (``[M, B, C]`` or ``M`` x ``[B, C]``) and ``labels`` ``[B]``, compiled."""
    with torch.no_grad():
        return call(_stats_spec, device_type, logits, labels)


def weighted_ce_compiled(logits: LogitsLike, labels: torch.Tensor, weights: torch.Tensor,
                         device_type: str) -> torch.Tensor:
    """Scalar ``sum_m mean_b w[m(, b)] * CE[m, b]``, compiled; differentiable in ``logits`` (each list
    element gets its own gradient)."""
    return call(_ce_spec, device_type, logits, labels, weights)


__all__ = ["stats_compiled", "weighted_ce_compiled"]
