"""Eager references for op 1 (the specification and the CPU path), plus the "released" composition.

Definitions, for logits ``z[m, b, :]`` of modality ``m`` and sample ``b`` with label ``y[b]``:

* ``lse[m, b]     = log sum_c exp z[m, b, c]``
* ``ce[m, b]      = lse[m, b] - z[m, b, y[b]]``
* ``entropy[m, b] = -sum_c p log p`` with ``p = softmax(z[m, b])`` (natural log, exact -- ARL's code
  adds 1e-16 inside the log, a difference below 1e-14 per class)
* ``p_true[m, b]  = p[m, b, y[b]] = exp(-ce[m, b])``
* ``ce_mean[m] = mean_b ce``, ``entropy_mean[m] = mean_b entropy`` (ARL's ``H_m``),
  ``p_true_sum[m] = sum_b p_true`` (OGM-GE's score ``s_m``),
  ``abs_logit_mean[m] = sum_c mean_b |z[m, b, c]|`` (ARL's dependence ``D_m``).

All statistics are computed in fp32 (fp64 for fp64 logits) and returned detached.
"""
from __future__ import annotations

from typing import List, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


class ModalityStats(NamedTuple):
    """Per-modality softmax statistics (detached; fp32, or fp64 for fp64 logits; on the input device).

    Attributes:
        lse: ``[M, B]`` log-sum-exp of each row.
        ce: ``[M, B]`` per-sample cross-entropy.
        entropy: ``[M, B]`` softmax entropy (natural log).
        p_true: ``[M, B]`` softmax probability of the label.
        ce_mean: ``[M]`` batch mean of ``ce``.
        entropy_mean: ``[M]`` batch mean of ``entropy`` (ARL ``H_m``).
        p_true_sum: ``[M]`` batch sum of ``p_true`` (OGM-GE score ``s_m``).
        abs_logit_mean: ``[M]`` ``sum_c mean_b |z|`` (ARL dependence ``D_m``).
    """

    lse: torch.Tensor
    ce: torch.Tensor
    entropy: torch.Tensor
    p_true: torch.Tensor
    ce_mean: torch.Tensor
    entropy_mean: torch.Tensor
    p_true_sum: torch.Tensor
    abs_logit_mean: torch.Tensor

    @property
    def log_p_true_sum(self) -> torch.Tensor:
        """``[M]`` ``log sum_b p_true = logsumexp_b(-ce)``: the OGM-GE score in log space.

        Finite when ``p_true_sum`` underflows to 0 (saturated wrong predictions, ``ce > 104``), so
        ``ogm_ge_coefficients(stats.log_p_true_sum, alpha, log_scores=True)`` keeps the ratios.
        """
        return torch.logsumexp(-self.ce, dim=1)


def _row_terms(x: torch.Tensor, labels: torch.Tensor):
    """Differentiable per-row ``(lse, ce, entropy, p_true)`` of ``x`` ``[M, B, C]`` (already upcast)."""
    lse = torch.logsumexp(x, dim=-1)  # [M, B]
    # log_softmax works relative to the row max, so logp stays accurate for |z| ~ 1e4 in fp32
    # (x - lse would cancel catastrophically there).
    logp = torch.log_softmax(x, dim=-1)
    p = logp.exp()
    idx = labels.long()[None, :, None].expand(x.shape[0], -1, 1)
    ce = -logp.gather(-1, idx).squeeze(-1)
    # p * logp is finite for finite logits (p underflows to 0 where logp is very negative).
    entropy = -(p * logp).sum(-1)
    return lse, ce, entropy, (-ce).exp()


def modality_stats_reference(x: torch.Tensor, labels: torch.Tensor) -> ModalityStats:
    """Eager specification of :func:`kernels.modality_stats`.

    Args:
        x: ``[M, B, C]`` floating logits (validated by the caller).
        labels: ``[B]`` int64/int32.

    Returns:
        :class:`ModalityStats` (fp32, or fp64 for fp64 ``x``), detached.
    """
    with torch.no_grad():
        xf = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        lse, ce, entropy, p_true = _row_terms(xf, labels)
        B = x.shape[1]
        return ModalityStats(
            lse=lse,
            ce=ce,
            entropy=entropy,
            p_true=p_true,
            ce_mean=ce.mean(1),
            entropy_mean=entropy.mean(1),
            p_true_sum=p_true.sum(1),
            abs_logit_mean=xf.abs().sum((1, 2)) / B,
        )


def weighted_ce_reference(x: torch.Tensor, labels: torch.Tensor, w2d: torch.Tensor) -> torch.Tensor:
    """Eager specification of :func:`kernels.weighted_multimodal_ce` (autograd does the backward).

    Args:
        x: ``[M, B, C]`` logits (may require grad).
        labels: ``[B]``.
        w2d: ``[M, B]`` constant weights.

    Returns:
        scalar ``sum_m mean_b w[m, b] * ce[m, b]`` in fp32 (fp64 for fp64 ``x``).
    """
    xf = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
    logp = torch.log_softmax(xf, dim=-1)
    ce = -logp.gather(-1, labels.long()[None, :, None].expand(x.shape[0], -1, 1)).squeeze(-1)
    return (w2d.to(xf.dtype) * ce).mean(1).sum()


# ------------------------------------------------------------------------------------------------
# "Released" composition: what the official OGM-GE / ARL code does per step, for the benchmark only.
# ------------------------------------------------------------------------------------------------
def released_stats(logits: List[torch.Tensor], labels: torch.Tensor):
    """Mimic the released code's statistics (benchmark baseline only; not used by methods).

    * OGM-GE: per-modality ``F.softmax`` and a Python loop over the batch for the true-class score.
    * ARL: entropy and ``|z|`` means moved to the host with ``.cpu().numpy()`` (host syncs).
    * CE per modality with ``F.cross_entropy``.

    Args:
        logits: list of ``M`` tensors ``[B, C]``.
        labels: ``[B]``.

    Returns:
        ``(ce_means, scores, entropies, dependences)``: lists of ``M`` python/numpy scalars/tensors.
    """
    ce_means, scores, entropies, deps = [], [], [], []
    for z in logits:
        ce_means.append(F.cross_entropy(z, labels))
        p = F.softmax(z, dim=1)
        score = sum(p[i][labels[i]] for i in range(z.shape[0]))  # OGM-GE main.py style loop
        scores.append(score)
        ent = -(p * torch.log(p + 1e-16)).sum(1).mean()
        entropies.append(ent.detach().cpu().numpy())  # ARL: host sync
        deps.append(z.detach().abs().mean(0).sum().cpu().numpy())  # ARL: host sync
    return ce_means, scores, entropies, deps


def released_weighted_ce(logits: List[torch.Tensor], labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Released-style weighted loss: one ``F.cross_entropy`` per modality, summed in Python."""
    loss = 0.0
    for m, z in enumerate(logits):
        loss = loss + weights[m] * F.cross_entropy(z, labels)
    return loss


def released_arl_weights(entropies, deps, temperature: float, floor: float = 0.3) -> np.ndarray:
    """ARL's host-side numpy coefficient tail for two modalities (benchmark baseline only)."""
    h = np.array([float(e) for e in entropies])
    h = np.maximum(h / h.sum(), floor)
    q = (1 / h) / (1 / h).sum()
    d = np.array([float(v) for v in deps])
    d = d / d.sum()
    s = temperature * np.array([d[1] * q[0], d[0] * q[1]])
    e = np.exp(s - s.max())
    return e / e.sum()
