"""OPM: On-the-fly Prediction Modulation (Wei, Hu et al., "On-the-fly Modulation for Balanced Multimodal
Learning", TPAMI 2024, the journal version of OGM-GE).

Released code read: BalanceBenchmark's ``balancemm/trainer/OPM_trainer.py`` (``Modality_drop`` and
``OPMTrainer.training_step``) and its ``configs/trainer_config.yaml`` defaults. The authors' own
repository for the TPAMI version was not checked; the formulas follow BalanceBenchmark's code.
"""
from __future__ import annotations

from typing import Any, Dict, List, Tuple

import torch
import torch.nn.functional as F

from baselines._balance_utils import device_generator, masked_ce, masked_mean, window_active, window_start_epoch
from baselines.ogm_ge import unimodal_logits_ogm
from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import ConcatFusion, SumFusion
from mmbench.settings_schema import FRACTION, NON_NEGATIVE, Setting


RULES = ("sum", "mean")


def opm_drop_probabilities(z: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, q_base: float,
                           alpha: float, rule: str = "sum", eps: float = 1e-5) -> torch.Tensor:
    """Feature-drop probabilities ``q`` ``[M]`` from unimodal logits ``z`` ``[M, B, C]``.

    ``s_m`` = sum over the batch of ``softmax(z_m)[y]`` (a mean over the samples that have m, times B:
    the released sums on complete batches), ``r_m = tanh(relu(s_m / (sum_{j != m} s_j + 1e-5) - 1))``
    (for M = 2 the released pair ratio; for M = 3 the released ratio to the sum of the others;
    ``rule="mean"``: to the mean of the others, the same for M = 2),
    ``q_m = clip(q_base (1 + alpha r_m), 0, 1)`` where ``r_m > 0``, else 0: only a modality that
    out-scores the others is dropped. ``eps`` is BalanceBenchmark's guard in the ratio (the authors'
    release has none: ``eps=0``).
    """
    p_true = F.softmax(z, dim=2).gather(2, labels.view(1, -1, 1).expand(z.shape[0], -1, 1)).squeeze(2)  # [M, B]
    scores = masked_mean(p_true, mask) * z.shape[1]  # [M]
    others = scores.sum() - scores
    if rule == "mean":
        others = others / (z.shape[0] - 1)
    ratio = torch.tanh(F.relu(scores / (others + eps) - 1))
    return torch.where(ratio > 0, q_base * (1 + alpha * ratio), torch.zeros_like(ratio)).clamp(0.0, 1.0)


@register_method
class OPM(Method):
    """OPM: randomly drop the dominant modality's features (probability growing with its lead), rescale, fused CE.

    Idea: the modality whose unimodal predictions fit the batch better starves the others. OPM
    weakens it in the forward pass instead of scaling its gradient (OGM): per step, with probability
    ``p_exe``, every sample's feature of modality m is dropped with probability ``q_m``
    (:func:`opm_drop_probabilities`: 0 for non-dominant modalities), the kept features are divided by
    ``1 - theta + 1e-5`` with ``theta = sum_m D_m q_m / sum_m D_m`` (inverted dropout at the mean
    rate), samples that lost every modality are left out, and the loss is the fused CE on the rest:

        loss = mean_{i kept} CE(head(x'_i), y_i),   x'_{i,m} = x_{i,m} * keep_{i,m} / (1 - theta + 1e-5).

    The unimodal logits ``z_m`` ``[B, C]`` are OGM-GE's (``W_m x_m + b / M``, :func:`unimodal_logits_ogm`).
    The drop probabilities are computed without gradient (``coef_grad=False``, the paper's
    coefficients); the dropped features themselves carry the gradient to every encoder and the head.
    Evaluation uses the full model, no drop. Outside the window ``[start, end)``: the plain fused CE.

    Random draws: one uniform (execute or not) and a ``[B, M]`` Bernoulli keep mask per step, from
    ``ctx.generator`` (on an accelerator a device generator seeded from it, as OGM-GE's noise).

    Hyper-parameters (BalanceBenchmark config -> harness default):

    * ``q_base`` 0.4, ``alpha`` 0.5, ``p_exe`` 0.7 -> the same.
    * ``start``, ``end``: BalanceBenchmark epochs 0-80 (always on in 30) -> (0, 1).
    * ``rule``: ``"sum"`` (released: for M = 3 a modality is dropped only when its score exceeds the
      other two's together: on mfeat-fou-zer-mor, seed 0, the epoch-mean q was 0 in every epoch but the
      second (0.05), so OPM was nearly joint training; with ``"mean"`` it stayed 0.2-0.4) or ``"mean"`` (the ratio to the others' mean; identical for M = 2).
    * ``coef_grad``: False (default) or True: BalanceBenchmark builds ``q`` and ``theta`` from the
      scores with the autograd graph kept, so the CE also differentiates through ``1 / (1 - theta)``
      into the scores; True reproduces that.
    * ``eps``: 1e-5 (BalanceBenchmark: in the score ratio and in ``1 / (1 - theta + eps)``) or 0 (the
      authors' release).
    * ``authors_theta_grad``: False (default) or True: the authors' journal release
      (GeWu-Lab/BML_TPAMI2024, ``models/Classifier.py``). Its ``custom_autograd`` divides the kept
      features by ``1 - theta`` as a constant and returns *theta itself* as theta's gradient; theta
      comes from scores of the non-detached features through the detached head (``w.clone().detach()``),
      so on every step that drops, each encoder also gets ``theta * d theta / d features``, a
      gradient that depends on no loss. True reproduces it (with ``coef_grad=False``: the CE does
      not differentiate through the scale); False (default) is the paper's rule, coefficients
      without gradient. The paper gives no such gradient; it is kept as an option because it is
      what the released numbers were trained with.

    Departures from the released code: the samples that lost every modality are masked out of the
    mean CE instead of indexed away (the same value, no host sync); the scores are masked means
    times B (equal to the released sums on complete batches; a modality absent from a whole batch
    gets the mean score). BalanceBenchmark's "bug fixed" window leaves the loss undefined outside
    it; here the plain fused CE. Optimiser: BalanceBenchmark SGD lr 1e-3; harness engine defaults.

    Side-by-side (tests/baselines/test_opm.py): one SGD step against a transcription of
    BalanceBenchmark's ``training_step`` + ``execute_drop`` with the same keep mask, M = 2, with and
    without the drop executed (``coef_grad=True``, the released graph): maximum absolute parameter
    difference 3.0e-8 (drop executed) and 0 (not executed) (float32; asserted < 1e-6).

    The authors' own journal release (GeWu-Lab/BML_TPAMI2024) differs from BalanceBenchmark's in four
    ways, each a setting: ``scripts/train_opm.sh`` uses ``q_base`` 0.5 (``--set q_base=0.5``); no
    feature is dropped in epochs 0-5 of 100 (``--set start=0.06``); no ``1e-5`` in the ratio or the
    scale (``--set eps=0``); and theta's gradient is theta (``--set authors_theta_grad=true``).
    Side-by-side (tests/baselines/test_opm.py): one SGD step with those four against a transcription
    of its ``Classifier.forward``, ``Modality_drop.execute_drop``, ``custom_autograd`` and ``calcu_q``
    (M = 2, same keep mask): maximum absolute parameter difference 3.0e-8 with the drop executed and 0
    without (asserted < 1e-6); without ``authors_theta_grad`` the same step is 1.0e-3 away from it. Left out: a step whose samples all lost both modalities is skipped there; here its loss
    is 0 (the theta gradient is still applied: at B = 128 the chance of such a batch is negligible).
    """

    name = "opm"
    version = 1
    hparams: Dict[str, Any] = {"q_base": 0.4, "alpha": 0.5, "p_exe": 0.7, "start": 0.0, "end": 1.0,
                               "coef_grad": False, "rule": "sum", "eps": 1e-5, "authors_theta_grad": False}
    hparam_schema = {"rule": Setting(str, choices=RULES), "q_base": FRACTION, "alpha": NON_NEGATIVE, "p_exe": FRACTION, "start": FRACTION,
                     "end": Setting(float, low=0.0), "eps": NON_NEGATIVE}
    train_overrides = {"fusion": "concat"}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("OPM balances two or more modalities; this data set has one")
        if not isinstance(self.model.head, (ConcatFusion, SumFusion)):
            raise ValueError(f"OPM needs fusion=concat or sum, got {type(self.model.head).__name__}")
        if self.hp["authors_theta_grad"] and self.hp["coef_grad"]:
            raise ValueError("OPM: authors_theta_grad (the authors' release) and coef_grad (BalanceBenchmark's graph) "
                             "are two different theta gradients; set one")
        self._gen: torch.Generator | None = None
        self._gen_src: torch.Generator | None = None

    def selection_start_epoch(self) -> int:
        return window_start_epoch(self.hp["start"], self.info.epochs)

    def draw(self, q: torch.Tensor, batch_size: int, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(execute [], keep [B, M])``: whether this step drops, and the Bernoulli(1 - q) keep mask."""
        if self._gen is None or self._gen_src is not ctx.generator:
            self._gen, self._gen_src = device_generator(ctx.generator, q.device), ctx.generator
        u = torch.rand(1 + batch_size * q.numel(), generator=self._gen, device=self._gen.device).to(q.device)
        execute = u[0] < self.hp["p_exe"]
        keep = (u[1:].view(batch_size, -1) < (1 - q.detach())).to(q.dtype)
        return execute, keep

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        feats = self.model.encode(batch)
        if not window_active(ctx.epoch, ctx.epochs, self.hp["start"], self.hp["end"]):
            return F.cross_entropy(self.model.head(feats), batch.labels)
        authors = self.hp["authors_theta_grad"] and torch.is_grad_enabled()
        with torch.set_grad_enabled((self.hp["coef_grad"] or authors) and torch.is_grad_enabled()):
            src = feats if self.hp["coef_grad"] or authors else [f.detach() for f in feats]
            z = (_scores_with_detached_head if authors else unimodal_logits_ogm)(self.model.head, src)  # [M, B, C]
            q = opm_drop_probabilities(z, batch.labels, batch.mask, self.hp["q_base"], self.hp["alpha"], self.hp["rule"],
                                       self.hp["eps"])
        self.log_coefficients({"q": q.detach()})
        execute, keep = self.draw(q, len(batch), ctx)
        dims = torch.tensor([f.shape[1] for f in feats], dtype=q.dtype, device=q.device)
        theta = (dims * q).sum() / dims.sum()
        divisor = 1 - (theta.detach() if authors else theta) + self.hp["eps"]
        scale = torch.where(execute, 1 / divisor, torch.ones_like(theta))
        keep = torch.where(execute, keep, torch.ones_like(keep))
        dropped: List[torch.Tensor] = [f * keep[:, m:m + 1] * scale for m, f in enumerate(feats)]
        kept_samples = (keep.sum(1) > 0).to(feats[0].dtype)
        loss = masked_ce(self.model.head(dropped), batch.labels, kept_samples)
        if authors:
            # zero in value, theta's gradient = theta (the release's custom backward), only on a drop step
            spurious = theta * theta.detach()
            loss = loss + (spurious - spurious.detach()) * execute.to(loss.dtype)
        return loss


def _scores_with_detached_head(head, feats: List[torch.Tensor]) -> torch.Tensor:
    """:func:`unimodal_logits_ogm` ``[M, B, C]`` with the head's weights detached (the authors' release
    scores with ``w.clone().detach()`` and ``b.clone().detach()``: no score gradient reaches the head)."""
    if isinstance(head, ConcatFusion):
        bias = head.bias.detach() / len(feats)
        return torch.stack([F.linear(f, head.block(m).detach(), bias) for m, f in enumerate(feats)])
    return torch.stack([F.linear(f, fc.weight.detach(), fc.bias.detach()) for fc, f in zip(head.fcs, feats)])
