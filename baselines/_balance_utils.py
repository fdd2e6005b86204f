"""Small helpers shared by the gradient-balancing baselines (OGM-GE, PMR, AGM, MMPareto, MLA).

Not a method module (leading underscore: the registry does not import it as one).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from mmbench.engine.distributed import global_sum, masked_batch_mean


def epoch_bound(value: float, epochs: int) -> float:
    """An epoch bound given as a fraction of the run (``value <= 1``) or an absolute epoch (``> 1``)."""
    return value * epochs if value <= 1 else float(value)


def window_start_epoch(start: float, epochs: int) -> int:
    """The first epoch of a window starting at ``start`` (the first 0-based epoch ``window_active`` accepts)."""
    return math.ceil(epoch_bound(start, epochs))


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
    neither dominates nor lags (no host sync: ``torch.where``). Under torchrun the sums run over the
    global batch (all ranks), so every rank derives the same statistic as one process would."""
    present = mask.t().to(values.dtype)  # [M, B]
    sums = global_sum(torch.stack([(values * present).sum(1), present.sum(1)]))  # [2, M]
    total, count = sums[0], sums[1]
    mean = total / count.clamp_min(1.0)
    has = count > 0
    fill = (mean * has).sum() / has.sum().clamp_min(1)
    return torch.where(has, mean, fill)


def masked_ce(logits: torch.Tensor, labels: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the samples with ``present`` ``[B]`` = 1 (0 if none).

    Under torchrun the count is the global batch's (:func:`mmbench.engine.distributed.count_share`),
    so the averaged gradients are those of the global masked mean, not a mean of per-rank means."""
    ce = nn.functional.cross_entropy(logits, labels, reduction="none")
    return masked_batch_mean(ce, present)


def device_generator(ctx_generator: torch.Generator, device: torch.device) -> torch.Generator:
    """``ctx_generator`` itself on CPU; on an accelerator a generator of that device seeded from one
    draw of ``ctx_generator`` (reproducible, and noise is then drawn on the device: a pageable
    host-to-device copy of CPU noise would stall the stream every step)."""
    device = torch.device(device)
    if device.type == "cpu":
        return ctx_generator
    seed = int(torch.randint(0, 2**62, (1,), generator=ctx_generator))  # a CPU tensor: no device sync
    return torch.Generator(device=device).manual_seed(seed)


def noise_like(tensors: Sequence[torch.Tensor], generator: torch.Generator) -> list:
    """Standard normal noise shaped like each tensor, drawn in ONE call from ``generator`` (on the
    generator's device, see :func:`device_generator`)."""
    sizes = [t.numel() for t in tensors]
    if not sizes:
        return []
    flat = torch.randn(sum(sizes), generator=generator, device=generator.device, dtype=torch.float32)
    flat = flat.to(device=tensors[0].device, dtype=tensors[0].dtype)
    return [chunk.view_as(t) for chunk, t in zip(flat.split(sizes), tensors)]

