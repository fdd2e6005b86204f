"""Device-side coefficient epilogues for ARL and OGM-GE (pure tensor ops: no host sync).

Both functions take and return device tensors, use ``torch.where`` instead of Python branches on
values, and never call ``.item()`` / ``.cpu()`` / ``float(tensor)``, so they can run between the
forward and backward of a training step without stalling the CUDA stream.
"""
from __future__ import annotations

from typing import Union

import torch

Number = Union[float, torch.Tensor]


def arl_coefficients(
    entropy_mean: torch.Tensor, abs_logit_mean: torch.Tensor, temperature: Number, floor: Number = 0.3
) -> torch.Tensor:
    """ARL asymmetric coefficients (``docs/methods.md`` §1 (a) step 3).

    Steps: ``h = H / sum H``; ``h' = max(h, floor)``; ``q = (1/h') / sum(1/h')`` (inverse-variance
    share); ``d = D / sum D`` (dependence share); ``w = softmax(T * s)``.

    For two modalities the released code uses ``s = [d_v * q_a, d_a * q_v]``. We generalise to M
    modalities with ``s_m = q_m * (1 - d_m) = q_m * sum_{j != m} d_j``, which for M = 2 *is* the
    released vector entry by entry (``1 - d_a = d_v``), so ``w_a = sigmoid(T (q_a - d_a))`` holds
    exactly. (The tempting ``softmax(T (q - d))`` would give ``sigmoid(2T (q_a - d_a))`` for M = 2,
    i.e. double the temperature, so it is not used.)

    Args:
        entropy_mean: ``[M]`` batch-mean softmax entropy ``H_m`` (``ModalityStats.entropy_mean``).
        abs_logit_mean: ``[M]`` dependence ``D_m = sum_c mean_b |z|`` (``ModalityStats.abs_logit_mean``).
        temperature: ``T`` (float or 0-d tensor).
        floor: lower clamp of the normalised entropy (0.3 in the released code).

    Returns:
        ``[M]`` weights summing to 1, same dtype/device as ``entropy_mean``.
    """
    if entropy_mean.dim() != 1 or abs_logit_mean.shape != entropy_mean.shape:
        raise ValueError(
            f"entropy_mean and abs_logit_mean must both be [M]; got {tuple(entropy_mean.shape)}, {tuple(abs_logit_mean.shape)}"
        )
    h = entropy_mean / entropy_mean.sum()
    h = torch.clamp_min(h, floor) if not isinstance(floor, torch.Tensor) else torch.maximum(h, floor)
    inv = 1.0 / h
    q = inv / inv.sum()
    d = abs_logit_mean.to(q.dtype) / abs_logit_mean.sum().to(q.dtype)
    return torch.softmax(temperature * (q * (1.0 - d)), dim=0)


def ogm_ge_coefficients(p_true_sum: torch.Tensor, alpha: Number, rule: str = "pair") -> torch.Tensor:
    """OGM-GE gradient-modulation coefficients ``k_m`` (``docs/baselines-and-protocols.md`` §3.1).

    Rules (``s = p_true_sum``, the batch sum of the softmax probability of the label):

    * ``"pair"`` (official, M = 2): ``rho_a = s_a / s_v``, ``rho_v = s_v / s_a``;
      ``k_u = 1 - tanh(alpha * rho_u)`` if ``rho_u > 1`` else ``1``.
    * ``"min"`` (BalanceMM, any M): ``ratio_m = s_m / min_j s_j``; same ``k`` formula.
    * ``"mean"`` (ActionMAE, any M): ``ratio_m = s_m / mean_j s_j``;
      ``k_m = 1 - tanh(alpha * (ratio_m - 1))`` (exceeds 1 for weak modalities).

    Args:
        p_true_sum: ``[M]`` scores ``s_m`` (``ModalityStats.p_true_sum``).
        alpha: modulation strength (float or 0-d tensor).
        rule: "pair" | "min" | "mean".

    Returns:
        ``[M]`` coefficients, same dtype/device as ``p_true_sum``.
    """
    s = p_true_sum
    if s.dim() != 1 or s.shape[0] == 0:
        raise ValueError(f"p_true_sum must be [M] with M >= 1; got {tuple(s.shape)}")
    if rule == "pair":
        if s.shape[0] != 2:
            raise ValueError(f"rule='pair' needs exactly 2 modalities; got M = {s.shape[0]} (use 'min' or 'mean')")
        ratio = s / s.flip(0)  # [s_a / s_v, s_v / s_a]
    elif rule == "min":
        ratio = s / s.min()
    elif rule == "mean":
        return 1.0 - torch.tanh(alpha * (s / s.mean() - 1.0))
    else:
        raise ValueError(f"rule must be 'pair', 'min' or 'mean'; got {rule!r}")
    return torch.where(ratio > 1, 1.0 - torch.tanh(alpha * ratio), torch.ones_like(ratio))
