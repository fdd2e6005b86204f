"""DMRNet's segmentation network: ESANet with per-stage feature masking, a probabilistic embedding (PME) of
the context output, and a second (auxiliary) decoder for the hard combination regulariser.

Written from the released ``segmentation/`` code's structure (``ESANet_DUL_Auxi`` in
shicaiwei123/ECCV2024-DMRNet, on ESANet) and the paper's description; no code copied.

* Encoder: :class:`~mmbench.segmentation.esanet.ESANetRGBD`'s, with the combination mask applied to both
  branches' outputs before every one of the five SE-add fusions (:meth:`ESANetRGBD.encode`).
* Context: the pyramid-pooling module on the fused 1/32 map, ``[B, d1, H/32, W/32]``.
* PME (:class:`GaussianEmbedding2d`): ``mu = BN(conv1x1(x))``, ``logvar = BN(conv1x1(x))``, each
  ``[B, d1, H/32, W/32]`` (the release's ``estimate_mean_std``, 512 -> 512 channels on NYUv2); a sample
  ``z = mu + eps * exp(logvar / 2)`` per position while training, ``z = mu`` at inference.
* KL (:func:`gaussian_kl`): per position, ``sum_c 1/2 (sigma^2 + mu^2 - log sigma^2 - 1)``, then the mean
  over the ``B * H/32 * W/32`` positions (the release's ``loss_kl4``).
* Decoders: the main one and an auxiliary :class:`~mmbench.segmentation.esanet.DecoderHead` of the same
  structure; both read ``z`` and the same projected skips (the release's ``skip_layer1..3`` sit outside
  its ``Decoder`` and are shared by the two).
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import nn

from mmbench.segmentation.esanet import DecoderHead, ESANetRGBD, _check_size


class GaussianEmbedding2d(nn.Module):
    """``x [B, C, h, w]`` -> ``(mu, logvar)``, each ``[B, C, h, w]``: two 1x1 conv + BatchNorm maps."""

    def __init__(self, channels: int):
        super().__init__()
        self.mu = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))
        self.logvar = nn.Sequential(nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x: torch.Tensor):
        return self.mu(x), self.logvar(x)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, sigma^2) || N(0, 1))`` summed over channels (dim 1), averaged over every other position.

    ``mu``, ``logvar``: ``[B, C, h, w]``. Written with ``logvar`` (the release forms ``sigma = exp(logvar/2)``
    and takes ``log(sigma^2)``: the same value, one exp/log round trip fewer).
    """
    return (0.5 * (logvar.exp() + mu.pow(2) - logvar - 1.0)).sum(1).mean()


def reparameterise(mu: torch.Tensor, logvar: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """``mu + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)`` drawn from the CPU ``generator`` (reproducible)."""
    eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype).to(mu.device)
    return mu + eps * (0.5 * logvar).exp()


class ESANetPME(ESANetRGBD):
    """``rgb [B, 3, H, W]``, ``depth [B, 1, H, W]`` -> logits ``[B, C, H, W]`` and the PME / auxiliary parts.

    Args: as :class:`ESANetRGBD`. Adds ``pme`` (:class:`GaussianEmbedding2d` on the ``d1`` context
    channels) and ``aux`` (:class:`DecoderHead`).
    """

    def __init__(self, num_classes: int, **options):
        super().__init__(num_classes, **options)
        self.pme = GaussianEmbedding2d(self.decoder_widths[0])
        self.aux = DecoderHead(num_classes, self.decoder_widths, side_outputs=self.side_outputs)

    def parts(self, rgb: torch.Tensor, depth: torch.Tensor, combination: torch.Tensor, sample: bool,
              generator: Optional[torch.Generator] = None, aux: bool = False,
              with_sides: bool = False) -> Dict[str, torch.Tensor]:
        """The pieces of one forward pass.

        Args:
            rgb, depth: inputs (an absent modality's input is already zeroed by the caller).
            combination: ``[B, 2]`` 0/1, the modalities each sample uses; multiplies the branch outputs
                before every fusion.
            sample: True: the decoders read ``z = mu + eps * sigma``; False: ``z = mu``.
            aux: also run the auxiliary decoder.
            with_sides: also return the decoders' side outputs (network built with ``side_outputs``).

        Returns:
            ``logits`` ``[B, C, H, W]``, ``mu`` / ``logvar`` ``[B, d1, H/32, W/32]``, ``aux_logits`` (if ``aux``);
            with ``with_sides`` also ``sides`` (and ``aux_sides``): ``[B, C, H/32, W/32]``, ``H/16``, ``H/8``.
        """
        if rgb.shape[1] != 3 or depth.shape[1] != 1 or depth.shape[-2:] != rgb.shape[-2:]:
            raise ValueError(f"expected rgb [B, 3, H, W] and depth [B, 1, H, W]; "
                             f"got {tuple(rgb.shape)}, {tuple(depth.shape)}")
        _check_size(*rgb.shape[-2:])
        stages = self.encode(rgb, depth, combination)
        mu, logvar = self.pme(self.context(stages[4]))
        z = reparameterise(mu, logvar, generator) if sample else mu
        skips = self._skip_features(stages)
        sides = self._sides_list(with_sides)
        out = {"logits": self._decode_head(z, skips, sides=sides), "mu": mu, "logvar": logvar}
        if with_sides:
            out["sides"] = sides
        if aux:
            aux_sides = self._sides_list(with_sides)
            out["aux_logits"] = self._decode_head(z, skips, self.aux, sides=aux_sides)
            if with_sides:
                out["aux_sides"] = aux_sides
        return out

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, present: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Inference: the main decoder on ``mu``, inputs and branch outputs masked by ``present`` ``[B, 2]``."""
        if present is None:
            present = torch.ones(rgb.shape[0], 2, device=rgb.device)
        rgb, depth = self.mask_inputs(rgb, depth, present)
        return self.parts(rgb, depth, present, sample=False)["logits"]
