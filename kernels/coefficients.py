"""Device-side coefficient epilogues for ARL and OGM-GE (pure tensor ops: no host sync).

Both functions take and return device tensors, use ``torch.where`` instead of Python branches on
values, and never call ``.item()`` / ``.cpu()`` / ``float(tensor)``, so they can run between the
forward and backward of a training step without stalling the CUDA stream.

Non-finite or negative statistics (a diverging model: NaN or inf logits, or a bug upstream) are never
turned into equal coefficients: both functions return NaN coefficients (decided on device), so the
step's loss is NaN and the run is recorded as diverged. Bad arguments (M = 0, a negative ``alpha``
or ``temperature`` given as a number, a floor outside [0, 1]) raise ``ValueError``.

Saturation: a confident model drives fp32 statistics to exact zeros (every entropy underflows, every
label probability of a wrong prediction underflows). Each normalisation ``x / sum x`` or ratio
``x_i / x_j`` here is guarded so that such zeros give a finite, documented answer instead of 0/0 = NaN
(a NaN gradient scale would end the run): see each function's "Saturation" paragraph.
"""
from __future__ import annotations

import math
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
        ``[M]`` weights summing to 1, same dtype/device as ``entropy_mean``; all NaN when an entropy or
        dependence is NaN, infinite or negative.

    Raises:
        ValueError: M = 0, shapes differ, or a numeric ``floor`` outside [0, 1].

    Saturation: when every ``H_m`` is 0 (all unimodal softmaxes one-hot to fp32 precision, e.g.
    logits ``[200, 0]`` and ``[150, 0]``), their ratios are lost with them: the true entropies
    (~1e-85, ~1e-63) are below fp32's smallest number, so no fp32 statistic can rank them. The
    modalities are then treated as equally certain, ``h = 1/M`` (as :func:`kernels.mad.mad_weights`
    does). Likewise ``d = 1/M`` when every ``D_m`` is 0 (all-zero logits).
    """
    if entropy_mean.dim() != 1 or abs_logit_mean.shape != entropy_mean.shape:
        raise ValueError(
            f"entropy_mean and abs_logit_mean must both be [M]; got {tuple(entropy_mean.shape)}, {tuple(abs_logit_mean.shape)}"
        )
    if entropy_mean.shape[0] == 0:
        raise ValueError("entropy_mean has M = 0 modalities: ARL needs at least one")
    if not isinstance(floor, torch.Tensor) and not 0.0 <= float(floor) <= 1.0:
        raise ValueError(f"floor must be in [0, 1] (a share of the entropy); got {floor}")
    h = _shares(entropy_mean)
    h = torch.clamp_min(h, floor) if not isinstance(floor, torch.Tensor) else torch.maximum(h, floor)
    inv = 1.0 / h
    q = inv / inv.sum()
    d = _shares(abs_logit_mean.to(q.dtype))
    w = torch.softmax(temperature * (q * (1.0 - d)), dim=0)
    # NaN coefficients (never equal shares) when a statistic is NaN, infinite or negative.
    return _nan_unless(w, _valid(entropy_mean) & _valid(abs_logit_mean))


def _valid(x: torch.Tensor) -> torch.Tensor:
    """0-d bool tensor: every entry finite and non-negative (on device, no sync)."""
    return (torch.isfinite(x) & (x >= 0)).all()


def _nan_unless(out: torch.Tensor, ok: torch.Tensor) -> torch.Tensor:
    return torch.where(ok, out, torch.full_like(out, float("nan")))


def _shares(x: torch.Tensor) -> torch.Tensor:
    """``x / sum x`` for non-negative ``[M]`` ``x``; uniform ``1/M`` when the sum is 0 (decided on device).
    A NaN (or negative) entry is the caller's to reject (:func:`_valid`)."""
    total = x.sum()
    uniform = torch.full_like(x, 1.0 / x.shape[0])
    return torch.where(total > 0, x / torch.where(total > 0, total, torch.ones_like(total)), uniform)


def ogm_ge_coefficients(
    p_true_sum: torch.Tensor, alpha: Number, rule: str = "pair", log_scores: bool = False
) -> torch.Tensor:
    """OGM-GE gradient-modulation coefficients ``k_m`` (``docs/baselines-and-protocols.md`` §3.1).

    Rules (``s = p_true_sum``, the batch sum of the softmax probability of the label):

    * ``"pair"`` (official, M = 2): ``rho_a = s_a / s_v``, ``rho_v = s_v / s_a``;
      ``k_u = 1 - tanh(alpha * rho_u)`` if ``rho_u > 1`` else ``1``.
    * ``"min"`` (BalanceMM, any M): ``ratio_m = s_m / min_j s_j``; same ``k`` formula.
    * ``"mean"`` (ActionMAE, any M): ``ratio_m = s_m / mean_j s_j``;
      ``k_m = 1 - tanh(alpha * (ratio_m - 1))`` (exceeds 1 for weak modalities).

    Args:
        p_true_sum: ``[M]`` scores ``s_m`` (``ModalityStats.p_true_sum``), or their logarithms
            ``log s_m`` when ``log_scores`` (``ModalityStats.log_p_true_sum``).
        alpha: modulation strength (float or 0-d tensor), >= 0 (a negative number raises; a negative
            tensor gives NaN coefficients, checked on device).
        rule: "pair" | "min" | "mean".
        log_scores: ``p_true_sum`` holds ``log s_m``. The ratios are then ``exp(log s_i - log s_j)``,
            exact even when every ``s_m`` underflows fp32 (saturated wrong predictions: ``p_true``
            = ``exp(-ce)`` is 0 for ``ce > 104``, while ``ce`` itself is accurate).

    Returns:
        ``[M]`` coefficients, same dtype/device as ``p_true_sum``; all NaN when a score is NaN, infinite
        or negative (a log score may be ``-inf``: a score of 0).

    Saturation: ratios are formed in log space, ``exp(log s_i - log s_j)``. A score of exactly 0
    (``log s = -inf``) against a positive one gives the limits ``ratio = 0`` or ``+inf``
    (``k = 1`` or ``1 - tanh(inf) = 0``); scores that are all 0 are equal (ratio 1, ``k = 1``), never
    0/0 = NaN. With linear scores that underflowed, "all 0" loses which modality was ahead: pass
    log scores to keep it.
    """
    s = p_true_sum
    if s.dim() != 1 or s.shape[0] == 0:
        raise ValueError(f"p_true_sum must be [M] with M >= 1; got {tuple(s.shape)}")
    if rule not in ("pair", "min", "mean"):
        raise ValueError(f"rule must be 'pair', 'min' or 'mean'; got {rule!r}")
    if rule == "pair" and s.shape[0] != 2:
        raise ValueError(f"rule='pair' needs exactly 2 modalities; got M = {s.shape[0]} (use 'min' or 'mean')")
    if not isinstance(alpha, torch.Tensor) and not float(alpha) >= 0:  # also rejects NaN
        raise ValueError(f"alpha must be >= 0; got {alpha}")
    # Valid scores: finite and >= 0 (linear), or < +inf and not NaN (log: -inf is a score of 0).
    ok = ((~torch.isnan(s)) & (s < float("inf"))).all() if log_scores else _valid(s)
    if isinstance(alpha, torch.Tensor):
        ok = ok & (alpha >= 0).all()  # a tensor alpha is checked on device (no sync): NaN if negative
    k = _ogm_ge_k(s, alpha, rule, log_scores)
    return _nan_unless(k, ok)


def _ogm_ge_k(s: torch.Tensor, alpha: Number, rule: str, log_scores: bool) -> torch.Tensor:
    """The coefficient formulas of :func:`ogm_ge_coefficients` for validated scores."""
    log_s = s if log_scores else torch.log(s)  # log 0 = -inf, handled by _log_ratio
    if rule == "pair":
        ratio = _log_ratio(log_s, log_s.flip(0)).exp()  # [s_a / s_v, s_v / s_a]
    elif rule == "min":
        ratio = _log_ratio(log_s, log_s.min()).exp()
    else:  # mean: log mean_j s_j = logsumexp(log s) - log M
        log_mean = torch.logsumexp(log_s, 0) - math.log(s.shape[0])
        ratio = _log_ratio(log_s, log_mean).exp()
        return 1.0 - torch.tanh(alpha * (ratio - 1.0))
    # ratio is finite or +inf here; alpha * inf = inf (tanh = 1) for alpha > 0, and 0 * inf (NaN) means
    # "no modulation at all" for alpha = 0, so it is mapped to 0.
    strong = ratio > 1
    x = torch.nan_to_num(alpha * torch.where(strong, ratio, torch.ones_like(ratio)), nan=0.0)
    return torch.where(strong, 1.0 - torch.tanh(x), torch.ones_like(ratio))


def _log_ratio(log_num: torch.Tensor, log_den: torch.Tensor) -> torch.Tensor:
    """``log_num - log_den`` with ``-inf - -inf`` (both scores 0: equal) defined as 0 instead of NaN."""
    both_zero = torch.isneginf(log_num) & torch.isneginf(log_den)
    return torch.where(both_zero, torch.zeros_like(log_num), log_num - log_den)
