"""MMCosine: Multi-Modal Cosine loss (Xu, Feng, Zhang, Hu, ICASSP 2023).

Released code: GeWu-Lab/MMCosine_ICASSP23 (``main_CD.py``, ``train_epoch`` and ``valid``); also
BalanceBenchmark's ``balancemm/trainer/MMCosine_trainer.py``.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from baselines._balance_utils import window_active, window_start_epoch
from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import ConcatFusion
from mmbench.settings_schema import FRACTION, POSITIVE, Setting

PREDICT = ("cosine", "linear")


def cosine_logits(head: ConcatFusion, feats: List[torch.Tensor], scaling: float) -> torch.Tensor:
    """Per-modality cosine logits ``[M, B, C]``: ``s * <x_m / |x_m|, w_{m,c} / |w_{m,c}|>``.

    ``feats``: M x ``[B, D]``; ``w_{m,c}``: row c of the concat head's block ``W_m`` ``[C, D]`` (the
    columns of the shared ``fc`` weight that read modality m, as the official
    ``fc_out.weight[:, :512]`` / ``[:, 512:]``), normalised per class; the head's bias is unused. A
    zero feature (a missing modality under ``missing=feature``) gives zero logits (``F.normalize``
    clamps the norm at 1e-12), so an absent modality adds nothing to the sum.
    """
    return torch.stack([
        scaling * F.normalize(f, dim=1) @ F.normalize(head.block(m), dim=1).t() for m, f in enumerate(feats)
    ])


@register_method
class MMCosine(Method):
    """MMCosine: fused logits are the sum over modalities of scaled cosines between features and their class weights.

    Idea: with a linear head, the dominant modality wins the joint logit by growing its feature and
    weight norms, which starves the other encoder of gradient. MMCosine L2-normalises, per modality,
    each sample's feature ``x_m`` ``[B, D]`` and each class's weight ``w_{m,c}`` (row c of the concat
    head's block ``W_m`` ``[C, D]``), so every modality contributes a logit in ``[-s, s]``:

        z_m = s * cos(x_m, w_{m,c})  ``[B, C]``,   z = sum_m z_m,   loss = CE(z, y).

    Gradients: the CE on ``z`` reaches every encoder through its normalised features and the head's
    weight blocks through their normalised rows; the head's bias gets no gradient (it is not in the
    loss). Nothing is detached. Inside the modulation window ``[start, end)`` the loss is the cosine
    CE; outside it the plain fused CE of the linear concat head (BalanceBenchmark's window; the
    official code has none: always cosine).

    Prediction (``predict``): ``"cosine"`` (default, the paper's model: the argmax of ``z``, also
    BalanceBenchmark's validation) or ``"linear"`` (the official ``valid`` of ``main_CD.py``: its fused
    prediction is the model's own linear ``W [x_a; x_v] + b``, the head trained only through the
    cosine loss; only its unimodal accuracies use the cosine logits). The per-modality logits
    (:meth:`unimodal_logits`) are ``z_m`` (the official "approximate uni-modal evaluation").

    Hyper-parameters (released code -> harness default):

    * ``scaling`` s: official argparse and README 10 (CREMA-D); BalanceBenchmark 15 -> harness 10.
    * ``start``, ``end``: window as fractions of the run (values > 1: absolute epochs). Official: none
      (always on); BalanceBenchmark epochs 0-80 of 30 (always on) -> harness (0, 1): always on.
    * ``predict``: ``"cosine"`` (see above).

    Departures from the released code:

    * the supplementary's NCE term (``--lam``, official default 0, so absent from the paper's runs) is
      not implemented.
    * official M = 2 with hard-coded 512-wide slices; here any M >= 2, blocks of width D.
    * official optimiser: SGD lr 1e-3 (momentum 0.9, wd 1e-4), StepLR(100, 0.1), 200 epochs, batch 32;
      harness engine defaults.

    Side-by-side (tests/baselines/test_mmcosine.py): one SGD step of this method against a transcription
    of ``train_epoch`` (``torch.mm(F.normalize(a, dim=1), F.normalize(W[:, :D].T, dim=0)) * scaling``,
    summed, CE) on tiny inputs: maximum absolute parameter difference 3.0e-8 (float32; asserted < 1e-6).
    """

    name = "mmcosine"
    version = 1
    hparams: Dict[str, Any] = {"scaling": 10.0, "start": 0.0, "end": 1.0, "predict": "cosine"}
    hparam_schema = {"scaling": POSITIVE, "start": FRACTION, "end": Setting(float, low=0.0),
                     "predict": Setting(str, choices=PREDICT)}
    train_overrides = {"fusion": "concat"}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("MMCosine balances two or more modalities; this data set has one")
        if not isinstance(self.model.head, ConcatFusion):
            raise ValueError(f"MMCosine needs fusion=concat (its W_m blocks), got {type(self.model.head).__name__}")
        if self.hp["predict"] not in PREDICT:
            raise ValueError(f"predict={self.hp['predict']!r}: expected one of {PREDICT}")

    def selection_start_epoch(self) -> int:
        return window_start_epoch(self.hp["start"], self.info.epochs)

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        feats = self.model.encode(batch)
        if not window_active(ctx.epoch, ctx.epochs, self.hp["start"], self.hp["end"]):
            return F.cross_entropy(self.model.head(feats), batch.labels)
        return F.cross_entropy(cosine_logits(self.model.head, feats, self.hp["scaling"]).sum(0), batch.labels)

    def predict(self, batch: Batch) -> torch.Tensor:
        feats = self.model.encode(batch)
        if self.hp["predict"] == "linear":
            return self.model.head(feats)
        return cosine_logits(self.model.head, feats, self.hp["scaling"]).sum(0)

    def unimodal_logits(self, batch: Batch) -> List[torch.Tensor]:
        return list(cosine_logits(self.model.head, self.model.encode(batch), self.hp["scaling"]).unbind(0))
