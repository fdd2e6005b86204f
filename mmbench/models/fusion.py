"""Fusion heads: M features ``[B, D]`` -> logits ``[B, C]``.

Each head can also produce *unimodal* logits through the same parameters with the other modalities'
features zeroed, the convention of ARL and DGL (``docs/methods.md``, shared set-up). For the concat
head this is exactly ``z_m = W_m x_m + b`` and ``z = sum_m z_m - (M - 1) b``.
"""
from __future__ import annotations

import abc
from typing import List, Sequence

import torch
from torch import nn


class FusionHead(nn.Module, abc.ABC):
    """Base class. Subclasses implement :meth:`forward` on a list of M features ``[B, D]``."""

    num_modalities: int

    @abc.abstractmethod
    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        """Fused logits ``[B, C]`` from M features ``[B, D]``."""

    def unimodal(self, feats: Sequence[torch.Tensor], m: int) -> torch.Tensor:
        """Logits ``[B, C]`` of modality ``m`` through this head with every other feature zeroed."""
        return self.forward([f if i == m else torch.zeros_like(f) for i, f in enumerate(feats)])


class ConcatFusion(FusionHead):
    """``z = W [x_1; ...; x_M] + b`` with ``W`` split in column blocks ``W_m`` of width D."""

    def __init__(self, num_modalities: int, feature_dim: int, num_classes: int):
        super().__init__()
        self.num_modalities, self.feature_dim = num_modalities, feature_dim
        self.fc = nn.Linear(num_modalities * feature_dim, num_classes)

    @property
    def weight(self) -> torch.Tensor:
        return self.fc.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.fc.bias

    def block(self, m: int) -> torch.Tensor:
        """``W_m`` ``[C, D]``: the columns of ``W`` that read modality ``m``."""
        return self.fc.weight[:, m * self.feature_dim : (m + 1) * self.feature_dim]

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return self.fc(torch.cat(list(feats), dim=1))

    def unimodal(self, feats: Sequence[torch.Tensor], m: int) -> torch.Tensor:
        # Same value as zero-filling the other blocks, without the zero-padded GEMM.
        return nn.functional.linear(feats[m], self.block(m), self.fc.bias)


class SumFusion(FusionHead):
    """``z = sum_m (W_m x_m + b_m)``: one linear layer per modality (OGM-GE's sum fusion)."""

    def __init__(self, num_modalities: int, feature_dim: int, num_classes: int):
        super().__init__()
        self.num_modalities = num_modalities
        self.fcs = nn.ModuleList(nn.Linear(feature_dim, num_classes) for _ in range(num_modalities))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack([fc(f) for fc, f in zip(self.fcs, feats)]).sum(0)


class GatedFusion(FusionHead):
    """Gated fusion (OGM-GE's ``GatedFusion``, generalised to M modalities).

    ``h_m = W_m x_m + b_m`` (hidden width H); the first modality gates the sum of the others:
    ``z = W_out (sigmoid(h_1) * sum_{m>1} h_m) + b_out``. For one modality the gate applies to
    itself. With two modalities this is exactly OGM-GE's ``x_gate=True`` form.
    """

    def __init__(self, num_modalities: int, feature_dim: int, num_classes: int, hidden: int = 64):
        super().__init__()
        self.num_modalities = num_modalities
        self.fcs = nn.ModuleList(nn.Linear(feature_dim, hidden) for _ in range(num_modalities))
        self.fc_out = nn.Linear(hidden, num_classes)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        hidden = [fc(f) for fc, f in zip(self.fcs, feats)]
        rest = torch.stack(hidden[1:]).sum(0) if len(hidden) > 1 else hidden[0]
        return self.fc_out(torch.sigmoid(hidden[0]) * rest)


class FiLMFusion(FusionHead):
    """FiLM fusion: the first modality predicts a scale and shift for the sum of the others.

    ``(gamma, beta) = split(W_film x_1 + b)``, ``z = W_out (gamma * sum_{m>1} x_m + beta) + b_out``.
    With two modalities this is OGM-GE's ``FiLM(x_film=True)``.
    """

    def __init__(self, num_modalities: int, feature_dim: int, num_classes: int):
        super().__init__()
        self.num_modalities = num_modalities
        self.film = nn.Linear(feature_dim, 2 * feature_dim)
        self.fc_out = nn.Linear(feature_dim, num_classes)

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        gamma, beta = self.film(feats[0]).chunk(2, dim=1)
        rest = torch.stack(list(feats[1:])).sum(0) if len(feats) > 1 else feats[0]
        return self.fc_out(gamma * rest + beta)


FUSIONS = {"concat": ConcatFusion, "sum": SumFusion, "gated": GatedFusion, "film": FiLMFusion}


def build_fusion(name: str, num_modalities: int, feature_dim: int, num_classes: int) -> FusionHead:
    if name not in FUSIONS:
        raise ValueError(f"unknown fusion {name!r}; choose one of {', '.join(FUSIONS)}")
    return FUSIONS[name](num_modalities, feature_dim, num_classes)


def unimodal_heads(num_modalities: int, feature_dim: int, num_classes: int) -> nn.ModuleList:
    """Separate linear heads, one per modality, for methods that train unimodal classifiers."""
    return nn.ModuleList(nn.Linear(feature_dim, num_classes) for _ in range(num_modalities))


def zero_others(feats: Sequence[torch.Tensor], m: int) -> List[torch.Tensor]:
    return [f if i == m else torch.zeros_like(f) for i, f in enumerate(feats)]
