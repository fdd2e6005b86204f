"""Unimodal training: one model per modality (its encoder and its own linear head).

The M models share no parameter, so summing their losses in one loop trains each exactly as it
would be trained alone (plain SGD per parameter); only the data order is shared. The result's
unimodal accuracies are those of the M models; its fused prediction is the model of the modality
with the best validation accuracy among the modalities a sample has (so every subset has a
well-defined prediction). UME (the ensemble of these models) is a separate baseline.
"""
from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import unimodal_heads


@register_method
class Unimodal(Method):
    """One encoder + linear head per modality, each trained on its own modality only."""

    name = "unimodal"

    def build(self) -> None:
        self.extra["heads"] = unimodal_heads(self.info.num_modalities, self.model.feature_dim, self.info.num_classes)
        # Validation accuracy per modality, refreshed after every epoch; decides the fused prediction.
        self.val_acc = torch.zeros(self.info.num_modalities)

    def param_groups(self):
        # The fusion head is never used: leave it out of the optimizer.
        params = [p for p in self.model.encoders.parameters()] + list(self.extra.parameters())
        return [{"params": params}]

    def _logits(self, batch: Batch) -> List[torch.Tensor]:
        feats = self.model.encode(batch)
        return [head(f) for head, f in zip(self.extra["heads"], feats)]

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        logits = self._logits(batch)
        # A modality missing for a sample contributes no loss for that sample.
        losses = [
            (F.cross_entropy(z, batch.labels, reduction="none") * batch.mask[:, m]).sum() / batch.mask[:, m].sum().clamp_min(1)
            for m, z in enumerate(logits)
        ]
        return torch.stack(losses).sum()

    def on_epoch_end(self, ctx) -> None:
        from mmbench.engine.evaluate import evaluate_logits, unimodal_split

        uni = unimodal_split(self, ctx.val, ctx.eval_batch_size)
        self.val_acc = torch.tensor([evaluate_logits(z, ctx.val.labels, self.info.num_classes)["acc"] for z in uni])
        self.modules().train()

    def extra_state(self) -> Dict[str, Any]:
        return {"val_acc": self.val_acc.clone()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.val_acc = state["val_acc"].clone()

    def unimodal_logits(self, batch: Batch) -> List[torch.Tensor]:
        return self._logits(batch.with_mask(torch.ones_like(batch.mask)))

    def predict(self, batch: Batch) -> torch.Tensor:
        logits = torch.stack(self._logits(batch))  # [M, B, C]
        # Rank modalities by validation accuracy; per sample pick the best one it has.
        score = self.val_acc.to(batch.mask.device).unsqueeze(0) + 10.0 * batch.mask  # present ones first
        best = score.argmax(dim=1)  # [B]
        return logits[best, torch.arange(len(batch), device=best.device)]
