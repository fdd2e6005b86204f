"""Helpers shared by the missing-modality methods (DMRNet, MMANet, one-stage modality distillation).

A *combination* (modality subset) is identified by an integer code: bit ``m`` is set when modality
``m`` is present, so ``code = sum_m mask[:, m] * 2**m`` and the non-empty subsets of M modalities
are the codes ``1 .. 2**M - 1``. Every helper here works on device tensors without host syncs.
"""
from __future__ import annotations

from typing import Iterable, List, Sequence

import torch


def check_multimodal(info, method: str) -> None:
    """Raise a clear error for a single-modality data set (the methods drop / restore modalities)."""
    if info.num_modalities < 2:
        raise ValueError(
            f"{method} needs a data set with at least 2 modalities; {info.dataset!r} has {info.num_modalities} "
            f"({', '.join(info.modalities)})"
        )


def subset_table(num_modalities: int, device=None) -> torch.Tensor:
    """``[2**M - 1, M]`` float presence masks of every non-empty subset; row ``k`` is code ``k + 1``."""
    codes = torch.arange(1, 2**num_modalities, device=device)
    bits = torch.arange(num_modalities, device=device)
    return ((codes.unsqueeze(1) >> bits) & 1).float()


def mask_to_code(mask: torch.Tensor) -> torch.Tensor:
    """``[B, M]`` presence mask -> ``[B]`` int64 combination codes (0 = nothing present)."""
    weights = 2 ** torch.arange(mask.shape[1], device=mask.device)
    return ((mask > 0).long() * weights).sum(1)


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
    noise = torch.rand(allowed.shape, generator=generator).to(mask.device)
    pick = torch.where(allowed, noise, torch.full_like(noise, -1.0)).argmax(1)  # [B]
    return table[pick].to(mask.dtype) * mask


def step_seed(generator: torch.Generator, device=None) -> torch.Tensor:
    """An int64 ``[1]`` seed from the run generator, on ``device`` (the Triton PME kernel reads it there,
    so there is no host sync; the eager CPU path reads it on the host, which is free)."""
    return torch.randint(0, 2**31 - 1, (1,), generator=generator).to(device)


def concat_features(feats: List[torch.Tensor]) -> torch.Tensor:
    """M features ``[B, D]`` -> ``[B, M * D]``."""
    return torch.cat(list(feats), dim=1)


# --------------------------------------------------------------------------- kernel-based MMD
def _pairwise_sq_dist(x: torch.Tensor) -> torch.Tensor:
    sq = (x * x).sum(1)
    return (sq.unsqueeze(1) + sq.unsqueeze(0) - 2.0 * x @ x.t()).clamp_min(0.0)


def multi_gaussian_kernel(x: torch.Tensor, weights: torch.Tensor, kernel_num: int = 5, kernel_mul: float = 2.0) -> torch.Tensor:
    """Mean of ``kernel_num`` Gaussian kernels ``(1/K) sum_k exp(-||x - x'||^2 / sigma_k)`` over the rows of ``x``.

    ``x``: ``[N, F]`` pooled source and target rows; ``weights``: ``[N]`` non-negative row weights
    (0 drops a row). The base bandwidth is the weighted mean off-diagonal squared distance
    (detached, as in the authors' utility) and ``sigma_k = base * kernel_mul**(k - kernel_num // 2)``,
    i.e. ``base * {1/4, 1/2, 1, 2, 4}`` for the defaults. The authors' utility *sums* the kernels;
    the mean (a constant factor ``kernel_num`` per kernel, folded into the loss weight) keeps every
    kernel in [0, 1] and the MMD in [0, 2] whatever the number of kernels and factors.
    """
    d2 = _pairwise_sq_dist(x)
    pair_w = weights.unsqueeze(1) * weights.unsqueeze(0)
    off = pair_w * (1.0 - torch.eye(len(x), device=x.device, dtype=x.dtype))
    base = ((d2 * off).sum() / off.sum().clamp_min(1e-12)).detach().clamp_min(1e-12)
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
    b = source[0].shape[0]
    if weights is None:
        weights = torch.ones(b, device=source[0].device, dtype=source[0].dtype)
    pooled_w = torch.cat([weights, weights])
    kernel = None
    for s, t in zip(source, target):
        k = multi_gaussian_kernel(torch.cat([s, t]), pooled_w, kernel_num, kernel_mul)
        kernel = k if kernel is None else kernel * k
    w = weights / weights.sum().clamp_min(1e-12)
    k_ss, k_tt, k_st = kernel[:b, :b], kernel[b:, b:], kernel[:b, b:]
    return w @ k_ss @ w + w @ k_tt @ w - 2.0 * (w @ k_st @ w)


# --------------------------------------------------------------------------- TEMPORARY kernel shim
# TODO(remove when kernels/ lands): eager stand-ins with the public kernels' signatures.
try:  # pragma: no cover - depends on the kernels helper's progress
    from kernels import mad_loss, mad_weights, pme_sample_kl, weighted_multimodal_ce  # noqa: F401
except ImportError:  # pragma: no cover
    import torch.nn.functional as _F

    def pme_sample_kl(mu, logvar, seed, training=True, backend="auto"):
        kl = 0.5 * (logvar.exp() + mu * mu - logvar - 1).sum() / mu.shape[0]
        if not training:
            return mu, kl
        g = torch.Generator().manual_seed(int(seed.reshape(-1)[0]))
        eps = torch.randn(mu.shape, generator=g).to(mu)
        return mu + eps * torch.exp(0.5 * logvar), kl

    def mad_weights(teacher_logits):
        logp = torch.log_softmax(teacher_logits.detach().float(), 1)
        h = -(logp.exp() * logp).sum(1)
        return h / h.sum().clamp_min(1e-12)

    def mad_loss(student, teacher, weights, variant="column", backend="auto"):
        gs = _F.normalize(student @ student.t(), dim=1)
        t = teacher.detach()
        gt = _F.normalize(t @ t.t(), dim=1)
        return ((gs - gt) ** 2 * weights.detach().unsqueeze(0)).sum()

    def weighted_multimodal_ce(logits, labels, weights):
        if isinstance(logits, (list, tuple)):
            logits = torch.stack(list(logits))
        m, b, c = logits.shape
        ce = _F.cross_entropy(logits.reshape(m * b, c), labels.repeat(m), reduction="none").view(m, b)
        w = weights if weights.dim() == 2 else weights.unsqueeze(1)
        return (w * ce).mean(1).sum()
