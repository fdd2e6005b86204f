"""AMCo, as released in BalanceBenchmark: Zhou, Liang, Zheng, Xuan, Kumada, "Adaptive Mask
Co-optimization for Modal Dependence in Multimodal Learning" (ICASSP 2023).

Released code read: GeWu-Lab/BalanceBenchmark ``balancemm/trainer/AMCo_trainer.py`` (``train_loop``:
the mask schedule; ``training_step``: the losses and the dependence test),
``balancemm/models/avclassify_model.py`` (``BaseClassifierAMCoModel``: the masked unimodal logits and
``linear_star``; ``BaseClassifierModel.validation_step``; ``MultiModalParallel``),
``balancemm/train.py`` (the model is wrapped in ``MultiModalParallel`` on GPU) and
``configs/trainer_config.yaml`` (``AMCo``). No repository of the AMCo authors was found, and only the
paper's abstract could be read here ("the adaptive mask ... making dependent modalities harder to be
learned. The co-optimization can preserve the performance ... on dependent modalities"): whether the
paper masks classes of the logits (as the release does) or units of the features (the config's unused
``U: 512`` suggests a feature width) could not be checked.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from baselines._balance_utils import masked_ce, window_active, window_start_epoch
from baselines.ogm_ge import unimodal_logits_ogm
from mmbench.batching import Batch
from mmbench.engine.distributed import global_sum
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import ConcatFusion
from mmbench.settings_schema import FRACTION, POSITIVE, Setting

PREDICT = ("released", "output")


def mask_fraction(epoch: int, batch_index: int, eps: float) -> float:
    """``pt``: the fraction of classes masked at a step (released ``train_loop``).

    ``l_t`` starts at 0 every epoch and grows by ``epoch / 10`` after each batch, accumulated in
    floating point as released; ``pt = sin(pi/2 * min(eps, l_t) / eps)``. So nothing is masked in epoch
    0, and from epoch 1 on every class is masked after ``ceil(10 eps / epoch)`` batches.
    """
    l_t = 0.0
    for _ in range(batch_index):
        l_t += epoch / 10
    return float(np.sin(np.pi / 2 * (min(eps, l_t) / eps)))


def masked_unimodal_logits(head: ConcatFusion, feats: List[torch.Tensor], dependent: torch.Tensor,
                           class_mask: torch.Tensor) -> torch.Tensor:
    """``[M, B, C]``: ``z_m = W_m x_m + b / M``, times the class mask ``[C]`` (0/1) where ``dependent[m]``.

    The release multiplies the dependent modality's logits by a ``[2, C]`` mask that
    ``MultiModalParallel`` scatters over its two GPUs (one identical row each, broadcast over that
    GPU's half of the batch): one class mask for the whole batch, as here.
    """
    z = unimodal_logits_ogm(head, feats)
    return torch.where(dependent.view(-1, 1, 1), z * class_mask, z)


def dependence(z_masked: torch.Tensor, sigma: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """``(share [M], dependent [M] bool)``: each modality's share of the softmax over the concatenated
    ``[B, M*C]`` masked logits, averaged over the batch; dependent where the share exceeds ``sigma``."""
    M, B, C = z_masked.shape
    probs = F.softmax(z_masked.detach().permute(1, 0, 2).reshape(B, M * C), dim=1)
    # under torchrun the sums run over the global batch, so every rank flags the same modalities
    sums = global_sum(torch.cat([probs.view(B, M, C).sum(2).sum(0), probs.new_full((1,), float(B))]))
    share = sums[:M] / sums[M]
    return share, share > sigma


@register_method
class AMCo(Method):
    """AMCo (BalanceBenchmark's): mask random classes of the dependent modality's logits, more each batch; fused + unimodal CEs.

    Per step (inside the window), with ``z_m = W_m x_m + b / M`` ``[B, C]`` of the concat head:

    * ``pt`` = :func:`mask_fraction` (epoch, batch index); ``N = int(pt * C)`` classes drawn at random
      get mask 0, the others 1 (one ``[C]`` mask for the batch);
    * ``z~_m = z_m * mask`` if modality m was found *dependent* on the previous batch of the epoch
      (none on the first), else ``z_m``;
    * ``loss = CE(L*(sum_m z~_m), y) + sum_m CE(z~_m, y)`` with ``L*`` a learned ``C x C`` linear layer
      (``linear_star``), the released two backward passes summed;
    * then modality m is dependent for the next batch if its share of ``softmax([z~_1, ..., z~_M])``
      (over all M*C logits, batch mean) exceeds ``sigma`` (:func:`dependence`; no gradient).

    Masked classes' logits are 0, so a fully masked modality (pt = 1) sends no gradient to its
    encoder; the mask and the dependence flags are constants of the step. Outside the window: the
    plain ``CE(L*(sum_m z_m), y)``.

    Prediction (``predict``): ``"released"`` (default): ``sum_m z_m`` = the concat head's output,
    without ``L*``: BalanceBenchmark's ``validation_step`` re-runs ``unimodality_calculate`` after the
    forward pass, which overwrites the output with the unmasked sum (so the released accuracy never
    passes through the trained ``L*``); ``"output"``: ``L*(sum_m z_m)``, the output training optimises.

    Hyper-parameters (BalanceBenchmark -> harness default):

    * ``sigma``: 0.5 -> 0.5 (for M = 2 the shares sum to 1: the leading modality is dependent).
    * ``eps``: 0.3 -> 0.3 (the ramp of ``pt``).
    * ``start``, ``end``: ``modulation_starts: 0``, ``modulation_ends: 80`` (of 30 epochs) -> (0, 1).
    * ``predict``: ``"released"`` (see above).
    * ``U: 512`` and ``alpha: 0.1`` are in the config and unused by the trainer.

    Departures: the mask is drawn from a NumPy generator seeded by (run seed, epoch) (released: the
    global ``np.random`` shuffle); for a missing modality (absent from the release) its unimodal CE is
    averaged over the samples that have it; under torchrun the shares are those of the global batch. The released code only runs on exactly two GPUs (its
    ``[2, C]`` mask does not broadcast over a batch on one device); this is the two-GPU behaviour.
    Optimiser: BalanceBenchmark's global config (``recipe=paper``); the harness engine's by default.

    Side-by-side (tests/baselines/test_amco.py): three consecutive SGD steps of epoch 1 (pt = 0, 0.5,
    0.87: 0, 2 and 3 of 4 classes masked; the dependence found on each batch used on the next)
    against a transcription of the released ``train_loop`` + ``training_step`` + AMCo model forward
    (M = 2, MLP/series encoders, the same class masks): maximum absolute parameter difference 3.0e-8
    (float32; asserted < 1e-6), the same dependence flags.
    """

    name = "amco"
    version = 1
    hparams: Dict[str, Any] = {"sigma": 0.5, "eps": 0.3, "start": 0.0, "end": 1.0, "predict": "released"}
    hparam_schema = {"sigma": FRACTION, "eps": POSITIVE, "start": FRACTION, "end": Setting(float, low=0.0),
                     "predict": Setting(str, choices=PREDICT)}
    train_overrides = {"fusion": "concat"}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("AMCo masks a dependent modality among two or more; this data set has one")
        if not isinstance(self.model.head, ConcatFusion):
            raise ValueError(f"AMCo needs fusion=concat (unimodal logits W_m x_m + b/M), got "
                             f"{type(self.model.head).__name__}")
        if self.hp["predict"] not in PREDICT:
            raise ValueError(f"predict={self.hp['predict']!r}: expected one of {PREDICT}")
        C = self.info.num_classes
        self.extra["linear_star"] = nn.Linear(C, C)
        self.batch_index = 0
        self.dependent = torch.zeros(self.info.num_modalities, dtype=torch.bool)
        self.rng = np.random.default_rng([self.info.seed, 0])

    def selection_start_epoch(self) -> int:
        return window_start_epoch(self.hp["start"], self.info.epochs)

    def on_epoch_start(self, ctx) -> None:
        self.batch_index = 0  # l_t restarts every epoch (released: a local of train_loop)
        self.dependent = torch.zeros(self.info.num_modalities, dtype=torch.bool, device=ctx.device)
        self.rng = np.random.default_rng([self.info.seed, ctx.epoch])

    def class_mask(self, pt: float, device) -> torch.Tensor:
        """``[C]``: ``N = int(pt * C)`` random classes 0, the others 1."""
        C = self.info.num_classes
        mask = np.ones(C, dtype=np.float32)
        mask[self.rng.permutation(C)[: int(pt * C)]] = 0.0
        return torch.from_numpy(mask).to(device)

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        feats = self.model.encode(batch)
        linear_star = self.extra["linear_star"]
        if not window_active(ctx.epoch, ctx.epochs, self.hp["start"], self.hp["end"]):
            return F.cross_entropy(linear_star(self.model.head(feats)), batch.labels)
        pt = mask_fraction(ctx.epoch, self.batch_index, self.hp["eps"])
        self.batch_index += 1
        self.last_mask = self.class_mask(pt, batch.labels.device)
        z = masked_unimodal_logits(self.model.head, feats, self.dependent.to(batch.labels.device), self.last_mask)
        fused = sum(z.unbind(0))
        loss = F.cross_entropy(linear_star(fused), batch.labels)
        loss = loss + sum(masked_ce(z[m], batch.labels, batch.mask[:, m]) for m in range(z.shape[0]))
        share, self.dependent = dependence(z, self.hp["sigma"])
        self.log_coefficients({"pt": pt, "share": share, "dependent": self.dependent.float()})
        return loss

    def predict(self, batch: Batch) -> torch.Tensor:
        fused = self.model(batch)
        return fused if self.hp["predict"] == "released" else self.extra["linear_star"](fused)
