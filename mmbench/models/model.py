"""The multimodal classifier every method trains: per-modality encoders plus a fusion head."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from torch import nn

from mmbench.batching import Batch
from mmbench.data.base import ModalitySpec
from mmbench.models.encoders import build_encoder
from mmbench.models.fusion import FusionHead, build_fusion

MISSING_MODES = ("feature", "input")
FILL_VALUES = ("zeros", "ones")


class MultimodalModel(nn.Module):
    """Encoders (one per modality, by kind and the ``encoder`` setting) and a fusion head.

    Args:
        specs: the data set's modality specs, in order.
        num_classes: C.
        fusion: ``"concat" | "sum" | "gated" | "film"``.
        feature_dim: D, the width of every encoder's output.
        missing: how a missing modality enters the model. ``"feature"`` (default, the convention of
            ARL, DGL, DMRNet and MMANet): its encoder feature is zeroed. ``"input"``: its input is
            replaced by the ``fill`` value and the encoder runs on it (the balancing repositories'
            zero-padding).
        fill: the value of a missing input under ``missing="input"``: ``"zeros"`` or ``"ones"``
            (inputs are standardised, so zeros is the training mean).
        encoder: ``"small"`` or ``"resnet18"`` (paper scale), see :func:`~mmbench.models.encoders.build_encoder`.
    """

    def __init__(
        self,
        specs: Sequence[ModalitySpec],
        num_classes: int,
        fusion: str = "concat",
        feature_dim: int = 64,
        missing: str = "feature",
        fill: str = "zeros",
        encoder: str = "small",
    ):
        super().__init__()
        if missing not in MISSING_MODES:
            raise ValueError(f"missing={missing!r}: expected one of {MISSING_MODES}")
        if fill not in FILL_VALUES:
            raise ValueError(f"fill={fill!r}: expected one of {FILL_VALUES}")
        self.modalities = tuple(s.name for s in specs)
        self.num_classes, self.feature_dim = num_classes, feature_dim
        self.missing, self.fill = missing, fill
        self.encoders = nn.ModuleDict({s.name: build_encoder(s, feature_dim, encoder) for s in specs})
        self.head: FusionHead = build_fusion(fusion, len(specs), feature_dim, num_classes)
        # (modality, id(input)) -> (input, its version, encoder output) while reusing_features() is active
        self._feature_memo: Optional[Dict[Tuple[str, int], Tuple[torch.Tensor, int, torch.Tensor]]] = None

    @property
    def num_modalities(self) -> int:
        return len(self.modalities)

    @contextmanager
    def reusing_features(self) -> Iterator[None]:
        """Within the block, :meth:`encode` runs each encoder once per input tensor, however many masks.

        Evaluation predicts the same batch under several presence masks (every subset of modalities,
        the robustness rates). Under ``missing="feature"`` the mask only multiplies the encoder's
        output, so that output is computed once and reused: the same bits, since the encoder sees the
        same tensor. Only in eval mode without gradients (a training forward never reuses), and a
        tensor changed in place since (its version counter moved) is encoded again.
        """
        self._feature_memo = {}
        try:
            yield
        finally:
            self._feature_memo = None

    def _encoded(self, m: str, x: torch.Tensor) -> torch.Tensor:
        memo = self._feature_memo
        if memo is None or self.training or torch.is_grad_enabled():
            return self.encoders[m](x)
        hit = memo.get((m, id(x)))
        if hit is not None and hit[0] is x and hit[1] == x._version:
            return hit[2]
        out = self.encoders[m](x)
        memo[(m, id(x))] = (x, x._version, out)  # holding x keeps its id from being reused
        return out

    def encode(self, batch: Batch) -> List[torch.Tensor]:
        """Features ``[B, D]`` per modality, with missing modalities handled per ``self.missing``."""
        feats = []
        for i, m in enumerate(self.modalities):
            present = batch.mask[:, i]
            x = batch.inputs[m]
            if self.missing == "input":
                fill = torch.zeros_like(x) if self.fill == "zeros" else torch.ones_like(x)
                shape = (-1,) + (1,) * (x.dim() - 1)
                x = torch.where(present.view(shape) > 0, x, fill)
                feats.append(self.encoders[m](x))
            else:
                feats.append(self._encoded(m, x) * present.unsqueeze(1))
        return feats

    def forward(self, batch: Batch) -> torch.Tensor:
        """Fused logits ``[B, C]``."""
        return self.head(self.encode(batch))

    def unimodal_logits(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Per modality, logits ``[B, C]`` through the shared head with the other features zeroed."""
        return [self.head.unimodal(feats, m) for m in range(len(feats))]
