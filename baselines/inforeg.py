"""InfoReg: Information Acquisition Regulation (Huang, Wei, Yang, Hu, "Adaptive Unimodal Regulation for
Balanced Multimodal Information Acquisition", CVPR 2025, arXiv 2503.18595).

Released code read: GeWu-Lab/InfoReg_CVPR2025 ``main.py`` (``train_epoch``: the loss, the scores, the
``beta``/``beta2`` rule, the proximal gradient and the Fisher-trace bookkeeping; ``main``: the trace
lists and the optimiser). BalanceBenchmark has no InfoReg trainer. The paper's method section was not
readable from this environment (only its abstract and the repository README); where the code is
specific to CREMA-D's audio/visual pair, the generalisation is the harness's and is said so below.
"""
from __future__ import annotations

from typing import Any, Dict, List, Sequence

import torch
import torch.nn.functional as F

from baselines._balance_utils import masked_ce, masked_mean
from baselines.ogm_ge import unimodal_logits_ogm
from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.models.fusion import ConcatFusion, SumFusion
from mmbench.settings_schema import NON_NEGATIVE, POSITIVE_INT, Setting

TRACES = ("model", "first")


def window_signal(traces: Sequence[float], history: int) -> float:
    """The prime-learning-window signal ``k`` at the start of an epoch from the past epochs' Fisher traces.

    Released (``train_epoch``, with the trace list starting as ``history`` zeros): ``k = 1`` before the
    first trace, else ``k = (tr1 - tr2) / tr1`` with ``tr1`` the mean of the last ``history`` traces and
    ``tr2`` the mean of the ``history`` before the last one (the window shifted back by one epoch):
    the relative growth of the information the network acquired. ``tr1 = 0`` (nothing acquired yet;
    a ZeroDivisionError in the released code) gives ``k = 0``: outside the window.
    """
    if not traces:
        return 1.0
    padded = [0.0] * history + list(traces)
    tr1 = sum(padded[-history:]) / history
    tr2 = sum(padded[-history - 1:-1]) / history
    return (tr1 - tr2) / tr1 if tr1 != 0 else 0.0


def regulation_strengths(scores: torch.Tensor, gamma: float) -> torch.Tensor:
    """Proximal strengths ``beta`` ``[M]`` from the modality scores ``s`` ``[M]``.

    Only the leader ``l = argmax s`` is regulated, by ``beta_l = gamma * exp(tanh(s_l - max_{j != l} s_j))``
    when it leads strictly; every other modality gets 0 (for M = 2 the released pair rule: audio
    ``0.95 exp(tanh(s_a - s_v))`` if ``s_a > s_v``, visual ``0.1 exp(tanh(s_v - s_a))`` if ``s_v > s_a``,
    none on a tie). No host sync.
    """
    top2 = scores.topk(2).values
    gap = top2[0] - top2[1]
    leader = F.one_hot(scores.argmax(), scores.numel()).to(scores.dtype)
    return leader * torch.where(gap > 0, gamma * torch.exp(torch.tanh(gap)), torch.zeros_like(gap))


@register_method
class InfoReg(Method):
    """InfoReg: in the prime learning window, a proximal pull on the leading modality's encoder toward its epoch-start weights.

    Idea: early training (the "prime learning window", while the network's Fisher information grows
    fast) is dominated by the information-sufficient modality, which then suppresses the others.
    InfoReg slows that modality down during the window by adding the gradient of a proximal term
    ``beta_l / 2 * ||theta_l - theta_l^0||^2`` to its encoder, ``theta_l^0`` the encoder's weights at
    the start of the epoch (the released ``global_model = deepcopy(model)`` in ``train_epoch``).

    Per step, features ``x_m`` ``[B, D]``, unimodal logits through the shared head
    ``z_m = W_m x_m + b / M`` (:func:`baselines.ogm_ge.unimodal_logits_ogm`, the released
    ``torch.mm(a, W[:, :512].T) + b / 2``):

        loss = CE(head(x), y) + sum_m CE(z_m, y)          (every encoder and the head get all three)
        s_m  = sum_i softmax(z_m,i)[y_i]                   (detached; masked mean x B under missingness)
        beta = regulation_strengths(s, gamma)              ([M], only the leader non-zero)
        grad(theta_m) += beta_m (theta_m - theta_m^0)      for every tensor of encoder m, if k > threshold

    The window signal ``k`` (:func:`window_signal`) is computed at the start of each epoch from the
    per-epoch Fisher traces: ``trace = sum over the tracked weight tensors of mean_elements(sum_steps
    grad^2)``, accumulated from the gradients after the proximal term is added (as released). The
    fusion head is never regulated. Traced coefficients: ``beta`` per modality (step means) and ``k``.

    Hyper-parameters (released -> harness default):

    * ``gamma``: 0.95 when audio leads, 0.1 when visual leads (CREMA-D constants tied to the modality)
      -> 0.95 for whichever modality leads (the harness does not know which modality is
      "information-sufficient"; 0.95 is the constant of the one that leads in the paper's data).
    * ``threshold``: ``k > 0.05`` -> 0.05.
    * ``history``: the trace windows of 10 epochs (the slices ``[-10:]``, ``[-11:-1]``) -> 10.
    * ``trace``: which weights the Fisher trace reads. Released ``k`` reads the audio encoder's
      Conv2d/Linear weights (``fim_audio``; the first modality on CREMA-D) -> ``"first"``; harness
      default ``"model"``: every weight tensor (dim >= 2) of the whole model, the released
      ``fim_trace`` (computed but used only for logging there), which is the multimodal network's
      information whose rapid growth the README uses to describe the prime learning window, and
      does not depend on the order of the modalities.
    * ``unimodal_weight``: 1 (the released plain sum of the three losses) -> 1.

    Departures from the released code:

    * M >= 2: the leader (argmax of the scores) is regulated with its gap to the runner-up; for M = 2
      exactly the released rule (ties: no regulation).
    * the three extra backward passes of the released step (one per loss, gradients recorded for
      logging and then zeroed) are not run: they do not change the update.
    * the scores are masked means times B under a missing-modality pattern (the released sums on
      complete batches); the unimodal CEs average over the samples that have the modality.
    * Fisher weights: tensors with dim >= 2 (conv kernels of any dimension and linear weights; the
      released ``isinstance(Conv2d, Linear)``).
    * optimiser: released SGD lr 2e-3 (momentum 0.9, wd 1e-4), StepLR(30, 0.1), 50 epochs, batch 64;
      harness engine defaults.

    Side-by-side (tests/baselines/test_inforeg.py): one SGD step against a transcription of the
    released ``train_epoch`` step (three CEs, scores by a Python loop, the ``beta``/``beta2`` branch,
    ``model_param.grad += beta * (model_param - global_model_param)`` with a perturbed epoch-start
    copy), audio leading and visual leading: maximum absolute parameter difference 3.0e-8 and 1.5e-8 (float32;
    asserted < 1e-6); the Fisher trace of one step and ``k`` against the released arithmetic: equal.
    """

    name = "inforeg"
    version = 1
    hparams: Dict[str, Any] = {"gamma": 0.95, "threshold": 0.05, "history": 10, "trace": "model",
                               "unimodal_weight": 1.0}
    hparam_schema = {"gamma": NON_NEGATIVE, "threshold": Setting(float), "history": POSITIVE_INT,
                     "trace": Setting(str, choices=TRACES), "unimodal_weight": NON_NEGATIVE}
    train_overrides = {"fusion": "concat"}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("InfoReg balances two or more modalities; this data set has one")
        if not isinstance(self.model.head, (ConcatFusion, SumFusion)):
            raise ValueError(f"InfoReg needs fusion=concat or sum, got {type(self.model.head).__name__}")
        if self.hp["trace"] not in TRACES:
            raise ValueError(f"trace={self.hp['trace']!r}: expected one of {TRACES}")
        self.encoder_params: List[List[torch.nn.Parameter]] = [
            [p for p in self.model.encoders[m].parameters() if p.requires_grad] for m in self.info.modalities]
        source = self.model if self.hp["trace"] == "model" else self.model.encoders[self.info.modalities[0]]
        self.fisher_params = [p for p in source.parameters() if p.requires_grad and p.dim() >= 2]
        self.traces: List[float] = []
        self.k = 1.0
        self.anchors: List[List[torch.Tensor]] = []
        self._fisher: List[torch.Tensor] = []
        self._beta: torch.Tensor | None = None

    def on_fit_start(self, ctx) -> None:
        self.traces = []

    def on_epoch_start(self, ctx) -> None:
        self.k = window_signal(self.traces, self.hp["history"])
        self.anchors = [[p.detach().clone() for p in params] for params in self.encoder_params]
        self._fisher = [torch.zeros_like(p) for p in self.fisher_params]

    def on_epoch_end(self, ctx) -> None:
        if self._fisher:
            self.traces.append(float(sum(f.mean() for f in self._fisher)))

    def in_window(self) -> bool:
        return self.k > self.hp["threshold"]

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        feats = self.model.encode(batch)
        loss = F.cross_entropy(self.model.head(feats), batch.labels)
        z = unimodal_logits_ogm(self.model.head, feats)  # [M, B, C]
        w = self.hp["unimodal_weight"]
        for m in range(z.shape[0]):
            loss = loss + w * masked_ce(z[m], batch.labels, batch.mask[:, m])
        with torch.no_grad():
            p_true = F.softmax(z.detach(), dim=2).gather(2, batch.labels.view(1, -1, 1).expand(z.shape[0], -1, 1)).squeeze(2)
            scores = masked_mean(p_true, batch.mask) * z.shape[1]  # [M]
            self._beta = regulation_strengths(scores, self.hp["gamma"]) if self.in_window() else torch.zeros_like(scores)
        self.log_coefficients({"beta": self._beta, "k": self.k})
        return loss

    @torch.no_grad()
    def after_backward(self, batch: Batch, ctx) -> None:
        if self.in_window() and self._beta is not None and self.anchors:
            for m, (params, anchors) in enumerate(zip(self.encoder_params, self.anchors)):
                for p in params:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                # grad += beta_m (theta - theta^0), batched over the encoder's tensors (one kernel per op)
                pulls = torch._foreach_mul(torch._foreach_sub([p.detach() for p in params], anchors), self._beta[m])
                torch._foreach_add_([p.grad for p in params], pulls)
        pairs = [(acc, p.grad) for acc, p in zip(self._fisher, self.fisher_params) if p.grad is not None]
        if pairs:
            accs, grads = zip(*pairs)
            torch._foreach_addcmul_(list(accs), list(grads), list(grads))
