"""AGM: Adaptive Gradient Modulation (Li et al., ICCV 2023).

Spec: ``docs/baselines-and-protocols.md`` section 3.3. The mono-modal responses of all modality
subsets are computed in ONE batched head call when missing modalities are zeroed features (the
harness default), the per-modality CE scores come from ``kernels.modality_stats``, and coefficients,
running means and conditional clipping stay on the device (no host sync per step; the official
code has a per-sample loop and ``.item()`` calls).
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List

import torch
import torch.nn.functional as F

from baselines._balance_utils import masked_mean, scale_grad, window_active, window_start_epoch
from kernels import modality_stats
from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method

DECOMPOSITIONS = ("auto", "shapley", "loo")
CE_CAP = -math.log(1e-8)  # scores use p clamped at >= 1e-8, i.e. CE <= 18.42


def decomposition_matrix(M: int, kind: str):
    """``(subsets [K, M] 0/1, coef [M, K])`` with ``o_m = sum_k coef[m, k] f(subset_k)``.

    ``shapley``: exact Shapley values ``phi_m = sum_S |S|!(M-|S|-1)!/M! [f(S+m) - f(S)]`` plus
    ``f(empty) / M`` each, so that ``sum_m o_m = f(all)`` exactly. For M = 2 this is AGM's
    ``o_a = 1/2 [f(a,v) - f(0,v) + f(a,0)]`` (the ``f(0,0)`` terms cancel).

    ``loo`` (leave-one-out, M + 1 subsets): ``o_m = Delta_m + (f(all) - sum_j Delta_j) / M`` with
    ``Delta_m = f(all) - f(all - m)``; also sums to ``f(all)`` and also equals AGM's form for M = 2.

    The full set is subset 0.
    """
    full = (1,) * M
    if kind == "shapley":
        subsets = [full] + [s for s in itertools.product((0, 1), repeat=M) if s != full]
    else:
        subsets = [full] + [tuple(0 if j == m else 1 for j in range(M)) for m in range(M)]
    index = {s: k for k, s in enumerate(subsets)}
    coef = torch.zeros(M, len(subsets), dtype=torch.float64)
    if kind == "shapley":
        empty = index[(0,) * M]
        for m in range(M):
            for s in subsets:
                if s[m]:
                    continue
                size = sum(s)
                w = math.factorial(size) * math.factorial(M - size - 1) / math.factorial(M)
                with_m = tuple(1 if j == m else v for j, v in enumerate(s))
                coef[m, index[with_m]] += w
                coef[m, index[s]] -= w
            coef[m, empty] += 1.0 / M
    else:
        delta = torch.zeros(M, len(subsets), dtype=torch.float64)
        for m in range(M):
            delta[m, 0] += 1.0
            delta[m, 1 + m] -= 1.0
        residual = -delta.sum(0)
        residual[0] += 1.0
        coef = delta + residual.unsqueeze(0) / M
    return torch.tensor(subsets, dtype=torch.float32), coef.float()


@register_method
class AGM(Method):
    """AGM: Shapley-style mono-modal responses; each response's gradient scaled by exp(alpha * gap).

    Idea: decompose the fused logits into per-modality responses ``o_m`` (by zero-padding the other
    modalities) that sum to the fused logits, measure each modality's current strength by the CE of
    its response, and modulate the gradient flowing into each response so that the modalities' CE
    gap returns to its running-average reference: a modality that got relatively stronger than usual
    is slowed (``k < 1``), one that fell behind is sped up (``k > 1``).

    Per step, ``f(S)`` = fused logits ``[B, C]`` with only the modalities in S present (the other
    ones missing, per the model's ``missing`` setting). ``f(all)`` in train mode; every other subset in
    eval mode (official: frozen BN statistics; the harness encoders have no BN, the switch is kept).

    * ``o_m`` from :func:`decomposition_matrix` (M = 2: ``o_a = 1/2 [f(a,v) - f(0,v) + f(a,0)]``), so
      ``sum_m o_m = f(all)``.
    * ``s_m`` = mean over the samples having m of ``-log max(softmax(o_m)[y], 1e-8)`` (``kernels``).
    * ratios ``r_m = exp(mean_{j != m} s_j - s_m)`` (M = 2: ``r_a = exp(s_v - s_a)``, the official
      form; the mean over the others is our M-modality generalisation), reference ``rbar_m`` from the
      running means ``sbar`` of the scores (before this step's update; ``sbar = 0`` at the start, so
      ``rbar = 1``), running means over all steps, carried across epochs.
    * ``k_m = exp(alpha * min(rbar_m - r_m, 10))``; the gradient into ``o_m`` is multiplied by ``k_m``
      (a tensor hook), loss ``CE(sum_m o_m, y)``. Outside the window ``k = 1``.
    * ``clip=True`` (official): if any fusion-head weight gradient leaves ``[-1, 1]``, clip the
      total gradient norm to 1 (computed and applied on the device).

    With the harness's default ``missing="feature"`` and concat fusion the head is linear, so
    ``o_m = W_m x_m + b / M`` (OGM's convention) and the subsets cost one batched head call: the
    encoders run once (``f(S)`` only zeroes features). With ``missing="input"`` every subset reruns
    the encoders on zero-filled inputs in eval mode (the official 4 forward passes for M = 2). The
    decomposition is generic: every fusion head works (concat is the default).

    Hyper-parameters (official -> harness default):

    * ``alpha``: author (issues) CREMA-D 1.5; AV-MNIST README 2.5; BalanceBenchmark 0.1 -> harness 1.5.
    * ``start``, ``end``: author: modulation on for all epochs -> (0.0, 1.0) of ``ctx.epochs``.
    * ``decomposition``: ``"auto"`` (exact Shapley for M <= 3, 2^M subsets; leave-one-out above),
      ``"shapley"``, ``"loo"``. All three coincide with AGM for M = 2.
    * ``clip``: True (official conditional clipping; False disables it).
    * ``backend``: ``kernels`` backend.

    Departures and the options that restore them:

    * BalanceBenchmark alpha 0.1 -> ``alpha=0.1``.
    * official SGD lr 1e-4 (AV-MNIST), StepLR(70); harness engine defaults.
    * official scores sum a per-sample Python loop then divide by B; here a masked mean (equal on
      complete batches; samples missing modality m do not score m).
    """

    name = "agm"
    hparams: Dict[str, Any] = {
        "alpha": 1.5,
        "start": 0.0,
        "end": 1.0,
        "decomposition": "auto",
        "clip": True,
        "backend": "auto",
    }

    def selection_start_epoch(self) -> int:
        """The first epoch of the modulation window (before it: plain joint training, not AGM)."""
        return window_start_epoch(self.hp["start"], self.info.epochs)

    def build(self) -> None:
        M = self.info.num_modalities
        if M < 2:
            raise ValueError("AGM modulates two or more modalities; this data set has one")
        kind = self.hp["decomposition"]
        if kind not in DECOMPOSITIONS:
            raise ValueError(f"decomposition={kind!r}: expected one of {DECOMPOSITIONS}")
        if kind == "auto":
            kind = "shapley" if M <= 3 else "loo"
        self.kind = kind
        self.subsets, self.coef = decomposition_matrix(M, kind)
        self.score_mean: torch.Tensor | None = None  # running mean of s_m over all steps, [M]
        self.steps = 0
        self.last_k: torch.Tensor | None = None
        self._k_sum: torch.Tensor | None = None
        self._k_count = 0
        self.k_history: List[List[float]] = []

    # ----------------------------------------------------------------- responses
    def subset_logits(self, batch: Batch) -> torch.Tensor:
        """``f(S)`` for every subset, ``[K, B, C]`` (subset 0, the full set, in train mode)."""
        model = self.model
        subsets = self.subsets.to(batch.mask.device, batch.mask.dtype)  # [K, M]
        K, B = subsets.shape[0], len(batch)
        if model.missing == "feature":
            feats = model.encode(batch)
            full = model.head(feats)
            was = model.head.training
            model.head.eval()
            # All other subsets in one head call: features x_m * S_m, stacked along the batch.
            stacked = [
                (subsets[1:, m].view(-1, 1, 1) * f.unsqueeze(0)).reshape((K - 1) * B, -1) for m, f in enumerate(feats)
            ]
            rest = model.head(stacked).view(K - 1, B, -1)
            model.head.train(was)
            return torch.cat([full.unsqueeze(0), rest])
        full = model(batch)
        was = model.training
        model.eval()
        rest = [model(batch.with_mask(batch.mask * subsets[k])) for k in range(1, K)]
        model.train(was)
        return torch.stack([full] + rest)

    def responses(self, batch: Batch) -> torch.Tensor:
        """Mono-modal responses ``o`` ``[M, B, C]`` with ``o.sum(0) == f(all)``."""
        f = self.subset_logits(batch)
        return torch.einsum("mk,kbc->mbc", self.coef.to(f.device, f.dtype), f)

    # ----------------------------------------------------------------- coefficients
    @staticmethod
    def ratios(score: torch.Tensor) -> torch.Tensor:
        """``r_m = exp(mean_{j != m} s_j - s_m)`` ``[M]`` (M = 2: ``exp(s_other - s_m)``)."""
        M = score.shape[0]
        others = (score.sum() - score) / (M - 1)
        return torch.exp(others - score)

    def coefficients(self, score: torch.Tensor) -> torch.Tensor:
        """``k`` ``[M]`` from this step's scores; updates the running means (device tensors)."""
        ref = torch.zeros_like(score) if self.score_mean is None else self.score_mean
        k = torch.exp(self.hp["alpha"] * torch.clamp(self.ratios(ref) - self.ratios(score), max=10.0))
        self.steps += 1
        self.score_mean = ref + (score - ref) / self.steps
        return k

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        o = self.responses(batch)  # [M, B, C]
        M = o.shape[0]
        active = window_active(ctx.epoch, ctx.epochs, self.hp["start"], self.hp["end"])
        scale = torch.ones(M, device=o.device, dtype=o.dtype)
        outs = [scale_grad(o[m], scale[m]) for m in range(M)] if active else list(o)
        with torch.no_grad():
            ce = modality_stats(o.detach(), batch.labels, backend=self.hp["backend"]).ce.clamp(max=CE_CAP)
            score = masked_mean(ce, batch.mask)
        k = self.coefficients(score)
        if active:
            scale.copy_(k)  # read by the hooks at backward time
            self.last_k = k
            self._k_sum = k.clone() if self._k_sum is None else self._k_sum + k
            self._k_count += 1
            self.log_coefficients({"k": k})
        return F.cross_entropy(torch.stack(outs).sum(0), batch.labels)

    def after_backward(self, batch: Batch, ctx) -> None:
        if not self.hp["clip"]:
            return
        # Official: if max/min of the fusion weight gradient leave [-1, 1], clip_grad_norm_(1.0).
        # Same rule without a host sync: a device factor that is 1 when the condition is false.
        head_grads = [p.grad for p in self.model.head.parameters() if p.grad is not None and p.dim() >= 2]
        grads = [p.grad for p in self.modules().parameters() if p.grad is not None]
        if not head_grads or not grads:
            return
        out = torch.stack([g.abs().max() for g in head_grads]).max() > 1.0
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        factor = torch.where(out, (1.0 / (norm + 1e-6)).clamp(max=1.0), torch.ones_like(norm))
        torch._foreach_mul_(grads, factor)

    def on_epoch_end(self, ctx) -> None:
        if self._k_count:
            self.k_history.append((self._k_sum / self._k_count).tolist())
        self._k_sum, self._k_count = None, 0
