"""CGGM: Classifier-Guided Gradient Modulation (Guo, Jin, Chen, Zhao, "Classifier-guided Gradient Modulation
for Enhanced Multimodal Learning", NeurIPS 2024, arXiv 2411.01409).

Released code read: zrguo/CGGM ``src/foodtrain.py`` and ``src/msatrain.py`` (``train``: the step order,
the coefficients, ``l_gm``, the encoder scaling, clipping), ``src/eval_metrics.py`` (``cal_cos``,
``train_eval_food``/``train_eval_iemo``: batch accuracy), ``models/msamodel.py`` (``Classifier``,
``ClassifierGuided``) and ``run/{food,mosi,iemo}_run.py`` (defaults). BalanceBenchmark has no CGGM
trainer. The paper's method section was not readable from this environment (abstract only), so
every formula below is the released code's; where it is specific to the released Transformer models
the adaptation is the harness's and is said so.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
import torch.nn.functional as F
from torch import nn

from baselines._balance_utils import masked_ce, masked_mean
from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import ConcatFusion, SumFusion
from mmbench.settings_schema import NON_NEGATIVE, POSITIVE, Setting


class GuideClassifier(nn.Module):
    """A modality's guiding classifier ``[B, D] -> [B, C]``: ``out_layer(relu(proj1(proj1(x))))``.

    The released ``Classifier`` applies its ``proj1`` twice (``x = proj1(x); x = relu(proj1(x))``)
    after a Transformer ``bone`` over the encoder's token sequence; the harness features are already
    pooled ``[B, D]`` vectors, so the bone is left out and the rest kept as released.
    """

    def __init__(self, feature_dim: int, num_classes: int):
        super().__init__()
        self.proj1 = nn.Linear(feature_dim, feature_dim)
        self.out_layer = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_layer(F.relu(self.proj1(self.proj1(x))))


def balance_coefficients(delta: torch.Tensor) -> torch.Tensor:
    """``B_m = (S - delta_m) / S`` with ``S = sum_k delta_k + 1e-8`` ``[M]`` (released ``coeff``).

    ``delta`` ``[M]``: each classifier's batch-accuracy change since the previous step. A modality that
    improved more than the others gets a smaller coefficient; ``sum_m B_m = M - 1`` (up to the 1e-8).
    When the improvements cancel (``S`` near 1e-8) the coefficients are huge and of both signs, as
    released; the gradient clipping that follows (``clip``) bounds the step.
    """
    total = delta.sum() + 1e-8
    return (total - delta) / total


def direction_loss(coeff: torch.Tensor, classifier_weights: List[torch.Tensor], fusion_weights: List[torch.Tensor]) -> torch.Tensor:
    """``l_gm = (sum_m |B_m| - sum_m B_m cos(vec W^cls_m, vec W^fus_m)) / M`` (released ``l_gm``, ``cal_cos``).

    ``classifier_weights``: M ``[C, D]`` (each guiding classifier's ``out_layer.weight``);
    ``fusion_weights``: M ``[C, D]`` (the fusion head's output weights that read modality m).
    """
    cos = torch.stack([F.cosine_similarity(c.reshape(-1), f.reshape(-1), dim=0)
                       for c, f in zip(classifier_weights, fusion_weights)])
    coeff = coeff.to(cos.dtype)
    return (coeff.abs().sum() - (coeff * cos).sum()) / len(fusion_weights)


def fusion_output_weight(head: nn.Module, m: int) -> torch.Tensor:
    """The fusion head's output weights that read modality ``m`` ``[C, D]`` (a view with autograd)."""
    if isinstance(head, ConcatFusion):
        return head.block(m)
    if isinstance(head, SumFusion):
        return head.fcs[m].weight
    raise ValueError(f"CGGM needs fusion=concat or sum, got {type(head).__name__}")


@register_method
class CGGM(Method):
    """CGGM: per-modality guiding classifiers set each encoder's gradient scale and pull the fusion weights toward their direction.

    Idea: a modality that learns faster than the others dominates. CGGM trains one classifier per
    modality on the detached encoder features (it never reaches the encoders) and uses their batch
    accuracies to modulate the *magnitude* of each encoder's gradient, and the directions of their
    output weights to modulate the *direction* of the fusion head's, through an extra loss.

    One step (released order, ``train`` in ``foodtrain.py``/``msatrain.py``), features ``x_m`` ``[B, D]``:

    1. ``loss = CE(head(x), y) + lam * l_gm^{t-1}``; ``l_gm^{t-1}`` is the previous step's
       :func:`direction_loss`, built from that step's coefficients and weight snapshots (its gradient
       reaches only the fusion head's output weights, evaluated at their previous values: the
       released graph holds clones of them; the classifiers' part is discarded, as released by
       ``cls_optimizer.zero_grad()``). Absent on the first step of the run.
    2. ``cls_loss = sum_m CE(f_m(x_m.detach()), y)`` trains the classifiers only.
    3. ``acc_m`` = batch accuracy of ``f_m``; ``delta_m = acc_m - acc_m^{t-1}`` (``acc^{-1} = 0``, kept
       across epochs as released); ``B = balance_coefficients(delta)``.
    4. every gradient of encoder m is multiplied by ``rho * B_m``; the fusion head keeps its gradient.
    5. ``l_gm^t`` from ``B`` and the current ``W^cls_m``, ``W^fus_m`` for the next step; the model's
       gradient norm is clipped to ``clip`` (the classifiers are not clipped, as released); one step.

    ``B`` is logged per modality (step means). Inference: the fused head only (classifiers discarded).

    Hyper-parameters (released -> harness default):

    * ``rho`` ("rou"): 1.3 on every data set -> 1.3.
    * ``lam`` ("lamda"): 0.2 (CMU-MOSI, IEMOCAP; the README's command), 0.05 (Food-101) -> 0.2.
    * ``clip``: 0.8 -> 0.8 (max total gradient norm of the model's parameters; 0 = no clipping).

    Departures from the released code:

    * the fusion direction: released compares every classifier's ``out_layer.weight`` with the one
      ``out_layer.weight`` of its Transformer fusion model (all ``[C, 40]``); the harness concat head
      has one ``[C, M D]`` weight, so classifier m is compared with the block ``W_m`` that reads
      modality m (sum fusion: ``fcs[m].weight``). The released ``cal_cos`` takes the cosine of the
      weights themselves, though its variables are named ``fusion_grad``/``cls_grad``; kept.
    * classifiers: no Transformer bone (see :class:`GuideClassifier`); trained by the harness
      optimiser at its learning rate (released: their own optimiser, lr 5e-4, wd 3e-3).
    * under a missing-modality pattern the classifier CEs and accuracies use the samples that have the
      modality (a modality absent from the whole batch gets the others' mean accuracy).
    * optimiser: released Adam/AdamW lr 1e-3 with ReduceLROnPlateau; harness engine defaults.

    Side-by-side (tests/baselines/test_cggm.py): three consecutive SGD steps against a transcription
    of the released ``train`` loop (``raw_loss += lamda * l_gm``, ``cal_cos``, ``cal_coeff`` via a
    NumPy argmax accuracy, ``params.grad *= coeff[i] * rou``, ``clip_grad_norm_``, a separate classifier
    optimiser) on tiny inputs: maximum absolute parameter difference 0 (float32; asserted < 1e-6); the coefficients B of the
    three steps were (0.6, 0.4), (2.0, -1.0), (-2.0, 3.0), so the sign flips and the clipping are exercised.
    """

    name = "cggm"
    version = 1
    hparams: Dict[str, Any] = {"rho": 1.3, "lam": 0.2, "clip": 0.8}
    hparam_schema = {"rho": POSITIVE, "lam": NON_NEGATIVE, "clip": Setting(float, low=0.0)}
    train_overrides = {"fusion": "concat"}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("CGGM balances two or more modalities; this data set has one")
        if not isinstance(self.model.head, (ConcatFusion, SumFusion)):
            raise ValueError(f"CGGM needs fusion=concat or sum, got {type(self.model.head).__name__}")
        self.extra["classifiers"] = nn.ModuleList(GuideClassifier(self.model.feature_dim, self.info.num_classes)
                                                  for _ in range(self.info.num_modalities))
        self.encoder_params = [[p for p in self.model.encoders[m].parameters() if p.requires_grad]
                               for m in self.info.modalities]
        self.reset()

    def reset(self) -> None:
        self.prev_acc: torch.Tensor | None = None
        self.prev_gm: tuple | None = None  # (B, classifier weights, fusion weights) of the previous step

    def on_fit_start(self, ctx) -> None:
        self.reset()

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        ctx.zero_grad()
        head, classifiers = self.model.head, self.extra["classifiers"]
        feats = self.model.encode(batch)
        loss = F.cross_entropy(head(feats), batch.labels)
        if self.prev_gm is not None and self.hp["lam"] > 0:
            coeff, cls_w, fus_w = self.prev_gm
            # value of the previous step's snapshot, gradient into the current parameter (the released clone)
            fus = [fusion_output_weight(head, m) + (w - fusion_output_weight(head, m)).detach() for m, w in enumerate(fus_w)]
            loss = loss + self.hp["lam"] * direction_loss(coeff, cls_w, fus)
        cls_logits = [f(x.detach()) for f, x in zip(classifiers, feats)]
        cls_loss = sum(masked_ce(z, batch.labels, batch.mask[:, m]) for m, z in enumerate(cls_logits))
        ctx.backward(loss + cls_loss)
        with torch.no_grad():
            hits = torch.stack([(z.argmax(1) == batch.labels).double() for z in cls_logits])  # [M, B]
            acc = masked_mean(hits, batch.mask)  # [M]
            delta = acc - (self.prev_acc if self.prev_acc is not None else torch.zeros_like(acc))
            coeff = balance_coefficients(delta)
            self.prev_acc = acc
            for m, params in enumerate(self.encoder_params):
                grads = [p.grad for p in params if p.grad is not None]
                if grads:
                    torch._foreach_mul_(grads, (coeff[m] * self.hp["rho"]).to(grads[0].dtype))
            self.prev_gm = (coeff, [f.out_layer.weight.detach().clone() for f in classifiers],
                            [fusion_output_weight(head, m).detach().clone() for m in range(len(feats))])
        if self.hp["clip"] > 0:
            # under an fp16 scaler the gradients are still scaled here: clip them at the scaled norm
            scale = ctx.scaler.get_scale() if getattr(ctx, "scaler", None) is not None else 1.0
            nn.utils.clip_grad_norm_(self.model.parameters(), self.hp["clip"] * scale)
        ctx.step()
        self.log_coefficients({"B": coeff})
        return loss.detach()
