"""Linear-probe evaluation: each trained encoder frozen, a linear classifier per modality fitted on top.

OGM-GE's paper (and BalanceBenchmark's ``LinearProbe`` trainer) measure a modality's "unimodal
accuracy" this way; the harness's other per-modality number, ``unimodal_acc``, is the shared-head
probe (the fused head with the other modalities' features zeroed), which reads how the *fusion head*
uses a modality, not how good its encoder's features are. Both are stored; the under-optimisation
gap is computed from each (:mod:`mmbench.report.imbalance`).

Protocol (after model selection, on the selected model):

* features ``[N, D]`` of every modality are computed once per split (train, val, test) with complete
  inputs (every modality present; under a missing pattern too: the probe reads the encoder, not the
  training mask), in eval mode, no gradient;
* they are standardised with the train split's per-dimension mean and std (a linear map: it changes
  no probe's capacity, only the conditioning of the optimisation);
* a linear classifier ``W x + b`` (``[C, D]``, ``[C]``; zero init, so the fit is deterministic) is
  trained (all modalities' probes in one batched loop, :func:`fit_probes`) full-batch with Adam (lr ``LR``) on the train split's cross-entropy for ``STEPS`` steps;
  every ``EVAL_EVERY`` steps its validation accuracy is measured and the best one kept (ties go to the
  earlier, smaller-norm probe), stopping after ``PATIENCE`` checks without improvement (early stopping
  on validation only);
* the kept probe is scored once on the test split: accuracy and macro-F1.

Under ``loader=stream`` with ``augment=True`` the train features are those of one augmented pass (the
train split's own iteration); validation and test are never augmented. Checked on
mfeat-fou-zer-mor (``unimodal``, seed 0): longer or slower fits (lr 0.01 x 500 steps, lr 0.1 x 300
without early stopping) move the test probes by at most 2 points either way, and the probes' validation
accuracies match the trained heads' (the probe is not under-fitted).

Cost: one evaluation pass per split plus at most ``STEPS`` full-batch steps on ``[M, N_train, D]``
(all modalities in one batched loop). Measured on mfeat-fou-zer-mor (3 x 1,200 x 64 train features,
one core, shared machine): ~0.13 s CPU per run for the probes, the whole joint run ~0.85 s CPU.
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F

from mmbench.batching import SplitTensors
from mmbench.engine.evaluate import evaluate_logits
from mmbench.methods.base import Method

# Chosen on mfeat-fou-zer-mor (joint, 20 epochs, D = 64): lr 0.01 x 300 steps, 0.05 x 100 and 0.1 x 100 give
# test probes within 2 points of each other; lr 0.1 with checks every 5 steps stops after ~50-70 steps, about
# 0.13 s of one core for the three probes (0.48 s at lr 0.01 x 300), next to ~0.85 s CPU for the whole run.
STEPS = 100  # at most this many full-batch Adam steps per probe
LR = 0.1  # Adam step size on standardised features
EVAL_EVERY = 5  # validation check interval (steps)
PATIENCE = 4  # checks without a better validation accuracy before stopping
# Below this many classes the probe's cross-entropy takes its log-softmax along dim 0 of the transposed
# logits (see _probe_cross_entropy). 16 fp32 lanes is one AVX-512 vector, the width under which
# torch's last-dimension kernel leaves its vectorised path.
NARROW_CLASSES = 16


def _probe_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``F.cross_entropy(logits, labels)`` for ``logits`` ``[N, C]``, computed fast when C is small.

    torch's CPU log-softmax over a last dimension narrower than a vector register runs a scalar
    loop per row: on a [3600, 10] probe batch it took 455 us against 20 us along dim 0 of the
    transpose, and the forward plus backward was most of a probe step (725 against 219 us). Along
    dim 0 each column is reduced in the same order, so on the CPUs measured (AVX-512, C = 2..15) the
    loss and its gradient are the same bits as ``F.cross_entropy``; from 16 classes up they are not,
    and the plain call is used.
    """
    if logits.shape[1] >= NARROW_CLASSES:
        return F.cross_entropy(logits, labels)
    if logits.requires_grad:
        # the gradient arrives transposed (a [C, N] layout); the matrix product before it must see the
        # row-major layout F.cross_entropy gives it, or its backward sums in another order
        logits.register_hook(lambda grad: grad.contiguous())
    return F.nll_loss(F.log_softmax(logits.t(), 0).t(), labels)


@torch.no_grad()
def split_features(method: Method, split: SplitTensors, batch_size: int) -> List[torch.Tensor]:
    """Per modality, encoder features ``[N, D]`` of the whole split (complete inputs, eval mode)."""
    method.modules().eval()
    per_batch = [method.model.encode(b) for b in split.iterate(batch_size)]
    return [torch.cat([b[m] for b in per_batch]).float() for m in range(len(split.modalities))]


def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
              num_classes: int, steps: int = STEPS, lr: float = LR, eval_every: int = EVAL_EVERY,
              patience: int = PATIENCE) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, float]]:
    """Fit one probe ``W x + b`` on ``train_x`` ``[N, D]``, early-stopped on ``val_x`` accuracy.

    Returns ``(weight [C, D], bias [C], {"val_acc", "steps"})`` on the raw features; see :func:`fit_probes`.
    """
    w, b, info = fit_probes(train_x[None], train_y, val_x[None], val_y, num_classes, steps, lr, eval_every, patience)
    return w[0], b[0], {"val_acc": info["val_acc"][0], "steps": info["steps"][0]}


def fit_probes(train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
               num_classes: int, steps: int = STEPS, lr: float = LR, eval_every: int = EVAL_EVERY,
               patience: int = PATIENCE) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, List[float]]]:
    """Fit M independent probes at once: ``train_x`` ``[M, N, D]`` (one feature set per modality).

    The M probes share nothing but the loop: the loss is the sum of their cross-entropies, each
    probe's parameters get only their own term's gradient, and Adam is element-wise, so each probe
    follows exactly the trajectory it would alone (one batched step instead of M: the probes cost
    about one modality's time). Each keeps its own best validation check (ties: the earlier one) and
    stops choosing after ``patience`` checks without improvement, exactly as alone; the loop ends
    when every probe has stopped.

    Returns ``(weight [M, C, D], bias [M, C], {"val_acc": [M], "steps": [M]})`` expressed on the *raw*
    features (the train split's standardisation folded in).
    """
    if train_x.dim() != 3 or val_x.dim() != 3 or train_x.shape[::2] != val_x.shape[::2]:
        raise ValueError(f"probe features must be [M, N, D] with one M and D, got {tuple(train_x.shape)} and "
                         f"{tuple(val_x.shape)}")
    if train_x.shape[1] == 0:
        raise ValueError("the linear probe needs at least one training sample")
    M, _, D = train_x.shape
    mean = train_x.mean(1, keepdim=True)  # [M, 1, D]
    std = train_x.std(1, unbiased=False, keepdim=True).clamp_min(1e-6)  # constant dims (dead ReLUs) stay finite
    tx, vx = (train_x - mean) / std, (val_x - mean) / std
    opts = dict(dtype=train_x.dtype, device=train_x.device)
    weight = torch.zeros(M, D, num_classes, **opts, requires_grad=True)  # zero init: a deterministic fit
    bias = torch.zeros(M, 1, num_classes, **opts, requires_grad=True)
    opt = torch.optim.Adam([weight, bias], lr=lr)
    flat_y = train_y.repeat(M)

    best_acc = torch.full((M,), -1.0)
    best_step = [0] * M
    best_w, best_b = weight.detach().clone(), bias.detach().clone()
    stale = torch.zeros(M, dtype=torch.long)
    for step in range(1, steps + 1):
        opt.zero_grad()
        logits = torch.baddbmm(bias, tx, weight)  # [M, N, C]
        # sum over probes of each probe's mean CE: mean over M*N samples times M
        (_probe_cross_entropy(logits.reshape(-1, num_classes), flat_y) * M).backward()
        opt.step()
        if step % eval_every and step != steps:
            continue
        with torch.no_grad():
            acc = (torch.baddbmm(bias, vx, weight).argmax(2) == val_y).float().mean(1).cpu()  # [M]
            stopped = stale >= patience  # a stopped probe keeps its choice (as if its loop had ended)
            better = (acc > best_acc) & ~stopped  # strict: a tie keeps the earlier probe
            stale = torch.where(better, torch.zeros_like(stale), stale + 1)
            for m in better.nonzero().flatten().tolist():
                best_acc[m], best_step[m] = acc[m], step
                best_w[m], best_b[m] = weight[m], bias[m]
        if bool((stale >= patience).all()):
            break
    # fold the standardisation in: W^T ((x - mu) / s) + b = (W / s^T)^T x + (b - mu/s W)
    w = (best_w / std.transpose(1, 2)).transpose(1, 2)  # [M, C, D]
    b = (best_b - (mean / std) @ best_w).squeeze(1)  # [M, C]
    return w, b, {"val_acc": best_acc.tolist(), "steps": best_step}


def linear_probe_metrics(method: Method, tr: SplitTensors, va: SplitTensors, te: SplitTensors, num_classes: int,
                         batch_size: int) -> Tuple[Dict[str, Dict[str, float]], Dict[str, torch.Tensor]]:
    """Linear probes of every modality: ``({"acc": {m: ..}, "f1": {m: ..}, "val_acc": .., "steps": ..},
    {m: test logits [N_test, C]})``."""
    feats = {name: split_features(method, split, batch_size) for name, split in (("train", tr), ("val", va), ("test", te))}
    out: Dict[str, Dict[str, float]] = {"acc": {}, "f1": {}, "val_acc": {}, "steps": {}}
    logits: Dict[str, torch.Tensor] = {}
    dims = {f.shape[1] for f in feats["train"]}
    # one batched fit when every encoder has the same width (the harness's feature_dim), else one per modality
    groups = [list(range(len(te.modalities)))] if len(dims) == 1 else [[i] for i in range(len(te.modalities))]
    with torch.enable_grad():
        for group in groups:
            stack = {k: torch.stack([feats[k][i] for i in group]) for k in feats}
            w, b, info = fit_probes(stack["train"], tr.labels, stack["val"], va.labels, num_classes)
            for j, i in enumerate(group):
                m = te.modalities[i]
                logits[m] = F.linear(stack["test"][j], w[j], b[j]).detach()
                scores = evaluate_logits(logits[m], te.labels, num_classes)
                out["acc"][m], out["f1"][m] = scores["acc"], scores["f1"]
                out["val_acc"][m], out["steps"][m] = info["val_acc"][j], info["steps"][j]
    return out, logits
