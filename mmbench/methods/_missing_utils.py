"""Helpers shared by the missing-modality methods (DMRNet, MMANet, one-stage modality distillation).

A *combination* (modality subset) is identified by an integer code: bit ``m`` is set when modality
``m`` is present, so ``code = sum_m mask[:, m] * 2**m`` and the non-empty subsets of M modalities
are the codes ``1 .. 2**M - 1``. Every helper here works on device tensors without host syncs.
"""
from __future__ import annotations

import functools
from typing import Iterable, List, Sequence

import torch

from mmbench.engine.distributed import global_rand


def check_multimodal(info, method: str) -> None:
    """Raise a clear error for a single-modality data set (the methods drop / restore modalities)."""
    if info.num_modalities < 2:
        raise ValueError(
            f"{method} needs a data set with at least 2 modalities; {info.dataset!r} has {info.num_modalities} "
            f"({', '.join(info.modalities)})"
        )


@functools.lru_cache(maxsize=None)
def _subset_table(num_modalities: int, device: str) -> torch.Tensor:
    codes = torch.arange(1, 2**num_modalities, device=device)
    bits = torch.arange(num_modalities, device=device)
    return ((codes.unsqueeze(1) >> bits) & 1).float()


def subset_table(num_modalities: int, device=None) -> torch.Tensor:
    """``[2**M - 1, M]`` float presence masks of every non-empty subset; row ``k`` is code ``k + 1``.

    Cached per (M, device): it is built once, not every step. Treat it as read-only.
    """
    return _subset_table(num_modalities, str(torch.device(device or "cpu")))


@functools.lru_cache(maxsize=None)
def _powers(num_modalities: int, device: str) -> torch.Tensor:
    return 2 ** torch.arange(num_modalities, device=device)


def mask_to_code(mask: torch.Tensor) -> torch.Tensor:
    """``[B, M]`` presence mask -> ``[B]`` int64 combination codes (0 = nothing present)."""
    return ((mask > 0).long() * _powers(mask.shape[1], str(mask.device))).sum(1)


def code_of(modalities: Iterable[str], order: Sequence[str]) -> int:
    """The code of a subset given by modality names (``order`` = the data set's modality order)."""
    names = list(modalities)
    unknown = [m for m in names if m not in order]
    if unknown or not names:
        raise ValueError(f"combination {names!r} is not a non-empty subset of the modalities {tuple(order)}")
    return sum(1 << order.index(m) for m in set(names))


def parse_combination(spec, order: Sequence[str]) -> int:
    """A combination given as ``"a+b"`` or ``["a", "b"]`` -> its code."""
    names = spec.split("+") if isinstance(spec, str) else list(spec)
    return code_of([n.strip() for n in names], order)


def code_name(code: int, order: Sequence[str]) -> str:
    return "+".join(m for i, m in enumerate(order) if code >> i & 1)


def sample_combinations(mask: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per sample, a combination drawn uniformly from the non-empty subsets of its present modalities.

    Args:
        mask: ``[B, M]`` presence mask of the batch (the pattern's availability).
        generator: the run's CPU generator (reproducible draws).

    Returns:
        ``[B, M]`` float mask, a subset of ``mask`` with at least one modality whenever ``mask`` has one.

    Uniform over the *allowed* subsets (those inside the sample's available set): with the complete
    pattern this is uniform over all ``2**M - 1`` combinations (DMRNet's 1/3 each for two
    modalities, MMANet's 1/7 each for three). Implemented as an argmax of uniform noise over the
    allowed rows of :func:`subset_table`; no host sync.
    """
    table = subset_table(mask.shape[1], mask.device)  # [K, M]
    # A subset is allowed when it uses no modality the sample lacks.
    allowed = (table.unsqueeze(0) * (1 - mask).unsqueeze(1)).sum(2) == 0  # [B, K]
    noise = global_rand(allowed.shape, generator).to(mask.device)  # global batch's draw under torchrun
    pick = torch.where(allowed, noise, torch.full_like(noise, -1.0)).argmax(1)  # [B]
    return table[pick].to(mask.dtype) * mask


#: MINSTD (Park-Miller) generator: ``state * 48271 < 2**47``, so int64 arithmetic never overflows on any device.
_SEED_MUL, _SEED_MOD = 48271, 2**31 - 1


class StepSeeds:
    """Per-step int64 ``[1]`` seeds made on the device, for the Triton PME kernel (which reads them there).

    Drawing each seed from the run's CPU generator and copying it (``.to(device)``) cost a pageable
    host-to-device copy per step, which synchronises on CUDA. Here the run generator is read once,
    at construction (one copy per fit), and every later seed is the next state of a MINSTD sequence
    ``s <- s * 48271 mod (2**31 - 1)``, computed by tensor ops on the device (Python-int operands
    are kernel arguments, not copies). Philox (``tl.randn``) keys on the seed, so distinct seeds give
    independent noise; the period is ``2**31 - 2`` steps. Same generator state -> same seeds.
    """

    def __init__(self, generator: torch.Generator, device) -> None:
        self.state = torch.randint(1, _SEED_MOD, (1,), generator=generator).to(device)  # once per fit

    @property
    def device(self) -> torch.device:
        return self.state.device

    def next(self) -> torch.Tensor:
        """The next seed, a new ``[1]`` int64 tensor on the device in ``[1, 2**31 - 1)``.

        Out of place: the PME autograd node keeps the returned tensor to regenerate eps in backward.
        """
        self.state = self.state * _SEED_MUL % _SEED_MOD
        return self.state


def concat_features(feats: List[torch.Tensor]) -> torch.Tensor:
    """M features ``[B, D]`` -> ``[B, M * D]``."""
    return torch.cat(list(feats), dim=1)


# --------------------------------------------------------------------------- kernel-based MMD
def _pairwise_sq_dist(x: torch.Tensor) -> torch.Tensor:
    """``[N, N]`` squared Euclidean distances between the rows of ``x`` (exact zeros on the diagonal)."""
    sq = (x * x).sum(1)
    d2 = torch.addmm(sq.unsqueeze(1) + sq.unsqueeze(0), x, x.t(), alpha=-2.0).clamp_min(0.0)
    return d2.fill_diagonal_(0.0)


def multi_gaussian_kernel(
    x: torch.Tensor, weights: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0
) -> torch.Tensor:
    """Mean of ``kernel_num`` Gaussian kernels ``(1/K) sum_k exp(-||x - x'||^2 / sigma_k)`` over the rows of ``x``.

    ``x``: ``[N, F]`` pooled source and target rows; ``weights``: ``[N]`` non-negative row weights
    (0 drops a row). The base bandwidth is the weighted mean off-diagonal squared distance
    (detached, as in the authors' utility) and ``sigma_k = base * kernel_mul**(k - kernel_num // 2)``,
    i.e. ``base * {1/4, 1/2, 1, 2, 4}`` for the defaults. The authors' utility *sums* the kernels;
    the mean (a constant factor ``kernel_num`` per kernel, folded into the loss weight) keeps every
    kernel in [0, 1] and the MMD in [0, 2] whatever the number of kernels and factors.
    """
    d2 = _pairwise_sq_dist(x)
    with torch.no_grad():
        # sum_{i != j} w_i w_j d2_ij / sum_{i != j} w_i w_j (the diagonal of d2 is zero).
        w = weights.to(x.dtype)
        pairs = w.sum() ** 2 - (w * w).sum()
        base = ((w @ d2 @ w) / pairs.clamp_min(1e-12)).clamp_min(1e-12)
    if kernel_mul == 2.0:
        # exp(-d2 / (base 2^k)) for k = kmax, kmax-1, ...: one exp at the widest bandwidth, then each
        # narrower kernel is the square of the previous one (saves kernel_num - 1 exps of [N, N]).
        k = torch.exp(-d2 / (base * 2.0 ** (kernel_num - 1 - kernel_num // 2)))
        total = k
        for _ in range(kernel_num - 1):
            k = k * k
            total = total + k
        return total / kernel_num
    scales = kernel_mul ** (torch.arange(kernel_num, device=x.device, dtype=x.dtype) - kernel_num // 2)
    return torch.exp(-d2.unsqueeze(0) / (base * scales).view(-1, 1, 1)).mean(0)


def joint_mmd(
    source: Sequence[torch.Tensor],
    target: Sequence[torch.Tensor],
    weights: torch.Tensor | None = None,
    kernel_num: int = 5,
    kernel_mul: float = 2.0,
) -> torch.Tensor:
    """JMMD-style joint-distribution MMD with a product of multi-kernel Gaussians (biased V-statistic).

    Args:
        source: list of L ``[B, F_l]`` tensors (e.g. restored feature, its softmax prediction).
        target: list of L ``[B, F_l]`` tensors (e.g. true feature, one-hot or softmax).
        weights: ``[B]`` sample weights (1 = use, 0 = ignore), shared by source and target; default all 1.

    Returns:
        scalar ``w_s^T K_ss w_s + w_t^T K_tt w_t - 2 w_s^T K_st w_t`` with normalised weights and
        ``K = prod_l K_l``. It is the squared RKHS distance between the two weighted empirical
        embeddings: exactly 0 when source and target are identical, > 0 otherwise.
    """
    if weights is None:
        weights = torch.ones(source[0].shape[0], device=source[0].device, dtype=source[0].dtype)
    pooled_w = torch.cat([weights, weights])
    kernel = None
    for s, t in zip(source, target):
        k = multi_gaussian_kernel(torch.cat([s, t]), pooled_w, kernel_num, kernel_mul)
        kernel = k if kernel is None else kernel * k
    w = weights / weights.sum().clamp_min(1e-12)
    # w^T K_ss w + w^T K_tt w - 2 w^T K_st w = u^T K u with u = [w; -w] (K is symmetric).
    u = torch.cat([w, -w])
    return u @ (kernel @ u)

