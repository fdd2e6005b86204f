"""ShaSpec's segmentation network on ESANet's parts: shared and specific encoders, a residual composition
at the bottleneck, a missing modality's bottleneck filled from an available modality's shared feature.

Written from the released code's structure (``DualNet_SS`` in billhhh/ShaSpec, a 3-D U-Net on four
same-shaped MRI sequences) and the paper's description; no code copied. The mapping onto RGB-D:

* specific encoders: one :class:`~mmbench.segmentation.backbone.ResNet34Branch` per modality (RGB 3
  channels, depth 1), ``s_m`` = its 1/32 map ``[B, 512, H/32, W/32]``;
* shared encoder: ONE ResNet34Branch with 3 input channels run on every modality (the release runs one
  weight-shared encoder on each sequence); depth, one channel, is repeated to three to enter it;
  ``h_m`` = its 1/32 map of modality m, and its five stage maps of both modalities, concatenated along
  the channels, are the decoder's skips (the release's ``shared_dec(out_ft, _shared_layers)``);
* composition (one layer for all modalities): ``c_m = h_m + conv3x3([h_m; s_m])`` (``CompositionalLayer``);
* fill: a modality absent from the mask gets ``h_a`` of the first present modality (``"first"``, the
  release's ``general_shared_ft``) or the mean of the present modalities' ``h`` (``"mean"``, the
  release's commented-out alternative) in place of ``c_m``;
* decoder: ESANet's context module and decoder on ``[c_rgb; c_depth]`` (1024 channels at 1/32), skips
  from the shared encoder (twice ResNet-34's widths);
* domain classifier: a linear map of the global average of ``s_m`` to the two modalities.

Absent inputs are zeroed before the encoders, as the release zeroes a missing sequence
(``_images[:, m] = 0``), so the shared skips of an absent modality come from a zero image.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from mmbench.segmentation.backbone import RESNET34_LAYERS, STAGE_CHANNELS, ResNet34Branch
from mmbench.segmentation.esanet import DECODER_CHANNELS, ESANetRGBD, _check_size, _Decoding

FILLS = ("first", "mean")
NUM_MODALITIES = 2  # rgb, depth


def _stages(branch: ResNet34Branch, x: torch.Tensor) -> List[torch.Tensor]:
    """The five stage outputs (stem, layer1..4) of ``branch`` on ``x``."""
    out = []
    for stage in range(5):
        x = branch.forward_stage(stage, x)
        out.append(x)
    return out


def fill_missing(composed: Sequence[torch.Tensor], shared: Sequence[torch.Tensor], mask: torch.Tensor,
                 how: str = "first") -> List[torch.Tensor]:
    """Per modality m, ``composed[m]`` where m is present, else the fill from the present modalities' shared maps.

    Args:
        composed, shared: M maps ``[B, C, h, w]``. mask: ``[B, M]`` 0/1. how: ``"first"`` (the shared map of
            the first present modality) or ``"mean"`` (the mean of the present modalities' shared maps).

    A sample with no modality present has nothing to fill from: zeros.
    """
    if how not in FILLS:
        raise ValueError(f"shared_fill={how!r}: expected one of {FILLS}")
    H = torch.stack(list(shared), 1)  # [B, M, C, h, w]
    mask = mask.to(H.dtype)
    if how == "first":
        order = torch.arange(mask.shape[1], 0, -1, device=mask.device, dtype=mask.dtype)  # earlier = larger
        first = (mask * order).argmax(1)  # [B]
        fill = H[torch.arange(H.shape[0], device=H.device), first]
    else:
        fill = (H * mask[:, :, None, None, None]).sum(1) / mask.sum(1).clamp_min(1.0)[:, None, None, None]
    fill = fill * (mask.sum(1) > 0).to(fill.dtype)[:, None, None, None]
    return [torch.where(mask[:, m, None, None, None] > 0, c, fill) for m, c in enumerate(composed)]


class ShaSpecESANet(_Decoding):
    """``rgb [B, 3, H, W]``, ``depth [B, 1, H, W]``, ``present [B, 2]`` -> logits ``[B, C, H, W]``.

    Args: as :class:`~mmbench.segmentation.esanet.ESANetRGBD` (``block``, ``decoder_channels``,
    ``context_bins``, ``layers``); ``shared_fill`` ``"first"`` or ``"mean"`` (module docstring).
    """

    def __init__(self, num_classes: int, block: str = "nbt1d", decoder_channels: Sequence[int] = DECODER_CHANNELS,
                 context_bins: Sequence[int] = (1, 5), layers: Sequence[int] = RESNET34_LAYERS,
                 shared_fill: str = "first"):
        super().__init__()
        if shared_fill not in FILLS:
            raise ValueError(f"shared_fill={shared_fill!r}: expected one of {FILLS}")
        self.shared_fill = shared_fill
        self.specific = nn.ModuleList([ResNet34Branch(3, block, None, layers), ResNet34Branch(1, block, None, layers)])
        self.shared = ResNet34Branch(3, block, None, layers)
        c = STAGE_CHANNELS[4]
        self.compose = nn.Conv2d(2 * c, c, 3, padding=1, bias=False)
        self.domain_classifier = nn.Linear(c, NUM_MODALITIES)
        self._build_decoder(num_classes, decoder_channels, context_bins,
                            encoder_channels=[NUM_MODALITIES * ch for ch in STAGE_CHANNELS])

    def features(self, rgb: torch.Tensor, depth: torch.Tensor, present: torch.Tensor) -> Dict[str, object]:
        """Everything one pass computes.

        Returns:
            ``logits`` ``[B, C, H, W]``; ``specific``, ``shared``, ``composed``, ``filled``: per modality
            ``[B, 512, H/32, W/32]``; ``domain_logits``: per modality ``[B, 2]``.
        """
        if rgb.shape[1] != 3 or depth.shape[1] != 1 or depth.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(f"expected rgb [B, 3, H, W] and depth [B, 1, H, W]; "
                             f"got {tuple(rgb.shape)}, {tuple(depth.shape)}")
        _check_size(*rgb.shape[-2:])
        present = present.to(rgb.device).float()
        rgb, depth = ESANetRGBD.mask_inputs(rgb, depth, present)
        B = rgb.shape[0]
        specific = [_stages(branch, x)[4] for branch, x in zip(self.specific, (rgb, depth))]
        # one weight-shared pass over both modalities stacked along the batch
        shared_stages = [s.split(B, 0) for s in _stages(self.shared, torch.cat([rgb, depth.expand(-1, 3, -1, -1)], 0))]
        shared = list(shared_stages[4])
        composed = [h + self.compose(torch.cat([h, s], 1)) for h, s in zip(shared, specific)]
        filled = fill_missing(composed, shared, present, self.shared_fill)
        skips_in = [torch.cat(per_modality, 1) for per_modality in shared_stages]  # [B, 2 * C_s, ...] per stage
        x = self.context(torch.cat(filled, 1))
        logits = self._decode_head(x, self._skip_features(skips_in))
        domain_logits = [self.domain_classifier(s.mean((2, 3))) for s in specific]
        return {"logits": logits, "specific": specific, "shared": shared, "composed": composed, "filled": filled,
                "domain_logits": domain_logits}

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, present: Optional[torch.Tensor] = None) -> torch.Tensor:
        if present is None:
            present = torch.ones(rgb.shape[0], NUM_MODALITIES, device=rgb.device)
        if present.shape != (rgb.shape[0], NUM_MODALITIES):
            raise ValueError(f"present must be [B, 2] (RGB, depth); got {tuple(present.shape)} for B = {rgb.shape[0]}")
        return self.features(rgb, depth, present)["logits"]
