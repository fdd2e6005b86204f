"""The network of one-stage modality distillation in segmentation form (:mod:`~mmbench.segmentation.methods_osmd`).

Two ESANet ResNet-34 branches with different jobs, unlike :class:`~mmbench.segmentation.esanet.ESANetRGBD`:

* the **available** branch reads the modality that exists at deployment (RGB by default) and gives the
  five stage maps ``a_0 .. a_4`` (``a_4`` ``[B, 512, H/32, W/32]``);
* the **privileged** branch reads the modality that exists only in training (depth by default) and gives
  ``f_k = p_4`` ``[B, 512, H/32, W/32]``; it never enters the fused logits, so it is not needed (nor read)
  at inference.

At the 1/32 map, every per-sample layer of the classification OSMD (:mod:`mmbench.methods.osmd`) becomes
the same layer applied at every position (a 1x1 convolution is a ``Linear`` per position):

* JAN ``jan``: ``f_hat_k = conv1x1(ReLU(conv1x1(a_4)))``, ``512 -> hidden -> 512``, linear output;
* CTN ``ctn``: one shared translator ``T = ReLU(conv1x1(512 -> 512))`` used in both directions,
  ``g_a = a_4 + T(f_hat_k) * present_a`` and ``g_k = f_hat_k + T(a_4) * present_a``; the two slots are
  concatenated in the modality order (RGB, depth) to ``[B, 1024, H/32, W/32]`` (the classification
  harness's concat fusion);
* the missing branch's classifier ``missing_head``: ``conv1x1(512 -> C)`` on a 1/32 map (the classification
  ``Linear(D, C)`` per position), applied to the true ``f_k`` and to the restored ``f_hat_k``.

ESANet's context module reads the 1024-channel fused map, and its decoder adds the available branch's
1/16, 1/8 and 1/4 maps as skips (ESANet's skips are the fused RGB-D maps; here the depth side of a skip
would need the privileged modality at test time, so the skips are the available modality's alone).
"""
from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn

from mmbench.segmentation.backbone import RESNET34_LAYERS, STAGE_CHANNELS, ResNet34Branch
from mmbench.segmentation.esanet import DECODER_CHANNELS, _check_size, _Decoding

MODALITIES = ("rgb", "depth")
IN_CHANNELS = {"rgb": 3, "depth": 1}


class OSMDESANet(_Decoding):
    """Available branch + JAN + CTN + ESANet context and decoder; privileged branch + its 1/32 classifier.

    Args:
        num_classes: C.
        missing: the training-only modality, ``"depth"`` (the paper's setting) or ``"rgb"``.
        jan_hidden: JAN hidden width (None: ``2 * 512``, the classification port's ``2 * D``).
        block, decoder_channels, context_bins, layers: as :class:`~mmbench.segmentation.esanet.ESANetRGBD`.
    """

    def __init__(self, num_classes: int, missing: str = "depth", jan_hidden: Optional[int] = None,
                 block: str = "nbt1d", decoder_channels: Sequence[int] = DECODER_CHANNELS,
                 context_bins: Sequence[int] = (1, 5), layers: Sequence[int] = RESNET34_LAYERS):
        super().__init__()
        if missing not in MODALITIES:
            raise ValueError(f"missing modality {missing!r}: expected one of {MODALITIES}")
        self.missing = missing
        self.k = MODALITIES.index(missing)  # column of the privileged modality in present [B, 2]
        self.a = 1 - self.k  # column of the available one
        available = MODALITIES[self.a]
        self.available = ResNet34Branch(IN_CHANNELS[available], block, None, layers)
        self.privileged = ResNet34Branch(IN_CHANNELS[missing], block, None, layers)
        d = STAGE_CHANNELS[4]
        hidden = int(jan_hidden or 2 * d)
        self.jan = nn.Sequential(nn.Conv2d(d, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, d, 1))
        self.ctn = nn.Sequential(nn.Conv2d(d, d, 1), nn.ReLU())
        self.missing_head = nn.Conv2d(d, num_classes, 1)
        self._build_decoder(num_classes, decoder_channels, context_bins,
                            encoder_channels=tuple(STAGE_CHANNELS[:4]) + (2 * d,))

    @staticmethod
    def _stages(branch: ResNet34Branch, x: torch.Tensor) -> List[torch.Tensor]:
        _check_size(*x.shape[-2:])
        out = []
        for stage in range(5):
            x = branch.forward_stage(stage, x)
            out.append(x)
        return out

    def available_stages(self, x: torch.Tensor) -> List[torch.Tensor]:
        """The available modality's input ``[B, c, H, W]`` (already zeroed where absent) -> its five stage maps."""
        return self._stages(self.available, x)

    def privileged_feature(self, x: torch.Tensor) -> torch.Tensor:
        """The privileged modality's input -> ``f_k`` ``[B, 512, H/32, W/32]`` (training only)."""
        return self._stages(self.privileged, x)[4]

    def restore(self, a4: torch.Tensor) -> torch.Tensor:
        """JAN: ``a_4`` -> ``f_hat_k``, both ``[B, 512, h, w]``."""
        return self.jan(a4)

    def _in_modality_order(self, slot_a: torch.Tensor, slot_k: torch.Tensor) -> torch.Tensor:
        return torch.cat([slot_a, slot_k] if self.a == 0 else [slot_k, slot_a], 1)

    def fuse(self, a4: torch.Tensor, restored: torch.Tensor, present_a: torch.Tensor) -> torch.Tensor:
        """CTN: ``[B, 1024, h, w]`` from ``a_4``, ``f_hat_k`` and the available modality's presence ``[B]``.

        One call of the shared translator on the two maps stacked along the batch, as the classification
        port does; the restored -> available translation is added only where the available modality is
        present (the port's ``mask_a``); the available -> missing one wherever it is present (the port's
        mean over the present available modalities, one of them here).
        """
        b = a4.shape[0]
        translated = self.ctn(torch.cat([restored, a4], 0))
        p = present_a.to(a4.dtype)[:, None, None, None]
        slot_a = a4 + translated[:b] * p
        slot_k = restored + translated[b:] * p
        return self._in_modality_order(slot_a, slot_k)

    def available_only(self, a4: torch.Tensor) -> torch.Tensor:
        """``[B, 1024, h, w]`` with the available map in its slot and zeros in the missing one (the port's
        optional available-only task loss, ``lambda_avail``)."""
        return self._in_modality_order(a4, torch.zeros_like(a4))

    def decode(self, stages: List[torch.Tensor], fused: torch.Tensor) -> torch.Tensor:
        """ESANet's context on the fused 1/32 map and its decoder with the available branch's skips ->
        logits ``[B, C, H, W]``."""
        return self._decode_head(self.context(fused), self._skip_features(stages))

    def forward(self, x_available: torch.Tensor, present_a: torch.Tensor) -> torch.Tensor:
        """Deployment: logits ``[B, C, H, W]`` from the available modality alone."""
        stages = self.available_stages(x_available)
        return self.decode(stages, self.fuse(stages[4], self.restore(stages[4]), present_a))
