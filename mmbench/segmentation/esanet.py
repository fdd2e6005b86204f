"""ESANet-style two-branch RGB-D segmentation network with a modality mask (missing RGB or depth).

Encoder: one :class:`~mmbench.segmentation.backbone.ResNet34Branch` for RGB, one for depth. After the
stem and after each of layer1..layer4 the depth features are fused into the RGB stream by
:class:`~mmbench.segmentation.blocks.SEFusionAdd` (the fused map is what the RGB branch continues
from; the depth branch continues on its own). Context: :class:`PyramidPooling` on the 1/32 map.
Decoder: three modules (conv-BN-ReLU, NonBottleneck1D, learned 2x upsampling), each adding the fused
encoder skip of the same resolution (1/16, 1/8, 1/4; a 1x1 conv-BN-ReLU matches the channels), then a
3x3 conv to the class logits and two learned 2x upsamplings to the input size.

Missing modalities: ``forward(rgb, depth, present)`` zeroes the input of every absent modality per
sample (``present[:, 0]`` RGB, ``present[:, 1]`` depth), as MMANet's evaluation multiplies the inputs by
its ``[[1,0],[0,1],[1,1]]`` masks.

Deep supervision (``side_outputs=True``): as ESANet's released ``DecoderModule``, each decoder module has a
1x1 conv from its features (after the NonBottleneck1D blocks, before the learned upsampling) to class
logits, at 1/32, 1/16 and 1/8 of the input. ``forward(..., with_sides=True)`` returns them with the main
logits (training only; the methods supervise them, :func:`~mmbench.segmentation.methods.deep_supervised_ce`);
prediction is unchanged and never computes them.

For the methods' networks: :meth:`ESANetRGBD.encode` can also mask the two branch outputs before every
fusion (DMRNet's and MMANet's released masking), and :class:`DecoderHead` is a second decoder of the
same structure over the same context output and skips (DMRNet's auxiliary decoder).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn

from mmbench.segmentation.backbone import RESNET34_LAYERS, STAGE_CHANNELS, ResNet34Branch
from mmbench.segmentation.blocks import LearnedUpsample, NonBottleneck1D, PyramidPooling, SEFusionAdd, conv_bn_relu

DECODER_CHANNELS = (512, 256, 128)  # ESANet's NYUv2 / Cityscapes setting


class DecoderModule(nn.Module):
    """``[B, c_in, h, w]`` -> ``[B, c_out, 2h, 2w]``: conv-BN-ReLU 3x3, ``blocks`` NonBottleneck1D, learned 2x up.

    ``side_classes`` > 0 adds ESANet's side output: a 1x1 conv (with bias) from the features before the
    upsampling to ``side_classes`` logits ``[B, side_classes, h, w]`` (:meth:`forward_with_side`).
    """

    def __init__(self, c_in: int, c_out: int, blocks: int = 1, side_classes: int = 0):
        super().__init__()
        self.conv = conv_bn_relu(c_in, c_out, 3)
        self.blocks = nn.Sequential(*[NonBottleneck1D(c_out, c_out) for _ in range(blocks)])
        self.up = LearnedUpsample(c_out)
        self.side_output = nn.Conv2d(c_out, side_classes, 1) if side_classes else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.blocks(self.conv(x)))

    def forward_with_side(self, x: torch.Tensor):
        """``(upsampled [B, c_out, 2h, 2w], side logits [B, side_classes, h, w])``."""
        if self.side_output is None:
            raise ValueError("this decoder module was built without a side output (side_outputs=False)")
        features = self.blocks(self.conv(x))
        return self.up(features), self.side_output(features)


def _decoder_modules(widths: Sequence[int], side_classes: int) -> nn.ModuleList:
    d1, d2, d3 = widths
    return nn.ModuleList([DecoderModule(d1, d1, side_classes=side_classes),
                          DecoderModule(d1, d2, side_classes=side_classes),
                          DecoderModule(d2, d3, side_classes=side_classes)])


class _Decoding(nn.Module):
    """The part after the encoder, shared by the two-branch and the one-branch network: pyramid-pooling
    context on the 1/32 map, three decoder modules adding the 1/16, 1/8 and 1/4 skips, class logits, two
    learned 2x upsamplings."""

    def _build_decoder(self, num_classes: int, decoder_channels: Sequence[int], context_bins: Sequence[int],
                       encoder_channels: Sequence[int] = STAGE_CHANNELS, side_outputs: bool = False) -> None:
        """``encoder_channels``: widths of the five encoder outputs the decoder reads (stem, layer1..4);
        ResNet-34's by default, wider where a method concatenates several encoders' maps (ShaSpec).
        ``side_outputs``: give each decoder module ESANet's side output (deep supervision)."""
        if len(decoder_channels) != 3 or min(decoder_channels) < 1:
            raise ValueError(f"decoder_channels are 3 positive widths; got {list(decoder_channels)}")
        d1, d2, d3 = (int(c) for c in decoder_channels)
        self.decoder_widths = (d1, d2, d3)
        self.side_outputs = bool(side_outputs)
        self.context = PyramidPooling(encoder_channels[4], d1, context_bins)
        # skips from the fused 1/16, 1/8 and 1/4 maps, projected to the decoder widths
        self.skips = nn.ModuleList([conv_bn_relu(encoder_channels[3], d1, 1), conv_bn_relu(encoder_channels[2], d2, 1),
                                    conv_bn_relu(encoder_channels[1], d3, 1)])
        self.decoder = _decoder_modules(self.decoder_widths, num_classes if side_outputs else 0)
        self.classifier = nn.Conv2d(d3, num_classes, 3, padding=1)
        self.final_up = nn.Sequential(LearnedUpsample(num_classes), LearnedUpsample(num_classes))

    def _decode(self, stages, sides: Optional[list] = None) -> torch.Tensor:
        """``stages``: the five encoder outputs (stem, layer1..4) -> logits at the input size (and the side
        outputs appended to ``sides`` when it is a list)."""
        return self._decode_head(self.context(stages[4]), self._skip_features(stages), sides=sides)

    def _skip_features(self, stages):
        """The 1/16, 1/8 and 1/4 encoder maps projected to the decoder widths (shared by every decoder head)."""
        return [skip(enc) for skip, enc in zip(self.skips, (stages[3], stages[2], stages[1]))]

    def _decode_head(self, x: torch.Tensor, skips, head: Optional["DecoderHead"] = None,
                     sides: Optional[list] = None) -> torch.Tensor:
        """Context output ``x [B, d1, H/32, W/32]`` and the projected skips -> logits ``[B, C, H, W]`` through
        ``head`` (a :class:`DecoderHead`), or through this network's own decoder when None.

        ``sides``: a list to append the three side outputs to (``[B, C, H/32, W/32]``, ``H/16``, ``H/8``),
        or None (inference: not computed)."""
        modules, classifier, final_up = ((self.decoder, self.classifier, self.final_up) if head is None
                                         else (head.decoder, head.classifier, head.final_up))
        for module, skip in zip(modules, skips):
            if sides is None:
                x = module(x) + skip  # 1/16, 1/8, 1/4
            else:
                up, side = module.forward_with_side(x)
                sides.append(side)  # 1/32, 1/16, 1/8
                x = up + skip
        return final_up(classifier(x))  # 1/1

    def _sides_list(self, with_sides: bool) -> Optional[list]:
        if with_sides and not self.side_outputs:
            raise ValueError("with_sides=True needs a network built with side_outputs=True")
        return [] if with_sides else None


class DecoderHead(nn.Module):
    """A second decoder with the structure of :class:`_Decoding`'s own (three decoder modules, the class
    logits, two learned 2x upsamplings) that reads the same context output and skips (DMRNet's auxiliary
    decoder, ``auxi_decoder`` in the released code); ``side_outputs`` as the main decoder's."""

    def __init__(self, num_classes: int, decoder_channels: Sequence[int], side_outputs: bool = False):
        super().__init__()
        d1, d2, d3 = (int(c) for c in decoder_channels)
        self.decoder = _decoder_modules((d1, d2, d3), num_classes if side_outputs else 0)
        self.classifier = nn.Conv2d(d3, num_classes, 3, padding=1)
        self.final_up = nn.Sequential(LearnedUpsample(num_classes), LearnedUpsample(num_classes))


def _check_size(h: int, w: int) -> None:
    if h % 32 or w % 32:
        raise ValueError(f"H and W must be multiples of 32 (five stride-2 stages); got {h}x{w}")


class ESANetRGBD(_Decoding):
    """``rgb [B, 3, H, W]``, ``depth [B, 1, H, W]``, ``present [B, 2]`` -> logits ``[B, num_classes, H, W]``.

    H and W must be multiples of 32 (five stride-2 stages).

    Args:
        num_classes: C (40 on NYUv2, 19 on Cityscapes).
        block: encoder residual block, ``"nbt1d"`` (the released code) or ``"basic"`` (torchvision's).
        rgb_weights, depth_weights: optional user files with ImageNet-style backbone weights
            (:class:`ResNet34Branch`); none are downloaded.
        decoder_channels: widths of the three decoder modules.
        context_bins: pyramid-pooling bins.
        layers: residual blocks per encoder stage (ResNet-34's ``(3, 4, 6, 3)``; fewer for tiny CPU runs).
        side_outputs: build ESANet's decoder side outputs (deep supervision, training only).
    """

    def __init__(self, num_classes: int, block: str = "nbt1d",
                 rgb_weights: Optional[Union[str, Path]] = None, depth_weights: Optional[Union[str, Path]] = None,
                 decoder_channels: Sequence[int] = DECODER_CHANNELS, context_bins: Sequence[int] = (1, 5),
                 layers: Sequence[int] = RESNET34_LAYERS, side_outputs: bool = False):
        super().__init__()
        self.rgb = ResNet34Branch(3, block, rgb_weights, layers)
        self.depth = ResNet34Branch(1, block, depth_weights, layers)
        self.fusions = nn.ModuleList(SEFusionAdd(c) for c in STAGE_CHANNELS)
        self._build_decoder(num_classes, decoder_channels, context_bins, side_outputs=side_outputs)

    @staticmethod
    def mask_inputs(rgb: torch.Tensor, depth: torch.Tensor, present: Optional[torch.Tensor]):
        """Zero the absent modality of each sample; ``present`` ``[B, 2]`` (1 = there), None = both there."""
        if present is None:
            return rgb, depth
        if present.shape != (rgb.shape[0], 2):
            raise ValueError(f"present must be [B, 2] (RGB, depth); got {tuple(present.shape)} for B = {rgb.shape[0]}")
        p = present.to(rgb.dtype)
        return rgb * p[:, 0, None, None, None], depth * p[:, 1, None, None, None]

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, present: Optional[torch.Tensor] = None,
                with_sides: bool = False):
        """Logits ``[B, C, H, W]``; with ``with_sides`` ``(logits, [side 1/32, side 1/16, side 1/8])``."""
        h, w = rgb.shape[-2:]
        if rgb.shape[1] != 3 or depth.shape[1] != 1 or depth.shape[-2:] != (h, w) or depth.shape[0] != rgb.shape[0]:
            raise ValueError(f"expected rgb [B, 3, H, W] and depth [B, 1, H, W]; got {tuple(rgb.shape)}, {tuple(depth.shape)}")
        _check_size(h, w)
        sides = self._sides_list(with_sides)
        logits = self._decode(self.encode(*self.mask_inputs(rgb, depth, present)), sides)
        return (logits, sides) if with_sides else logits

    def encode(self, x_rgb: torch.Tensor, x_depth: torch.Tensor, feature_mask: Optional[torch.Tensor] = None):
        """The five fused maps (stem, layer1..4), each ``[B, STAGE_CHANNELS[s], H / 2^(s+1), W / 2^(s+1)]``.

        ``feature_mask`` ``[B, 2]`` (None: no masking) multiplies each branch's output by its modality's
        entry before every fusion, as DMRNet's and MMANet's released ESANet does (``x_rgb * p[:, 0]``,
        ``x_depth * p[:, 1]``): the RGB branch continues from the fused map, the depth branch from its own
        unmasked map.
        """
        if feature_mask is not None:
            if feature_mask.shape != (x_rgb.shape[0], 2):
                raise ValueError(f"feature_mask must be [B, 2] (RGB, depth); got {tuple(feature_mask.shape)}")
            p = feature_mask.to(x_rgb.dtype)[:, :, None, None, None]  # [B, 2, 1, 1, 1]
        fused = []
        for stage in range(5):
            x_rgb = self.rgb.forward_stage(stage, x_rgb)
            x_depth = self.depth.forward_stage(stage, x_depth)
            if feature_mask is None:
                x_rgb = self.fusions[stage](x_rgb, x_depth)
            else:
                x_rgb = self.fusions[stage](x_rgb * p[:, 0], x_depth * p[:, 1])
            fused.append(x_rgb)
        return fused


class ESANetOneModality(_Decoding):
    """``x [B, in_channels, H, W]`` -> logits ``[B, num_classes, H, W]``: ESANet with one encoder branch and
    no fusion (the released code's single-modality network, ``--modality rgb`` or ``depth``), the same
    context module and decoder as :class:`ESANetRGBD`. The unimodal baseline trains one per modality.

    Args: as :class:`ESANetRGBD`; ``in_channels`` 3 (RGB) or 1 (depth), ``weights`` its backbone file.
    """

    def __init__(self, num_classes: int, in_channels: int, block: str = "nbt1d",
                 weights: Optional[Union[str, Path]] = None, decoder_channels: Sequence[int] = DECODER_CHANNELS,
                 context_bins: Sequence[int] = (1, 5), layers: Sequence[int] = RESNET34_LAYERS,
                 side_outputs: bool = False):
        super().__init__()
        self.encoder = ResNet34Branch(in_channels, block, weights, layers)
        self.in_channels = in_channels
        self._build_decoder(num_classes, decoder_channels, context_bins, side_outputs=side_outputs)

    def forward(self, x: torch.Tensor, with_sides: bool = False):
        """Logits ``[B, C, H, W]``; with ``with_sides`` ``(logits, [side 1/32, side 1/16, side 1/8])``."""
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected [B, {self.in_channels}, H, W]; got {tuple(x.shape)}")
        _check_size(*x.shape[-2:])
        stages = []
        for stage in range(5):
            x = self.encoder.forward_stage(stage, x)
            stages.append(x)
        sides = self._sides_list(with_sides)
        logits = self._decode(stages, sides)
        return (logits, sides) if with_sides else logits
