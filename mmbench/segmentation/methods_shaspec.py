"""ShaSpec in segmentation form (Wang et al., CVPR 2023): shared + specific encoders, a missing modality's
bottleneck from the shared encoder of a present one, domain-classification and alignment losses. The
network is :class:`~mmbench.segmentation.shaspec_net.ShaSpecESANet`."""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from baselines.shaspec import DRAWS, draw_subsets
from mmbench.segmentation.methods import SegmentationMethod, masked_weighted_cross_entropy, register_segmentation_method
from mmbench.segmentation.shaspec_net import FILLS, ShaSpecESANet
from mmbench.settings_schema import NON_NEGATIVE, Setting

AUX_LOSS_SAMPLES = ("present", "all")


def _masked_mean(values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``sum(values * weights) / sum(weights)``; 0 (no gradient) when no weight is set."""
    return (values * weights).sum() / weights.sum().clamp_min(1.0)


def align_loss(shared: List[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Distribution alignment: mean absolute difference between the RGB and depth shared maps.

    Per sample the L1 is averaged over ``[C, h, w]``, then averaged over the samples with both modalities
    present (``mask [B, 2]``). The release (``nn.L1Loss`` over a cycle of modality pairs) takes every
    sample; for two modalities its cycle is the one pair.
    """
    per_sample = (shared[0] - shared[1]).abs().flatten(1).mean(1)  # [B]
    return _masked_mean(per_sample, mask[:, 0] * mask[:, 1])


def domain_loss(domain_logits: List[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Domain classification: CE of the classifier on each present modality's specific feature, target m,
    averaged over the present (sample, modality) pairs."""
    terms, weights = [], []
    for m, logits in enumerate(domain_logits):
        target = torch.full((logits.shape[0],), m, dtype=torch.long, device=logits.device)
        terms.append(F.cross_entropy(logits, target, reduction="none"))
        weights.append(mask[:, m])
    return _masked_mean(torch.cat(terms), torch.cat(weights))


@register_segmentation_method
class ShaSpecSegmentation(SegmentationMethod):
    """ShaSpec: shared and specific encoders, a missing modality's bottleneck from a present one's shared feature.

    Network (:class:`~mmbench.segmentation.shaspec_net.ShaSpecESANet`): specific ResNet-34 encoders per
    modality, one weight-shared ResNet-34 encoder run on each modality (depth repeated to 3 channels),
    ``c_m = h_m + conv3x3([h_m; s_m])`` at 1/32, a missing modality's ``c_m`` replaced by the shared map
    ``h_a`` of the first present modality (``shared_fill="first"``, the release) or by the mean of the
    present ones' (``"mean"``); ESANet's context module and decoder read ``[c_rgb; c_depth]`` and the shared
    encoder's stage maps as skips.

    Loss: ``CE + alpha * L_align + beta * L_spec``:

    * ``CE``: class-weighted cross-entropy (void ignored) of the logits;
    * ``L_align`` (:func:`align_loss`): L1 between the RGB and depth shared 1/32 maps, on images with both;
    * ``L_spec`` (:func:`domain_loss`): 2-way modality classification of each present specific map
      (global average, linear).

    Training: the pattern's own presence for the first ``warmup`` share of the epochs (the release's
    full-modality phase: 80k of 260k iterations, about 0.3), then per image a random non-empty subset of
    its present modalities (``draw``, :func:`baselines.shaspec.draw_subsets`). Epochs of the warm-up are
    evaluated but not kept (``selection_start_epoch``), as for the classification ShaSpec.
    Inference: the evaluation's presence mask; an absent modality's input is zeroed and its bottleneck
    filled.

    Hyper-parameters (release / default here): ``alpha`` 0.1 / 0.1; ``beta`` 0.02 / 0.02; ``warmup`` about
    0.3 / 0.3 (a share of the epochs if < 1, else an epoch count); ``shared_fill`` ``"first"`` /
    ``"first"``; ``draw``: the release draws a size k in [1, M] then a subset of that size (``"size"``),
    the harness default ``"uniform"`` over the non-empty subsets, as the classification ShaSpec.

    Departures (release / here), as in the classification port where they apply:

    * Task loss: Dice + BCE on BraTS's three overlapping regions / ESANet's class-weighted CE.
    * Encoders: a 3-D ResNet-50 + ASPP per sequence, all four of one shape / ESANet's ResNet-34 branches;
      the shared encoder reads RGB and the depth map repeated to three channels. The composition and the
      alignment act on the 1/32 map (the release's ASPP output); ESANet's context module comes after the
      composition, on the two modalities' maps concatenated.
    * ``L_align`` and ``L_spec`` in the release take every sample, also those whose modality was zeroed
      (its encoders see a zero image); the paper's losses are on the modalities an image has. Named option
      ``aux_loss_samples``: ``"present"`` (default: only the images that have the modality, both for
      ``L_align``, as the classification port) or ``"all"`` (the release: every image and modality).
      For four sequences the release sums ``L_align`` over a cycle of four pairs; two modalities have
      the one pair.
    * One subset per batch in the release (``random.sample`` of the sequences), one per image here; the
      release evaluates one subset per run (``--mode``), the harness every combination with one model.
    * The release's optimiser (SGD Nesterov, momentum 0.99, poly lr) is not reproduced; the harness's
      segmentation settings apply.
    """

    name = "shaspec"
    hparams = {"alpha": 0.1, "beta": 0.02, "warmup": 0.3, "shared_fill": "first", "draw": "uniform",
               "aux_loss_samples": "present"}
    hparam_schema = {
        "alpha": NON_NEGATIVE, "beta": NON_NEGATIVE, "warmup": Setting(float, low=0.0),
        "shared_fill": Setting(str, choices=FILLS), "draw": Setting(str, choices=DRAWS),
        "aux_loss_samples": Setting(str, choices=AUX_LOSS_SAMPLES),
    }

    def build(self) -> None:
        for key, choices in (("shared_fill", FILLS), ("draw", DRAWS), ("aux_loss_samples", AUX_LOSS_SAMPLES)):
            if self.hp[key] not in choices:
                raise ValueError(f"shaspec: {key}={self.hp[key]!r}, expected one of {choices}")
        self.nets["net"] = ShaSpecESANet(self.num_classes, shared_fill=self.hp["shared_fill"], **self.network_options())
        self.last_parts: Dict[str, Any] = {}

    def warmup_epochs(self) -> int:
        w = self.hp["warmup"]
        return round(w * self.epochs) if w < 1 else int(w)

    def selection_start_epoch(self) -> int:
        return self.warmup_epochs()

    def loss(self, rgb, depth, labels, present, generator):
        mask = present.float()
        if self.epoch >= self.warmup_epochs():
            mask = draw_subsets(mask, generator, self.hp["draw"])
        f = self.nets["net"].features(rgb, depth, mask)
        ce = masked_weighted_cross_entropy(f["logits"], labels, self.class_weights,
                                           torch.ones(len(labels), device=labels.device))
        # which (image, modality) pairs the two auxiliary losses cover: present ones, or all (the release)
        covered = mask if self.hp["aux_loss_samples"] == "present" else torch.ones_like(mask)
        align = align_loss(f["shared"], covered)
        spec = domain_loss(f["domain_logits"], covered)
        self.last_parts = {"mask": mask, "ce": ce.detach(), "align": align.detach(), "spec": spec.detach()}
        return ce + self.hp["alpha"] * align + self.hp["beta"] * spec

    def predict(self, rgb, depth, present):
        return self.nets["net"](rgb, depth, present.to(rgb.device).float())
