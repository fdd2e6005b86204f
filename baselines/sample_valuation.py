"""Sample-level modality valuation and re-sampling (Wei, Feng, Wang, Hu, "Enhancing Multi-modal
Cooperation via Sample-level Modality Valuation", CVPR 2024).

Released code read: GeWu-Lab/Valuate-and-Enhance-Multimodal-Cooperation ``code/sample_level.py``
(``execute_modulation``, ``train_epoch``, ``warmup_epoch``, ``main``), ``code/datasets/dataloader.py``
(``AV_KS_Dataset_sample_level``) and ``code/models/models.py`` (``AVClassifier.forward`` with
``drop``, ``exec_drop``); BalanceBenchmark's ``balancemm/trainer/Sample_trainer.py``,
``balancemm/evaluation/modalitys.py`` (``Calculate_Shapley_Sample``) and
``balancemm/datasets/__init__.py`` (``create_dataset_sample_level``). The paper's text was not read.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from baselines._balance_utils import window_start_epoch
from mmbench.batching import Batch
from mmbench.engine import distributed
from mmbench.methods.base import Method, register_method
from mmbench.settings_schema import Setting

VALUES = ("released", "balancebenchmark")
LEVELS = ("sample", "modality")
# (low, high, copies): a Shapley value strictly inside (low, high) earns that many extra copies.
BINS = {"released": ((0.4, 0.9, 1), (-0.1, 0.4, 2), (-math.inf, -0.1, 3)),
        "balancebenchmark": ((0.4, 1.0, 1), (-0.1, 0.4, 2), (-math.inf, -0.1, 3))}


def subset_bits(num_modalities: int) -> torch.Tensor:
    """``[2^M, M]`` 0/1: row s keeps modality m where bit m of s is set (row 0 = the empty set)."""
    s = torch.arange(2 ** num_modalities)
    return ((s[:, None] >> torch.arange(num_modalities)) & 1).float()


def sample_shapley(correct: torch.Tensor, present: torch.Tensor, value: str = "released") -> torch.Tensor:
    """Per-sample Shapley values ``[B, M]`` of the modalities.

    ``correct`` ``[2^M, B]`` bool: the prediction from subset s (:func:`subset_bits`, absent modalities
    always zeroed) is right. Value of a subset S for sample i, ``P_i`` its present modalities:
    ``v(S) = |S ∩ P_i| * correct_S`` (``value="released"``: a right fused prediction of two
    modalities is worth 2, a right unimodal one 1) or ``correct_S`` (``"balancebenchmark"``), and
    ``v = 0`` when ``S ∩ P_i`` is empty. ``phi_m = sum_{S not containing m} |S|! (M - |S| - 1)! / M!
    (v(S + m) - v(S))``; for M = 2 (released): ``phi_a = (v_a + v_av - v_v) / 2``. An absent modality
    is a null player (phi = 0).
    """
    if value not in VALUES:
        raise ValueError(f"value={value!r}: expected one of {VALUES}")
    M = present.shape[1]
    bits = subset_bits(M).to(present.device)  # [S, M]
    kept = bits[:, None, :] * (present[None] > 0)  # [S, B, M]: S ∩ P_i
    size = kept.sum(2)  # [S, B]
    worth = size if value == "released" else (size > 0).to(size.dtype)
    v = worth * correct.to(size.dtype) * (size > 0)  # [S, B]
    phi = torch.zeros(present.shape, dtype=v.dtype, device=v.device)
    for m in range(M):
        without = (bits[:, m] == 0).nonzero().flatten()  # subsets not containing m
        with_m = without + 2 ** m
        k = bits[without].sum(1)  # |S|
        weight = torch.tensor([math.factorial(int(n)) * math.factorial(M - int(n) - 1) / math.factorial(M) for n in k],
                              dtype=v.dtype, device=v.device)
        phi[:, m] = (weight[:, None] * (v[with_m] - v[without])).sum(0)
    return phi


def resample_copies(phi: torch.Tensor, present: torch.Tensor, value: str = "released") -> torch.Tensor:
    """Extra copies ``[B, M]`` (int64) of each sample with only modality m kept, from ``phi`` ``[B, M]``.

    Released bins (``AV_KS_Dataset_sample_level``): ``0.4 < phi < 0.9`` -> 1, ``-0.1 < phi < 0.4`` -> 2,
    ``phi < -0.1`` -> 3, otherwise 0 (BalanceBenchmark: ``0.4 < phi < 1`` for one copy). Absent
    modalities get none.
    """
    copies = torch.zeros(phi.shape, dtype=torch.long, device=phi.device)
    for low, high, n in BINS[value]:
        copies = torch.where((phi > low) & (phi < high), torch.full_like(copies, n), copies)
    return copies * (present > 0)


def modality_level_copies(phi: torch.Tensor, present: torch.Tensor, part: torch.Tensor, alpha: float,
                          generator: torch.Generator) -> torch.Tensor:
    """Extra copies ``[N, M]`` of the modality-level variant (released ``modality_level.py``).

    The mean Shapley values over the sampled part ``part`` ``[Z]`` (indices, drawn with replacement)
    give ``gap_m = 1 - mean phi_m``; ``difference = alpha * 2/3 * mean_{m < j} |gap_m - gap_j|``
    (M = 2: the released ``abs(gap_a - gap_v) / 3 * 2 * alpha``); ``int(difference * N)`` samples are
    drawn with replacement from ``generator`` and each gets one copy keeping only the modality with
    the largest gap (the one that contributes least); a sample lacking that modality gets none.
    """
    N, M = phi.shape
    gap = 1.0 - phi[part].mean(0)  # [M]
    pairs = torch.combinations(torch.arange(M), 2)
    difference = alpha * 2.0 / 3.0 * float((gap[pairs[:, 0]] - gap[pairs[:, 1]]).abs().mean())
    pick = torch.randint(N, (int(difference * N),), generator=generator).to(phi.device)
    copies = torch.zeros(N, M, dtype=torch.long, device=phi.device)
    keep = int(gap.argmax())
    copies[:, keep] = torch.bincount(pick, minlength=N) * (present[:, keep] > 0)
    return copies


@register_method
class SampleValuation(Method):
    """Sample-level modality valuation: per-sample Shapley values; low-valued modalities get single-modality copies.

    After each epoch from ``warmup - 1`` on, the whole training split is scored in evaluation mode
    (no gradient): for every sample and every subset of its modalities the prediction of the fused
    head with the other features zeroed is right or not, giving per-sample Shapley values
    :func:`sample_shapley` (M = 2: ``phi_a = (v_a + v_av - v_v) / 2``, in {-0.5, 0, 0.5, 1, 1.5}).
    The next epoch trains on the training split plus, per sample and modality m, 1-3 extra copies in
    which only m is kept (the other features zeroed, as the released ``drop``): the less m
    contributed to that sample's prediction, the more copies (:func:`resample_copies`). The loss is
    the plain fused CE on every sample, copies included:

        loss = mean_{j in batch} CE(head(x_j * keep_j), y_j),   keep_j = mask_j (original) or e_m (copy of m).

    Before the first scoring (epochs ``< warmup``): plain joint training. The Shapley values and
    copy counts are constants (computed under ``no_grad``); gradients reach each encoder only
    through its kept features and the head through every sample.

    Mixing the copies into the epoch: the released code builds a new data set (originals + copies),
    shuffles it and trains in batches of 64, so an epoch has (N + E) / 64 steps. The harness engine
    yields the N originals in batches of B; here the copies are shuffled once per epoch and handed
    out in proportion to the originals seen (after k originals, ``round(k E / N)`` copies), each
    engine batch is merged with its share, shuffled, and split into ``round((B + e) / B)`` steps of
    about B samples. Steps per epoch and batch size match the released ones (up to rounding; the
    last share is dropped with the engine's partial batch), and every batch mixes originals and
    copies; the mixing is local to a window of B originals instead of the whole epoch.
    Throughput: the engine times and counts its own steps and samples, so after the warm-up one
    "step" holds about 1 + E / N optimiser steps and the copies are not counted as samples.

    Hyper-parameters (released -> harness default):

    * ``warmup``: 5 epochs of 60 (``--warmup 5 --epochs 60``) -> 0.0833 (a fraction of the run, > 1:
      epochs): e.g. 2 warm-up epochs of 20. Model selection starts after the warm-up.
    * ``value``: ``"released"`` (``v(S) = |S| * correct``, the released ``value_all = 2.0``) or
      ``"balancebenchmark"`` (``v(S) = correct``, BalanceBenchmark's ``Calculate_Shapley_Sample``,
      with its ``0.4 < phi < 1`` bin). With the released bins the two differ in what they re-sample:
      a sample every subset predicts right has phi = 1 per modality (released: no copy) or 0.5
      (BalanceBenchmark: one copy of each modality).
    * ``level``: ``"sample"`` (``sample_level.py``, the paper's fine-grained method) or ``"modality"``
      (``modality_level.py``, the coarse one: :func:`modality_level_copies`, one global re-sampling
      rate from the mean Shapley values of a random part of the split, every copy keeping the
      modality that contributes least). Modality level only: ``part_ratio`` 0.2 (released
      ``--part_ratio``) and ``alpha`` 1.0 (released ``--alpha``) -> the same.

    M > 2 (BalanceBenchmark): the same Shapley sum over all subsets (released: M = 2 only).
    Missing modalities: subsets are cut to the present ones, an absent modality has phi = 0 and no
    copies (released: complete data only). The subset predictions zero the other features (the
    released ``exec_drop``) whatever the engine's ``missing`` setting; copies follow that setting.

    Departures: the mixing above; the released scoring pass runs the training loader (with its
    random crops) in eval mode, here the training split as stored; BalanceBenchmark's scoring caches
    the first batch's predictions for every later batch (``res_cache`` is not reset per batch) and
    skips the last partial batch of 64: not reproduced. Optimiser: released Adam lr 5e-5, weight
    decay 1e-4, StepLR(30, 0.1), batch 64, 60 epochs (modality level: SGD lr 1e-3, momentum 0.9);
    harness engine defaults. Modality level: the released ``modality_level.py`` passes a ``loader``
    argument that ``AV_KS_Dataset_modality_level`` does not take (as released it stops there); the
    draws (``np.random.choice``, with replacement) come from ``ctx.generator``; M > 2 (harness) takes
    the mean gap difference over modality pairs and keeps the largest-gap modality, where
    BalanceBenchmark sums over ordered pairs / (M - 1) (twice the released rate at M = 2, no
    ``alpha``) and adds per drawn sample one copy per modality m with the modalities of smaller gap
    zeroed (M = 2: a single-modality copy of the weaker one plus an unchanged copy). Under torchrun
    the merged steps would differ between ranks: refused.

    Side-by-side (tests/baselines/test_sample_valuation.py): the Shapley values and copy counts
    against a transcription of ``execute_modulation`` + ``AV_KS_Dataset_sample_level`` (equal, every
    sample), and one SGD step on a merged batch against the released ``forward(..., drop)`` + CE:
    maximum absolute parameter difference 3.0e-08 (float32, the merged batch shuffled: another summation
    order; asserted < 1e-6).
    """

    name = "sample-valuation"
    hparams: Dict[str, Any] = {"warmup": 5 / 60, "value": "released", "level": "sample", "part_ratio": 0.2,
                               "alpha": 1.0}
    hparam_schema = {"warmup": Setting(float, low=0.0), "value": Setting(str, choices=VALUES),
                     "level": Setting(str, choices=LEVELS), "part_ratio": Setting(float, low=0.0, high=1.0),
                     "alpha": Setting(float, low=0.0)}

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("sample-level modality valuation needs two or more modalities; this data set has one")
        if self.hp["value"] not in VALUES:
            raise ValueError(f"value={self.hp['value']!r}: expected one of {VALUES}")
        if self.hp["level"] not in LEVELS:
            raise ValueError(f"level={self.hp['level']!r}: expected one of {LEVELS}")
        if self.hp["level"] == "modality" and not 0 < self.hp["part_ratio"] <= 1:
            raise ValueError(f"part_ratio={self.hp['part_ratio']!r}: the scored part must be a fraction in (0, 1]")
        self.copies: Optional[torch.Tensor] = None  # [N, M] extra copies per sample and kept modality
        self._extra: Optional[Tuple[torch.Tensor, torch.Tensor]] = None  # this epoch's (index [E], modality [E])
        self._seen = 0
        self._handed = 0

    def selection_start_epoch(self) -> int:
        return window_start_epoch(self.hp["warmup"], self.info.epochs)

    # ----------------------------------------------------------------- scoring
    @torch.no_grad()
    def score(self, ctx) -> Tuple[torch.Tensor, torch.Tensor]:
        """``(phi [N, M], copies [N, M])`` over the training split (eval mode, current presence mask)."""
        training = self.model.training
        self.model.eval()
        bits = subset_bits(self.info.num_modalities)
        phis, presents = [], []
        for batch in ctx.train_batches():
            feats = self.model.encode(batch)
            correct = []
            for row in bits.to(batch.mask.device):
                logits = self.model.head([f * row[m] for m, f in enumerate(feats)])
                correct.append(logits.argmax(1) == batch.labels)
            phis.append(sample_shapley(torch.stack(correct), batch.mask, self.hp["value"]))
            presents.append(batch.mask)
        self.model.train(training)
        phi, present = torch.cat(phis), torch.cat(presents)
        if self.hp["level"] == "sample":
            return phi, resample_copies(phi, present, self.hp["value"])
        N = phi.shape[0]
        part = torch.randint(N, (max(1, int(N * self.hp["part_ratio"])),), generator=ctx.generator).to(phi.device)
        return phi, modality_level_copies(phi, present, part, self.hp["alpha"], ctx.generator)

    def on_epoch_end(self, ctx) -> None:
        if ctx.epoch >= self.selection_start_epoch() - 1:
            phi, self.copies = self.score(ctx)
            self.log_coefficients({"phi": phi.mean(0), "copies": self.copies.float().mean(0)})

    # ----------------------------------------------------------------- training
    def on_epoch_start(self, ctx) -> None:
        if distributed.info().world_size > 1:
            raise ValueError("sample-valuation merges re-sampled copies into each step, which torchrun "
                             "ranks would do differently; run it in one process")
        self._extra, self._seen, self._handed = None, 0, 0
        if self.copies is None or ctx.epoch < self.selection_start_epoch():
            return
        flat = self.copies.flatten()  # [N * M]
        entry = torch.repeat_interleave(torch.arange(flat.numel(), device=flat.device), flat)
        order = torch.randperm(entry.numel(), generator=ctx.generator).to(entry.device)
        entry = entry[order]
        M = self.info.num_modalities
        self._extra = (entry // M, entry % M)

    def extra_share(self, batch_size: int, num_train: int) -> Tuple[torch.Tensor, torch.Tensor]:
        """The copies handed out with the next ``batch_size`` originals (index ``[e]``, kept modality ``[e]``)."""
        index, modality = self._extra
        self._seen += batch_size
        upto = min(len(index), round(self._seen * len(index) / num_train))
        share = (index[self._handed:upto], modality[self._handed:upto])
        self._handed = upto
        return share

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        if self._extra is None:
            return super().training_step(batch, ctx)
        index, modality = self.extra_share(len(batch), len(ctx.train))
        keep = F.one_hot(modality, self.info.num_modalities).to(batch.mask)
        merged_index = torch.cat([batch.index, index.to(batch.index.device)])
        merged_mask = torch.cat([batch.mask, keep.to(batch.mask.device)])
        order = torch.randperm(len(merged_index), generator=ctx.generator).to(merged_index.device)
        steps = max(1, round(len(merged_index) / len(batch)))
        losses = []
        for part in order.tensor_split(steps):
            sub = ctx.train.batch(merged_index[part]).with_mask(merged_mask[part])
            ctx.zero_grad()
            loss = F.cross_entropy(self.model(sub), sub.labels)
            ctx.backward(loss)
            ctx.step()
            losses.append(loss.detach())
        return torch.stack(losses).mean()
