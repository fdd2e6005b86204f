"""MSLR / MSES: Modality-Specific Learning Rates and Modality-Specific Early Stopping.

Side baselines of the AGM repository (Li et al., ICCV 2023), ``docs/baselines-and-protocols.md``
section 3.3 (MSLR / MSES). Each encoder has its own learning-rate multiplier, rescaled every epoch by how
its modality's validation accuracy compares to its recent history.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from mmbench.methods.base import Method, register_method
from mmbench.settings_schema import NON_NEGATIVE, POSITIVE_INT, Setting


def mslr_ratio(acc_now: float, acc_history: Sequence[float], window: int) -> float:
    """``acc_now / mean(last `window` accuracies before this epoch)``; 1 without history or with a zero mean.

    A ratio > 1 (the modality is improving relative to its recent level) raises its learning
    rate; a ratio < 1 lowers it.
    """
    recent = list(acc_history)[-window:]
    if not recent:
        return 1.0
    ref = sum(recent) / len(recent)
    return acc_now / ref if ref > 0 else 1.0


def mslr_update(mult: float, init: float, acc_now: float, acc_history: Sequence[float], window: int,
                cumulative: bool = False) -> float:
    """Next multiplier: ``init * ratio`` (default) or ``mult * ratio`` (``cumulative``)."""
    return (mult if cumulative else init) * mslr_ratio(acc_now, acc_history, window)


@register_method
class MSLR(Method):
    """MSLR: per-encoder learning-rate multipliers rescaled each epoch by val-accuracy ratios (+ MSES).

    Idea: modalities learn at different speeds; give each encoder its own learning rate and move it
    with the modality's progress: after every epoch, ``mult_m = init_m * acc_m(t) / mean(acc_m(t-w..t-1))``
    where ``acc_m`` is the unimodal probe accuracy of modality m on the **validation** split (the
    method's :meth:`unimodal_logits`: the shared concat head with the other features zeroed,
    computed on ``ctx.val``). MSES (``early_stop=True``): a modality whose unimodal validation loss
    has not improved for ``patience`` epochs gets multiplier 0 for the rest of training (its
    encoder is frozen; the head keeps training).

    Optimizer: :meth:`param_groups` returns one group per encoder (modality order) and a last group
    for the fusion head (multiplier 1). The engine's scheduler (cosine by default) keeps updating
    every group; so that the schedule and the multipliers compose exactly, ``on_epoch_start`` sets
    ``group["lr"] = base_lr * (head_lr / head_base_lr) * mult_m``: the head group (never scaled) carries
    the scheduler's current factor, which works for the cosine (recursive form), step and constant
    schedules alike, and overwrites whatever the scheduler derived from the previous epoch's
    scaled value (needed because a multiplier can be 0).

    Hyper-parameters:
        init_mult: initial multipliers, one per modality, or ``None`` = 1.0 each. Official
            (2 modalities, audio/visual): ``[0.9, 1.1]``. Harness default ``None``: the modality
            order of the harness data sets carries no audio/visual meaning, so a fixed asymmetric
            start would be arbitrary; pass ``[0.9, 1.1]`` to restore the official start.
        cumulative: ``False``: ``mult_m = init_m * ratio_m`` (the ratio rescales the initial
            multiplier each epoch); ``True``: ``mult_m <- mult_m * ratio_m`` (compounding). Our notes
            say only "rescaled each epoch by (current val acc / mean of recent val accs)"; the
            compounding reading grows the lr by 1.5-3.4x over 20 epochs while accuracies rise
            (measured on watch / mfeat-fou-zer), so the harness default is the bounded one.
        window: how many previous epochs the reference mean uses. Official: "mean of recent val
            accs" (the exact window is not documented in our notes); harness default 3 (of ~20
            epochs).
        early_stop: MSES, ``False`` (= MSLR).
        patience: MSES patience in epochs; official 80 epochs (of a few hundred). Harness: a
            fraction of ``ctx.epochs`` when < 1 (default 0.25, i.e. 5 of 20 epochs), else epochs.

    Traces (``history[e]["coefficients"]``): ``lr_mult:m``, the multiplier set at the epoch's end;
    with MSES also ``stopped:m`` (1 once m's encoder is frozen).

    Departures: the official code applies multipliers to gradients of its two encoders; here they
    are learning-rate multipliers of per-encoder parameter groups (identical for plain SGD; with
    momentum and weight decay the weight-decay term is scaled too). Accuracies come from the
    validation split (the AGM repo evaluates on its test split, which is also its validation).
    """

    name = "mslr"
    hparams = {"init_mult": None, "window": 3, "cumulative": False, "early_stop": False, "patience": 0.25}
    hparam_schema = {"init_mult": Setting(list, nullable=True), "window": POSITIVE_INT, "patience": NON_NEGATIVE}

    def build(self) -> None:
        M = self.info.num_modalities
        init = self.hp["init_mult"]
        if init is None:
            init = [1.0] * M
        if len(init) != M:
            raise ValueError(f"mslr: init_mult has {len(init)} entries for {M} modalities")
        self.init_mult: List[float] = [float(v) for v in init]
        self.mult: List[float] = list(self.init_mult)
        self.acc_history: List[List[float]] = [[] for _ in range(M)]
        self.best_loss: List[float] = [float("inf")] * M
        self.since_best: List[int] = [0] * M
        self.stopped: List[bool] = [False] * M
        self.mult_history: List[List[float]] = []
        self._base_lr: Optional[List[float]] = None

    def param_groups(self) -> List[Dict[str, Any]]:
        groups = [{"params": list(self.model.encoders[m].parameters()), "name": f"encoder:{m}"} for m in self.info.modalities]
        rest = list(self.model.head.parameters()) + [p for p in self.extra.parameters()]
        groups.append({"params": rest, "name": "head"})
        return groups

    # ----------------------------------------------------------------- learning rates
    def apply_multipliers(self, optimizer: torch.optim.Optimizer) -> None:
        """Set every encoder group's lr to (scheduled lr) x (its multiplier)."""
        if self._base_lr is None:  # first call: the groups hold the unscheduled base lrs
            self._base_lr = [g["lr"] for g in optimizer.param_groups]
        head = optimizer.param_groups[-1]
        factor = head["lr"] / self._base_lr[-1] if self._base_lr[-1] else 1.0
        for m, group in enumerate(optimizer.param_groups[:-1]):
            group["lr"] = self._base_lr[m] * factor * self.mult[m]

    def on_fit_start(self, ctx) -> None:
        self._base_lr = None
        self.apply_multipliers(ctx.optimizer)

    def on_epoch_start(self, ctx) -> None:
        self.apply_multipliers(ctx.optimizer)

    def patience_epochs(self, epochs: int) -> int:
        p = self.hp["patience"]
        return max(1, round(p * epochs)) if p < 1 else int(p)

    def update_multipliers(self, accs: Sequence[float], losses: Sequence[float], epochs: int) -> None:
        """One epoch's update from the validation unimodal accuracies and losses (between epochs)."""
        for m, acc in enumerate(accs):
            self.mult[m] = mslr_update(self.mult[m], self.init_mult[m], acc, self.acc_history[m], self.hp["window"],
                                       self.hp["cumulative"])
            self.acc_history[m].append(acc)
            if self.hp["early_stop"]:
                if losses[m] < self.best_loss[m]:
                    self.best_loss[m], self.since_best[m] = losses[m], 0
                else:
                    self.since_best[m] += 1
                if self.since_best[m] >= self.patience_epochs(epochs):
                    self.stopped[m] = True
            if self.stopped[m]:
                self.mult[m] = 0.0
        self.mult_history.append(list(self.mult))
        self.log_coefficients({"lr_mult": torch.tensor(self.mult)})
        if self.hp["early_stop"]:  # MSES: 1 from the epoch whose end froze m's encoder
            self.log_coefficients({"stopped": torch.tensor(self.stopped, dtype=torch.float32)})

    def on_epoch_end(self, ctx) -> None:
        from mmbench.engine.evaluate import evaluate_logits, unimodal_split

        # Between epochs: host syncs are fine here.
        uni = unimodal_split(self, ctx.val, ctx.eval_batch_size)
        labels = ctx.val.labels
        accs = [evaluate_logits(z, labels, self.info.num_classes)["acc"] for z in uni]
        losses = [F.cross_entropy(z, labels).item() for z in uni]
        self.modules().train()
        self.update_multipliers(accs, losses, ctx.epochs)
