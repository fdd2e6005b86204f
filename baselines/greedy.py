"""Greedy (Wu, Jastrzebski, Cho, Geras, ICML 2022): balanced multimodal learning by re-balancing steps.

Spec: ``docs/baselines-and-protocols.md`` section 3.7. The model gets MMTM-style squeeze-excitation
"bypass" modules through which modalities see each other; the *conditional learning speed* of each
modality (bypass vs own branch) decides when to run re-balancing steps during which one modality's
excitation is frozen to its running average (no cross-modal shortcut), forcing its own branch to
learn.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmbench.batching import Batch
from mmbench.methods.base import Method, register_method
from mmbench.settings_schema import FRACTION, NON_NEGATIVE, POSITIVE_INT


class MMTM(nn.Module):
    """MMTM-style squeeze-excitation across modalities on ``M x [B, D]`` features.

    Squeeze: ``z = ReLU(W_s [f_1; ...; f_M] + b_s)`` ``[B, Dz]`` (``Dz = max(8, M D / 4)``, MMTM's
    reduction ratio 4). Excite: ``g_m = 2 sigmoid(W_m z + b_m)`` ``[B, D]`` (MMTM's ``2 sigma``, so a
    zero pre-activation is the identity gate); output ``f_m * g_m``. The gate of modality m depends
    on every modality's feature: this is the cross-modal "bypass".
    """

    def __init__(self, num_modalities: int, feature_dim: int):
        super().__init__()
        hidden = max(8, num_modalities * feature_dim // 4)
        self.squeeze = nn.Linear(num_modalities * feature_dim, hidden)
        self.excite = nn.ModuleList(nn.Linear(hidden, feature_dim) for _ in range(num_modalities))

    def gates(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        z = F.relu(self.squeeze(torch.cat(list(feats), dim=1)))
        return [2.0 * torch.sigmoid(ex(z)) for ex in self.excite]


def learning_speed(params: Sequence[torch.Tensor]) -> torch.Tensor:
    """``sum_theta ||grad theta||^2 / ||theta||^2`` over the tensors (those without a grad are skipped); device scalar."""
    pairs = [(p, p.grad) for p in params if p.grad is not None]
    if not pairs:
        return torch.zeros(())
    g = torch._foreach_norm([gr for _, gr in pairs])
    w = torch._foreach_norm([p.detach() for p, _ in pairs])
    return (torch.stack(g).pow(2) / torch.stack(w).pow(2).clamp_min(1e-12)).sum()


def bdr(m_main: torch.Tensor, m_bypass: torch.Tensor) -> torch.Tensor:
    """``BDR_m = log10(M_bypass,m / M_main,m)`` ``[M]`` (tiny floors keep empty accumulators finite)."""
    return torch.log10(m_bypass.clamp_min(1e-20) / m_main.clamp_min(1e-20))


def schedule_update(remaining: torch.Tensor, caring: torch.Tensor, m_main: torch.Tensor, m_bypass: torch.Tensor,
                    eps: float, q: int, active: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Next ``(remaining re-balancing steps, caring modality)`` after one step; all on the device, no sync.

    During a re-balancing window ``remaining`` counts down. After a normal step, when active and
    ``max_m BDR_m - min_m BDR_m > eps`` (for M = 2: ``|d| = |BDR_0 - BDR_1| > eps``) the next ``q``
    steps re-balance the modality with the largest BDR (M = 2: 0 if d > 0 else 1, as official).
    """
    rebalancing = remaining > 0
    b = bdr(m_main, m_bypass)
    # ``active`` is a Python bool (epoch-level), so branching on it costs no sync.
    trigger = (b.max() - b.min() > eps) if active else torch.zeros((), dtype=torch.bool, device=b.device)
    new_remaining = torch.where(rebalancing, remaining - 1, torch.where(trigger, torch.full_like(remaining, q), torch.zeros_like(remaining)))
    new_caring = torch.where(rebalancing | ~trigger, caring, b.argmax())
    return new_remaining, new_caring


@register_method
class Greedy(Method):
    """Greedy: MMTM bypass + conditional-learning-speed-triggered re-balancing steps.

    Model: the harness encoders, one :class:`MMTM` module (``self.extra["mmtm"]``) on the encoder
    OUTPUT features, the concat head on the excited features. The official code inserts MMTM
    modules at several depths of its two ResNet branches; the harness encoders are 2-3 layer
    networks, so one module at the output is the faithful small-scale counterpart.

    Conditional learning speed (accumulated over the normal steps of the current epoch, device
    tensors): ``M_main,m += sum ||grad||^2/||theta||^2`` over encoder m's parameters and
    ``M_bypass,m`` likewise over MMTM's excitation layer of modality m (the shared squeeze layer
    belongs to no single modality and is excluded). ``BDR_m = log10(M_bypass,m / M_main,m)``,
    ``d = BDR_0 - BDR_1``. If ``|d| > eps`` after a normal step, the next ``Q`` steps are re-balancing
    steps for the caring modality (0 if d > 0 else 1; for M > 2 the argmax of BDR, triggered by
    ``max BDR - min BDR > eps``): its excitation is replaced by its running average (EMA of the
    batch-mean gate over normal steps), so its prediction path cannot use the other modalities'
    features through the bypass. Every parameter is updated in both step types. The decision is
    taken on the device with ``torch.where`` (no host sync per step). The accumulators are not
    reset after a trigger, so while ``|d|`` stays above eps the schedule is "Q re-balancing steps,
    one normal step, ..." (measured with eps = 0.01 on watch / mfeat-fou-zer / synthetic-3:
    ~75% of all steps are re-balancing steps, i.e. nearly every step after the start epoch).

    Traces (``history[e]["coefficients"]``): ``rebalanced:m``, the share of the epoch's steps that
    re-balanced modality m (its bypass frozen; ``1 - sum_m`` = share of normal steps); ``bdr:m``,
    ``BDR_m`` from the epoch's accumulators at its end (absent in an epoch without normal steps).

    Hyper-parameters (official ModelNet40 / BalanceMM / harness default):
        eps: 0.01 / 1e-3 / 0.01.
        q (re-balancing window): 5 / 5 / 5.
        start: re-balancing starts at epoch 2 (of ~100+) / - / harness 0.1 as a fraction of
            ``ctx.epochs`` (epoch 2 of 20); a value >= 1 is an epoch index.
        avg_momentum: momentum of the running-average excitation (not documented officially) /
            harness 0.9.
        random: the "random" variant (an undocumented option of the official code that the
            authors explain in Greedy issue #1: the step type is picked at random instead of by
            d; the exact draw is not in our notes). Here: after each normal step, a Q-step
            re-balancing window is started with probability 1/2 for a uniformly drawn modality,
            regardless of d (draws from ``ctx.generator``). Default ``False``.

    Departures: official lr 0.1, batch 8, ReduceLROnPlateau (harness: engine defaults). The gate
    uses MMTM's ``2 sigmoid``. Missing modalities enter the squeeze as zero features; their gates
    multiply a zero feature.
    """

    name = "greedy"
    hparams = {"eps": 0.01, "q": 5, "start": 0.1, "avg_momentum": 0.9, "random": False}
    hparam_schema = {"eps": NON_NEGATIVE, "q": POSITIVE_INT, "start": FRACTION, "avg_momentum": FRACTION}

    def build(self) -> None:
        M, D = self.info.num_modalities, self.model.feature_dim
        if M < 2:
            raise ValueError("greedy needs at least 2 modalities (the bypass connects modalities)")
        self.extra["mmtm"] = MMTM(M, D)
        self.state_device: Optional[torch.device] = None

    def _init_state(self, device: torch.device) -> None:
        M, D = self.info.num_modalities, self.model.feature_dim
        self.gate_avg = torch.ones(M, D, device=device)
        self.m_main = torch.zeros(M, device=device)
        self.m_bypass = torch.zeros(M, device=device)
        self.remaining = torch.zeros((), dtype=torch.long, device=device)
        self.caring = torch.zeros((), dtype=torch.long, device=device)
        self.rebalance_steps = torch.zeros((), dtype=torch.long, device=device)  # diagnostics
        self.state_device = device

    def on_fit_start(self, ctx) -> None:
        self._init_state(ctx.device)

    def on_epoch_start(self, ctx) -> None:
        if self.state_device is None:
            self._init_state(ctx.device)
        self.m_main.zero_()
        self.m_bypass.zero_()

    def on_epoch_end(self, ctx) -> None:
        # Between epochs (a host sync is fine): the epoch's BDR, only when it had normal steps (with
        # none, both accumulators are 0 and the BDR would be a meaningless 0).
        if bool((self.m_main > 0).all()):
            self.log_coefficients({"bdr": bdr(self.m_main, self.m_bypass)})

    def start_epoch(self, epochs: int) -> int:
        s = self.hp["start"]
        return round(s * epochs) if s < 1 else int(s)

    def selection_start_epoch(self) -> int:
        """The first epoch in which re-balancing steps may run (before it: plain joint training through MMTM)."""
        return self.start_epoch(self.info.epochs)

    # ----------------------------------------------------------------- forward
    def excited(self, feats: List[torch.Tensor], use_avg: Optional[torch.Tensor] = None) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """``(excited features, gates)``, each ``M x [B, D]``; ``use_avg`` ``[M]`` bool selects running-average gates."""
        gates = self.extra["mmtm"].gates(feats)
        if use_avg is not None:
            gates = [torch.where(use_avg[m], self.gate_avg[m].expand_as(g), g) for m, g in enumerate(gates)]
        return [f * g for f, g in zip(feats, gates)], gates

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        if self.state_device is None:
            self._init_state(batch.labels.device)
        M = self.info.num_modalities
        rebalancing = self.remaining > 0  # device bool
        use_avg = rebalancing & (torch.arange(M, device=rebalancing.device) == self.caring)
        self.log_coefficients({"rebalanced": use_avg.float()})  # [M] device; epoch mean = share of steps
        ctx.zero_grad()
        feats = self.model.encode(batch)
        out, gates = self.excited(feats, use_avg)
        loss = F.cross_entropy(self.model.head(out), batch.labels)
        ctx.backward(loss)
        with torch.no_grad():
            normal = (~rebalancing).float()
            main = torch.stack([learning_speed(list(self.model.encoders[m].parameters())).to(normal) for m in self.info.modalities])
            byp = torch.stack([learning_speed(list(ex.parameters())).to(normal) for ex in self.extra["mmtm"].excite])
            self.m_main += normal * main
            self.m_bypass += normal * byp
            # Running average of each modality's batch-mean gate over the samples that have it.
            w = batch.mask.t().unsqueeze(2)  # [M, B, 1]
            mean_gate = (torch.stack(gates) * w).sum(1) / w.sum(1).clamp_min(1.0)  # [M, D]
            seen = (w.sum(1) > 0).float() * normal  # [M, 1]: update only where present, on normal steps
            mom = self.hp["avg_momentum"]
            self.gate_avg.copy_(self.gate_avg + seen * (1 - mom) * (mean_gate - self.gate_avg))
        ctx.step()
        with torch.no_grad():
            active = ctx.epoch >= self.start_epoch(ctx.epochs)
            if self.hp["random"]:
                coin = torch.rand((), generator=ctx.generator) < 0.5
                pick = torch.randint(M, (), generator=ctx.generator)
                trig = coin.to(rebalancing.device) & active
                self.remaining = torch.where(rebalancing, self.remaining - 1, torch.where(trig, torch.full_like(self.remaining, self.hp["q"]), torch.zeros_like(self.remaining)))
                self.caring = torch.where(rebalancing | ~trig, self.caring, pick.to(self.caring.device))
            else:
                self.remaining, self.caring = schedule_update(
                    self.remaining, self.caring, self.m_main, self.m_bypass, self.hp["eps"], self.hp["q"], active)
            self.rebalance_steps += rebalancing.long()
        return loss.detach()

    # ----------------------------------------------------------------- evaluation
    def predict(self, batch: Batch) -> torch.Tensor:
        out, _ = self.excited(self.model.encode(batch))
        return self.model.head(out)

    def unimodal_logits(self, batch: Batch) -> List[torch.Tensor]:
        out, _ = self.excited(self.model.encode(batch))
        return self.model.unimodal_logits(out)
