"""Modality dropout: drop each modality of each training sample with probability ``p``.

A common baseline for balance and for robustness to missing modalities. Dropped modalities have
their encoder feature zeroed (like missing ones); at least one modality is always kept. Dropout
acts on top of the pattern's own missingness. ``p=0.5`` with two modalities gives each of the three
subsets probability {1/4, 1/4, 1/2} before the keep-one rule.
"""
import torch
import torch.nn.functional as F

from mmbench.batching import Batch
from mmbench.engine.distributed import global_rand
from mmbench.methods.base import Method, register_method
from mmbench.settings_schema import FRACTION


def drop_modalities(mask: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """``[B, M]`` presence mask with each present entry dropped w.p. ``p``, keeping >= 1 per sample.

    A sample whose draws would remove every modality it has keeps one of them, chosen uniformly.
    Random numbers come from the CPU ``generator`` (reproducible) and are moved to the mask's
    device; no host sync.
    """
    keep = (global_rand(mask.shape, generator) >= p).to(mask)
    new = mask * keep
    empty = (new.sum(1) == 0).unsqueeze(1)
    # Among the present modalities, pick one uniformly: random scores, present ones lifted by 1.
    scores = global_rand(mask.shape, generator).to(mask) + mask
    pick = torch.nn.functional.one_hot(scores.argmax(1), mask.shape[1]).to(mask) * mask
    return torch.where(empty, pick, new)


@register_method
class ModalityDropout(Method):
    """Joint training with per-sample modality dropout (probability p, keep at least one)."""

    name = "modality-dropout"
    version = 2  # global masked means / draws under torchrun (issue 22)
    hparams = {"p": 0.5}
    hparam_schema = {"p": FRACTION}

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        mask = drop_modalities(batch.mask, self.hp["p"], ctx.generator)
        return F.cross_entropy(self.model(batch.with_mask(mask)), batch.labels)
