"""UME: the Unimodal Ensemble of Du et al. (ICML 2023, "On Uni-Modal Feature Learning in Supervised
Multi-Modal Learning"), ``docs/baselines-and-protocols.md`` section 3.9.

Train one model per modality (its encoder and its own linear head, each on its own CE, no
parameter shared) and predict with the average of the present modalities' logits.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn.functional as F

from baselines.unimodal import Unimodal
from mmbench.batching import Batch
from mmbench.methods.base import register_method

AVERAGES = ("logits", "probs")


def ensemble_average(logits: List[torch.Tensor], mask: torch.Tensor, average: str = "logits") -> torch.Tensor:
    """Average ``M x [B, C]`` unimodal logits over the modalities present per sample (``mask`` ``[B, M]``).

    ``average="logits"`` (UME): ``z = sum_m mask_m z_m / sum_m mask_m``. ``"probs"``: the log of the
    mean softmax over present modalities (a logit-scale output with the same argmax as the mean of
    probabilities). A sample with no modality gets the plain (all-modality) mean's weights of zero,
    i.e. zero logits (never happens in evaluation: every subset is non-empty).
    """
    z = torch.stack(logits)  # [M, B, C]
    w = mask.t().unsqueeze(2).to(z.dtype)  # [M, B, 1]
    count = w.sum(0).clamp_min(1.0)  # [B, 1]
    if average == "logits":
        return (z * w).sum(0) / count
    if average == "probs":
        return torch.log(((F.softmax(z, dim=2) * w).sum(0) / count).clamp_min(1e-12))
    raise ValueError(f"average={average!r}: expected one of {AVERAGES}")


@register_method
class UME(Unimodal):
    """UME: separately trained unimodal models (encoder + own head each), prediction = mean logits.

    Idea: the unimodal models never interact during training, so no modality can be suppressed by
    another (no modality competition / imbalance); their logits are averaged at test time.

    Implementation: the method trains the M unimodal models itself (the loss of :class:`Unimodal`:
    sum over modalities of each model's CE on the samples where its modality is present). The
    models share no parameter, so one summed loss trains each exactly as it would be trained alone
    (plain per-parameter SGD); with the same seed this reproduces the ``unimodal`` baseline's
    weights, and the reported step time is the honest cost of training all M models. Only
    :meth:`predict` differs from ``unimodal``.

    Hyper-parameters (harness defaults; the paper trains each unimodal model with the data set's
    usual recipe, nothing UME-specific):
        average: ``"logits"`` (paper: average of the logits) or ``"probs"`` (average of the softmax
            outputs, returned as log-probabilities).
        from_pretrained: ``False``. ``True`` loads ``ctx.pretrained("unimodal")`` (trained once by the
            harness under the complete pattern and cached) in ``on_fit_start``, copies its encoders
            and heads into this method's modules (so checkpointing and evaluation work unchanged)
            and makes training a no-op: :meth:`training_step` returns a zero loss without any
            optimizer step. Then the reported step time is ~0 and the real training cost is the
            ``unimodal`` run's. Under a missing-modality training pattern this variant's models were
            trained on complete data, while the default trains on the pattern's masked data.

    Departures: none in the method; neither BalanceMM nor the official code of Du et al. ships UME
    as a trainer (§2), so there is no code default to differ from. Fused prediction for a missing
    modality: only present modalities are averaged (the model of a missing modality is excluded).
    """

    name = "ume"
    teachers = ("unimodal",)
    hparams = {"average": "logits", "from_pretrained": False}

    def build(self) -> None:
        super().build()
        if self.hp["average"] not in AVERAGES:
            raise ValueError(f"ume: average={self.hp['average']!r}, expected one of {AVERAGES}")

    def on_fit_start(self, ctx) -> None:
        if not self.hp["from_pretrained"]:
            return
        teacher = ctx.pretrained("unimodal")
        with torch.no_grad():
            self.model.encoders.load_state_dict(teacher.model.encoders.state_dict())
            self.extra["heads"].load_state_dict(teacher.extra["heads"].state_dict())

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        if self.hp["from_pretrained"]:
            # Nothing to train: the copied unimodal models are final. A zero loss keeps the engine's
            # loss bookkeeping finite; no backward, no optimizer step (so weight decay does not move
            # the copied weights either).
            return torch.zeros((), device=batch.labels.device)
        return super().training_step(batch, ctx)

    def on_epoch_end(self, ctx) -> None:
        # ``unimodal`` ranks modalities on validation for its fused prediction; UME's average needs
        # no ranking, so skip that extra evaluation pass.
        pass

    def predict(self, batch: Batch) -> torch.Tensor:
        """Mean of the present modalities' unimodal logits ``[B, C]``."""
        return ensemble_average(self._logits(batch), batch.mask, self.hp["average"])
