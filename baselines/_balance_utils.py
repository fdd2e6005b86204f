"""Small helpers shared by the gradient-balancing baselines (OGM-GE, PMR, AGM, MMPareto, MLA).

Not a method module (leading underscore: the registry does not import it as one).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def epoch_bound(value: float, epochs: int) -> float:
    """An epoch bound given as a fraction of the run (``value <= 1``) or an absolute epoch (``> 1``)."""
    return value * epochs if value <= 1 else float(value)


def window_active(epoch: int, epochs: int, start: float, end: float) -> bool:
    """Whether 0-based ``epoch`` lies in ``[start, end)``, each a fraction of ``epochs`` (<= 1) or an
    absolute epoch (> 1). E.g. ``(0, 0.5)`` with 30 epochs -> epochs 0..14 (OGM-GE's 0-50 of 100)."""
    return epoch_bound(start, epochs) <= epoch < epoch_bound(end, epochs)


def scale_grad(tensor: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Identity forward; the gradient reaching ``tensor`` is multiplied by the device scalar ``factor``
    at backward time (so ``factor`` may be filled in after this call, before ``backward``)."""
    if tensor.requires_grad:
        tensor.register_hook(lambda grad: grad * factor)
    return tensor


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per modality mean over present samples: ``values`` ``[M, B]``, ``mask`` ``[B, M]`` -> ``[M]``.

    A modality absent from the whole batch gets the mean of the present modalities' values, so it
    neither dominates nor lags (no host sync: ``torch.where``)."""
    present = mask.t().to(values.dtype)  # [M, B]
    count = present.sum(1)
    mean = (values * present).sum(1) / count.clamp_min(1.0)
    has = count > 0
    fill = (mean * has).sum() / has.sum().clamp_min(1)
    return torch.where(has, mean, fill)


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the samples with ``present`` ``[B]`` = 1 (0 if none)."""
    ce = nn.functional.cross_entropy(logits, labels, reduction="none")
    return (ce * present).sum() / present.sum().clamp_min(1.0)


def noise_like(tensors: Sequence[torch.Tensor], generator: torch.Generator) -> list:
    """Standard normal noise shaped like each tensor, drawn in ONE call from the CPU ``generator``
    (reproducible across devices) and moved to the tensors' device."""
    sizes = [t.numel() for t in tensors]
    if not sizes:
        return []
    flat = torch.randn(sum(sizes), generator=generator, dtype=torch.float32)
    flat = flat.to(device=tensors[0].device, dtype=tensors[0].dtype, non_blocking=True)
    return [chunk.view_as(t) for chunk, t in zip(flat.split(sizes), tensors)]


# TEMPORARY: reference versions of the ``kernels`` API until the package lands (removed then).
try:
    from kernels import modality_stats, ogm_ge_coefficients  # noqa: F401
except ImportError:  # pragma: no cover
    from types import SimpleNamespace

    def modality_stats(logits, labels, backend="auto"):
        z = torch.stack(list(logits)) if isinstance(logits, (list, tuple)) else logits
        logp = torch.log_softmax(z.float(), -1)
        lse = torch.logsumexp(z.float(), -1)
        idx = labels.view(1, -1, 1).expand(z.shape[0], -1, 1)
        lp_true = logp.gather(-1, idx).squeeze(-1)
        ent = -(logp.exp() * logp).sum(-1)
        p_true = lp_true.exp()
        return SimpleNamespace(lse=lse, ce=-lp_true, entropy=ent, p_true=p_true, ce_mean=(-lp_true).mean(1),
                               entropy_mean=ent.mean(1), p_true_sum=p_true.sum(1), abs_logit_mean=z.abs().mean(1).sum(-1))

    def ogm_ge_coefficients(p_true_sum, alpha, rule="pair"):
        s = p_true_sum
        if rule == "pair":
            ratio = torch.stack([s[0] / s[1], s[1] / s[0]])
            return torch.where(ratio > 1, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))
        if rule == "min":
            ratio = s / s.min()
            return torch.where(ratio > 1, 1 - torch.tanh(alpha * ratio), torch.ones_like(ratio))
        ratio = s / s.mean()
        return 1 - torch.tanh(alpha * (ratio - 1))
