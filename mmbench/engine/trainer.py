"""The training engine: fit a method with validation-only model selection, then test once."""
from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch

from mmbench.batching import SplitTensors, subset_name
from mmbench.data.base import MultimodalDataset
from mmbench.engine import distributed
from mmbench.engine.accel import (
    StepTimer, autocast, grad_scaler, peak_memory_mb, reset_peak_memory, resolve_device, use_channels_last,
)
from mmbench.engine.context import DivergedError, TrainContext
from mmbench.engine.evaluate import (
    accuracy, evaluate_logits, evaluate_missing_rates, evaluate_subsets, extra_subset_metrics, predict_masks, predict_split,
    subset_logits, subset_masks, unimodal_split,
)
from mmbench.engine.linear_probe import linear_probe_metrics
from mmbench.engine.outcomes import build_outcomes, correct_of, pack_correct
from mmbench.engine.memory import SavedTensorMeter
from mmbench.engine.selection import is_better, selection_start
from mmbench.methods.base import Method, RunInfo
from mmbench.models.model import MultimodalModel
from mmbench.patterns import ROBUSTNESS_RATES, Pattern
from mmbench.streaming import build_splits

MEASURE_STEPS_PER_EPOCH = 2  # memory is measured on the first steps of each epoch (hooks cost time)


def build_optimizer(method: Method, train: Dict[str, Any]) -> torch.optim.Optimizer:
    groups = method.param_groups()
    name = train["optimizer"]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=train["lr"], momentum=train["momentum"], weight_decay=train["weight_decay"])
    if name == "adam":
        return torch.optim.Adam(groups, lr=train["lr"], weight_decay=train["weight_decay"])
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=train["lr"], weight_decay=train["weight_decay"])
    raise ValueError(f"unknown optimizer {name!r} (sgd, adam, adamw)")


def build_scheduler(optimizer: torch.optim.Optimizer, train: Dict[str, Any]):
    name = train["schedule"]
    if name == "constant":
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, train["epochs"]))
    if name == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=train["step_size"], gamma=0.1)
    raise ValueError(f"unknown schedule {name!r} (constant, cosine, step)")


def run_device(train: Dict[str, Any]) -> torch.device:
    """The run's device (``cuda`` -> this process's GPU under torchrun); an error if it is absent."""
    return resolve_device(distributed.shard_device(train["device"]))


def build_method(method_cls, data: MultimodalDataset, train: Dict[str, Any], hp: Dict[str, Any], info: RunInfo) -> Method:
    device = run_device(train)
    model = MultimodalModel(
        data.specs, data.num_classes, fusion=train["fusion"], feature_dim=train["feature_dim"],
        missing=train["missing"], fill=train["fill"], encoder=train.get("encoder", "small"),
    ).to(device)
    method = method_cls(model, hp, info)
    method.extra.to(device)
    if train.get("channels_last"):
        use_channels_last(method.modules())
    return method


def _drop_last(method: Method, num_train: int, batch_size: int, world_size: int) -> bool:
    """Whether the epoch drops its last partial batch: the method's ``drop_last`` when it sets one
    (MLA's released schedule trains it), else when the split has more than one batch. Always under
    torchrun (the shards must be equal); a method asking to keep it there is an error."""
    wanted = getattr(method, "drop_last", None)
    if world_size > 1:
        if wanted is False:
            raise ValueError(f"{method.name}: drop_last=False (train the last partial batch) cannot run on "
                             f"{world_size} processes, whose shards must be equal; use drop_last=True")
        return True
    return num_train > batch_size if wanted is None else bool(wanted)


def _snapshot(method: Method) -> Dict[str, Any]:
    return {"modules": copy.deepcopy(method.modules().state_dict()), "extra_state": copy.deepcopy(method.extra_state())}


def _restore(method: Method, snap: Dict[str, Any]) -> None:
    method.modules().load_state_dict(snap["modules"])
    method.load_extra_state(snap["extra_state"])


def _selection_metric(method: Method, val: SplitTensors, info: RunInfo, pattern: Pattern, bs: int) -> float:
    """Complete pattern: fused val accuracy. Missing patterns: mean val accuracy over all subsets."""
    if pattern.train == "complete":
        return accuracy(predict_split(method, val, bs), val.labels)
    subsets = subset_logits(method, val, bs)
    return sum(accuracy(logits, val.labels) for logits in subsets.values()) / len(subsets)


def fit_and_test(
    method: Method,
    data: MultimodalDataset,
    pattern: Pattern,
    train_cfg: Dict[str, Any],
    info: RunInfo,
    fixed_masks=(None, None),
    teacher_fn: Optional[Callable[..., Method]] = None,
    progress: Optional[Callable[[int, Dict[str, Any]], None]] = None,
) -> Dict[str, Any]:
    """Train ``method`` for ``info.epochs``, keep the best epoch on validation, test once.

    Selection (:mod:`mmbench.engine.selection`): only epochs from ``method.selection_start_epoch()``
    on are candidates, and ties go to the latest epoch.

    Returns ``{"metrics": ..., "throughput": ..., "history": [...]}``. Raises
    :class:`DivergedError` when the loss becomes non-finite.
    """
    device = run_device(train_cfg)
    tr, va, te = build_splits(data, train_cfg, device)
    dist_info = distributed.info()
    distributed.check_batch_size(train_cfg["batch_size"])
    amp = train_cfg.get("amp", "off")
    scaler = grad_scaler(device, amp)
    if scaler is not None and not getattr(method, "supports_grad_scaler", True):
        raise ValueError(f"amp=fp16 needs a gradient scaler, which method {method.name!r} cannot use "
                         "(it takes gradients with torch.autograd.grad); use amp=bf16 or amp=off")
    train_mask_fixed, test_mask_fixed = fixed_masks
    generator = torch.Generator().manual_seed(info.seed)
    optimizer = build_optimizer(method, train_cfg)
    scheduler = build_scheduler(optimizer, train_cfg)
    bs, ebs = train_cfg["batch_size"], train_cfg["eval_batch_size"]
    ctx = TrainContext(method, info, optimizer, tr, va, generator, train_cfg["clip_grad"], ebs, teacher_fn)
    ctx.scaler = scaler
    meter = SavedTensorMeter()
    timer = StepTimer(device)
    reset_peak_memory(device)
    # Under torchrun every rank takes its equal share of each global batch (partial batches dropped).
    shard = (dist_info.rank, dist_info.world_size)

    method.on_fit_start(ctx)
    best, best_epoch, best_state = -math.inf, -1, None
    first_eligible = selection_start(method, info.epochs)  # warm-up epochs are evaluated but never kept
    history: List[Dict[str, float]] = []
    train_seconds, samples = 0.0, 0  # wall time of the training epochs, epoch hooks included
    for epoch in range(info.epochs):
        ctx.epoch = epoch
        ctx.train_mask = pattern.epoch_train_mask(train_mask_fixed, len(tr), info.num_modalities, info.seed, epoch).to(device)
        ctx.loss_sum.zero_()
        ctx.loss_count = 0
        method.modules().train()
        epoch_start = time.perf_counter()
        method.on_epoch_start(ctx)
        drop_last = _drop_last(method, len(tr), bs, dist_info.world_size)
        for i, batch in enumerate(tr.iterate(bs, ctx.train_mask, shuffle=True, generator=generator,
                                             drop_last=drop_last, shard=shard)):
            hooked = i < MEASURE_STEPS_PER_EPOCH and device.type == "cpu"
            timer.start()
            with autocast(device, amp):
                if hooked:
                    with meter.measure():
                        loss = method.training_step(batch, ctx)
                else:
                    loss = method.training_step(batch, ctx)
            if loss is not None:
                ctx.log_loss(loss)
            timer.stop("hooked" if hooked else "plain")
            samples += len(batch) * dist_info.world_size
            ctx.step_count += 1
        if ctx.step_count == 0:
            raise ValueError(
                f"no training step in epoch {epoch}: {len(tr)} training samples make no full batch of "
                f"batch_size={bs} (split over {dist_info.world_size} process(es), partial batches dropped); "
                "choose a smaller batch_size")
        method.on_epoch_end(ctx)
        timer.flush()  # synchronises a GPU once per epoch
        train_seconds += time.perf_counter() - epoch_start
        if bool(ctx.nonfinite):
            raise DivergedError(f"non-finite training loss in epoch {epoch}")
        if scheduler is not None:
            scheduler.step()
        score = _selection_metric(method, va, info, pattern, ebs)
        # Under torchrun each rank logged the loss of its shard: the epoch loss is their mean.
        mean_loss = (distributed.global_mean(ctx.loss_sum) / max(1, ctx.loss_count)).item()
        history.append({"epoch": epoch, "loss": mean_loss, "val": score})
        coefficients = method.pop_coefficients()
        if coefficients:  # balancing methods' per-epoch mean coefficients (Method.log_coefficients)
            history[-1]["coefficients"] = coefficients
        if epoch >= first_eligible and is_better(score, best):
            best, best_epoch, best_state = score, epoch, _snapshot(method)
        if progress:
            progress(epoch, history[-1])  # {"epoch", "loss": mean training loss, "val": selection score}

    if best_state is not None:
        _restore(method, best_state)
    outcomes: Dict[str, Any] = {}
    metrics = test_metrics(method, te, info, test_mask_fixed, ebs, outcomes, data.split["test"],
                           data.meta.get("extra_metrics"))
    metrics.update({"val_selection": best, "best_epoch": best_epoch, "selection_start_epoch": first_eligible})
    probe_start = time.perf_counter()
    add_linear_probes(metrics, outcomes, method, tr, va, te, info, ebs)
    probe_seconds = time.perf_counter() - probe_start
    if device.type == "cuda":
        peak_mb, mem_kind = peak_memory_mb(device), "cuda_max_allocated"
    else:
        peak_mb, mem_kind = meter.peak_bytes / 2**20, "autograd_saved_per_step"
    step_seconds = timer.seconds["plain"] or timer.seconds["hooked"]  # a tiny data set may have only hooked steps
    throughput = {
        # samples over the training epochs' wall time: the methods' between-epoch work (prototypes,
        # mining, stage switches) counts; the validation passes of model selection do not.
        "train_samples_per_s": samples / train_seconds if train_seconds else float("nan"),
        # median: robust to the scheduler hiccups of a shared CPU, which the mean was not.
        "step_ms": 1000 * statistics.median(step_seconds) if step_seconds else float("nan"),
        "step_ms_mean": 1000 * statistics.fmean(step_seconds) if step_seconds else float("nan"),
        "train_seconds": train_seconds,
        "steps": ctx.step_count,
        "peak_mem_mb": peak_mb,
        "mem_kind": mem_kind,
        "params": sum(p.numel() for p in method.modules().parameters()),
        "world_size": dist_info.world_size,  # processes of a torchrun run (samples/s counts them all)
        "amp": amp,
        "linear_probe_seconds": probe_seconds,  # the post-training linear probes (mmbench.engine.linear_probe)
    }
    return {"metrics": metrics, "throughput": throughput, "history": history, "outcomes": outcomes}


def add_linear_probes(metrics: Dict[str, Any], outcomes: Dict[str, Any], method: Method, tr, va, te, info: RunInfo,
                      bs: int) -> None:
    """Frozen-encoder linear probes per modality (:mod:`mmbench.engine.linear_probe`) into ``metrics``
    (``linear_probe_acc`` / ``linear_probe_f1`` / ``linear_probe_val_acc`` / ``linear_probe_steps``, per
    modality) and their per-sample test outcomes ``lp:<m>`` into ``outcomes``."""
    probes, logits = linear_probe_metrics(method, tr, va, te, info.num_classes, bs)
    for key in ("acc", "f1", "val_acc", "steps"):
        metrics[f"linear_probe_{key}"] = probes[key]
    if outcomes.get("correct") is not None:
        outcomes["correct"].update({f"lp:{m}": pack_correct(correct_of(lg, te.labels)) for m, lg in logits.items()})


def test_metrics(method: Method, te: SplitTensors, info: RunInfo, test_mask: Optional[torch.Tensor], bs: int,
                 outcomes: Optional[Dict[str, Any]] = None, test_ids=None, extra: Optional[str] = None) -> Dict[str, Any]:
    """Every test metric, each computed once on every test sample.

    When ``outcomes`` is a dict, it is filled with the per-sample outcome record
    (:func:`mmbench.engine.outcomes.build_outcomes`) of the fused, per-subset, probe and masked predictions.
    ``extra``: a data set's ``meta["extra_metrics"]`` (e.g. ``"anti_spoofing"``): its metrics per subset
    go under ``metrics["extra"][extra]``.
    """
    # the fused, per-subset and masked predictions in one pass (the encoders run once per batch)
    masks = subset_masks(te.modalities)
    wanted = [None, *masks.values()] + ([test_mask.to(te.device)] if test_mask is not None else [])
    predicted = predict_masks(method, te, bs, wanted)
    fused_logits, per_subset = predicted[0], dict(zip(masks, predicted[1:1 + len(masks)]))
    full = evaluate_logits(fused_logits, te.labels, info.num_classes)
    subsets = evaluate_subsets(method, te, info.num_classes, bs, per_subset)
    uni = unimodal_split(method, te, bs)
    metrics: Dict[str, Any] = {
        "test_acc": full["acc"],
        "test_f1": full["f1"],
        "unimodal_acc": {
            m: evaluate_logits(logits, te.labels, info.num_classes)["acc"] for m, logits in zip(info.modalities, uni)
        },
        "subset_acc": {name: v["acc"] for name, v in subsets.items()},
        "subset_f1": {name: v["f1"] for name, v in subsets.items()},
    }
    accs = list(metrics["subset_acc"].values())
    metrics["subset_mean"] = sum(accs) / len(accs)
    metrics["subset_worst"] = min(accs)
    metrics["subset_worst_name"] = min(metrics["subset_acc"], key=metrics["subset_acc"].get)
    named = {"fused": fused_logits, **{f"subset:{k}": v for k, v in per_subset.items()},
             **{f"uni:{m}": v for m, v in zip(info.modalities, uni)}}
    if test_mask is not None:
        named["masked"] = predicted[-1]
        masked = evaluate_logits(named["masked"], te.labels, info.num_classes)
        metrics["masked_test_acc"] = masked["acc"]
        metrics["masked_test_f1"] = masked["f1"]
    metrics["masked_test_acc_at"] = evaluate_missing_rates(
        method, te, info.num_classes, bs, info.dataset, info.seed, ROBUSTNESS_RATES)
    metrics["full_subset"] = subset_name(info.modalities)
    if outcomes is not None:
        ids = np.arange(len(te)) if test_ids is None else np.asarray(test_ids)
        outcomes.update(build_outcomes(ids, te.labels, named, info.seed, test_mask, info.num_classes))
    if extra:
        metrics["extra"] = {extra: extra_subset_metrics(method, te, extra, bs, per_subset)}
    return metrics
