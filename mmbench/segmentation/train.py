"""Train a segmentation method, keep the best epoch on the validation split, test once per modality combination.

The segmentation twin of :func:`mmbench.engine.trainer.fit_and_test`, with the same protocol:

* the validation split is carved from train (:func:`mmbench.segmentation.dataset.carve_validation`);
  the test split is read once, after selection;
* after every epoch the model is scored on validation: mIoU with both modalities under the
  ``complete`` pattern, the mean mIoU over the three combinations under any other pattern (as the
  classification engine uses fused accuracy, resp. the mean over subsets); ties go to the latest
  epoch and a NaN score never wins (:func:`mmbench.engine.selection.is_better`); only epochs from
  ``method.selection_start_epoch()`` on are kept (:func:`mmbench.engine.selection.selection_start`:
  a method's warm-up model is never reported; clamped to the last epoch in a shorter run);
* the method hears of each epoch's start (``method.on_epoch_start(epoch, epochs)``: phases such as
  DMRNet's HCR start and ShaSpec's warm-up) and may ask for gradient clipping
  (``method.max_grad_norm()``);
* each epoch visits the train images in a seeded random order, in batches of ``batch_size`` (the last
  partial batch dropped when there is more than one);
* training images carry the pattern's presence mask (``complete``: both; ``dropout``: a fresh subset
  per image and epoch; ``missing-<eta>``: the persisted per-image masks of the run seed);
* the test split is scored for RGB only, depth only and both (:func:`evaluate_combinations`), and under
  a ``missing-<eta>`` pattern also with its own test masks (``masked_test_miou``).

The learning-rate schedule ``onecycle`` is PyTorch's ``OneCycleLR`` with ESANet's constants (start at
lr / 25, peak lr at 10 % of the run, cosine annealing to lr / 25e4), stepped once per optimiser step so
that a run of a few epochs still follows the whole cycle.
"""
from __future__ import annotations

import copy
import math
import statistics
import time
from typing import Any, Callable, Dict, Iterator, Optional, Tuple

import numpy as np
import torch
from torch import nn

from mmbench.engine.context import DivergedError
from mmbench.engine.selection import is_better, selection_start
from mmbench.patterns import Pattern
from mmbench.segmentation.dataset import SegmentationDataset
from mmbench.segmentation.evaluate import COMBINATIONS, evaluate_combinations
from mmbench.segmentation.inputs import Transform, input_transforms
from mmbench.segmentation.metrics import ConfusionAccumulator
from mmbench.segmentation.methods import SegmentationMethod

NUM_MODALITIES = 2  # rgb, depth


def batches(data: SegmentationDataset, rows: np.ndarray, batch_size: int, device: torch.device,
            present: Optional[torch.Tensor] = None, transform: Optional[Transform] = None
            ) -> Iterator[Tuple[torch.Tensor, ...]]:
    """``(rgb [B, 3, H, W], depth [B, 1, H, W], labels [B, H, W] long[, present [B, 2]])`` over ``rows`` in order.

    ``transform(rgb, depth, labels)`` (:func:`mmbench.segmentation.inputs.input_transforms`: depth
    normalisation, training augmentation) runs on the CPU tensors before they move to ``device``."""
    for start in range(0, len(rows), batch_size):
        idx = np.asarray(rows[start:start + batch_size])
        arrays = (torch.as_tensor(np.asarray(data.rgb[idx])), torch.as_tensor(np.asarray(data.depth[idx])),
                  torch.as_tensor(np.asarray(data.labels[idx]).astype(np.int64)))
        if transform is not None:
            arrays = transform(*arrays)
        out = tuple(a.to(device) for a in arrays)
        if present is not None:
            out += (present[start:start + batch_size].to(device),)
        yield out


class _Predictor(nn.Module):
    """``method.predict`` as a module (train / eval reach the method's networks), for :func:`evaluate_combinations`."""

    def __init__(self, method: SegmentationMethod, predict: Optional[Callable] = None):
        super().__init__()
        self.nets = method.modules()
        self._predict = predict or method.predict

    def forward(self, rgb, depth, present):
        return self._predict(rgb, depth, present)


class _Reiterable:
    """A re-iterable batch source (evaluate_combinations walks it once per combination)."""

    def __init__(self, make: Callable[[], Iterator]):
        self.make = make

    def __iter__(self):
        return self.make()


@torch.no_grad()
def masked_scores(method: SegmentationMethod, data: SegmentationDataset, rows: np.ndarray, present: torch.Tensor,
                  batch_size: int, device: torch.device, transform: Optional[Transform] = None) -> Dict[str, Any]:
    """Scores of ``method`` on ``rows`` with a per-image presence mask ``[len(rows), 2]`` (one confusion matrix)."""
    nets = method.modules()
    was_training = nets.training
    nets.eval()
    acc = ConfusionAccumulator(data.num_classes, data.void_index)
    try:
        for rgb, depth, labels, mask in batches(data, rows, batch_size, device, present, transform):
            acc.update(method.predict(rgb, depth, mask).argmax(1), labels)
    finally:
        nets.train(was_training)
    return acc.scores()


def _optimizer(method: SegmentationMethod, train: Dict[str, Any]) -> torch.optim.Optimizer:
    params = method.modules().parameters()
    if train["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=train["lr"], momentum=train["momentum"], weight_decay=train["weight_decay"])
    return torch.optim.Adam(params, lr=train["lr"], weight_decay=train["weight_decay"])


def _scheduler(optimizer, train: Dict[str, Any], total_steps: int):
    if train["schedule"] == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=train["lr"], total_steps=max(1, total_steps),
                                                   div_factor=25, pct_start=0.1, anneal_strategy="cos",
                                                   final_div_factor=1e4)
    if train["schedule"] == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return None


def _round(scores: Dict[str, Any]) -> Dict[str, Any]:
    """JSON-able scores: the per-class IoU as a list with None for classes absent from labels and predictions."""
    return {"miou": scores["miou"], "pixel_acc": scores["pixel_acc"],
            "iou": [None if math.isnan(v) else float(v) for v in np.asarray(scores["iou"], dtype=float)]}


def fit_and_test(method: SegmentationMethod, data: SegmentationDataset, rows: Dict[str, np.ndarray], pattern: Pattern,
                 train: Dict[str, Any], seed: int, fixed_masks=(None, None),
                 progress: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> Dict[str, Any]:
    """Train for ``train["epochs"]``, keep the best validation epoch, test once.

    Args:
        rows: ``{"train", "val", "test"}`` row indices into ``data``.
        fixed_masks: ``(train [n_train, 2], test [n_test, 2])`` presence masks of a ``missing-<eta>``
            pattern (:class:`mmbench.patterns.MaskStore`), else ``(None, None)``.

    Returns:
        ``{"metrics", "throughput", "history"}``. Raises :class:`DivergedError` on a non-finite loss.

    Inputs: depth is normalised by the train rows' statistics under ``depth_norm="train-stats"``, and the
    training batches (only) are augmented under ``augment`` (:func:`~mmbench.segmentation.inputs.input_transforms`;
    the augmentation draws from the run's generator, as the order and the methods' draws do).
    """
    device = torch.device(train["device"])
    method.to(device)
    generator = torch.Generator().manual_seed(seed)
    train_transform, eval_transform, input_info = input_transforms(train, data, rows["train"], generator)
    bs, ebs, epochs = train["batch_size"], train["eval_batch_size"], train["epochs"]
    n_train = len(rows["train"])
    # The last partial batch is dropped when there is more than one batch, as in the classification engine
    # (a batch of one image cannot train BatchNorm on the 1 x 1 pyramid-pooling map).
    used = (n_train // bs) * bs if n_train > bs else n_train
    steps_per_epoch = math.ceil(used / bs)
    optimizer = _optimizer(method, train)
    scheduler = _scheduler(optimizer, train, epochs * steps_per_epoch)
    train_fixed, test_fixed = fixed_masks
    predictor = _Predictor(method)

    def val_scores(predict, combination) -> Dict[str, Any]:
        present = torch.tensor([combination], dtype=torch.float32).expand(len(rows["val"]), NUM_MODALITIES)
        nets = method.modules()
        was = nets.training
        nets.eval()
        acc = ConfusionAccumulator(data.num_classes, data.void_index)
        try:
            with torch.no_grad():
                for rgb, depth, labels, mask in batches(data, rows["val"], ebs, device, present, eval_transform):
                    acc.update(predict(rgb, depth, mask).argmax(1), labels)
        finally:
            nets.train(was)
        return acc.scores()

    best, best_epoch, best_state = -math.inf, -1, None
    first_eligible = selection_start(method, epochs)  # a warm-up epoch is evaluated but never kept
    clip = method.max_grad_norm()
    history, step_seconds, train_seconds, samples = [], [], 0.0, 0
    for epoch in range(epochs):
        method.on_epoch_start(epoch, epochs)
        mask = pattern.epoch_train_mask(train_fixed, n_train, NUM_MODALITIES, seed, epoch).float()
        order = torch.randperm(n_train, generator=generator).numpy()[:used]
        method.modules().train()
        epoch_start, count = time.perf_counter(), 0
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)  # summed on the device: no per-step host read
        for rgb, depth, labels, present in batches(data, rows["train"][order], bs, device, mask[order],
                                                   train_transform):
            start = time.perf_counter()
            loss = method.loss(rgb, depth, labels, present, generator)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(method.modules().parameters(), clip)
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            step_seconds.append(time.perf_counter() - start)
            loss_sum += loss.detach().double() * len(labels)
            count, samples = count + len(labels), samples + len(labels)
        train_seconds += time.perf_counter() - epoch_start
        epoch_loss = float(loss_sum) / max(1, count)  # one host read per epoch
        if not math.isfinite(epoch_loss):  # a non-finite step loss makes the epoch's sum non-finite
            raise DivergedError(f"non-finite training loss in epoch {epoch}")
        method.on_validation(val_scores)
        if pattern.name == "complete":
            score = val_scores(method.predict, COMBINATIONS["rgb+depth"])["miou"]
        else:
            score = float(np.mean([val_scores(method.predict, c)["miou"] for c in COMBINATIONS.values()]))
        history.append({"epoch": epoch, "loss": epoch_loss, "val": score})
        if epoch >= first_eligible and is_better(score, best):
            best, best_epoch = score, epoch
            best_state = (copy.deepcopy(method.modules().state_dict()), copy.deepcopy(method.extra_state()))
        if progress:
            progress(epoch, history[-1])
    if best_state is not None:
        method.modules().load_state_dict(best_state[0])
        method.load_extra_state(best_state[1])

    test = _Reiterable(lambda: batches(data, rows["test"], ebs, device, transform=eval_transform))
    out = evaluate_combinations(predictor, test, data.num_classes, void_index=data.void_index)
    per = out["per_combination"]
    metrics: Dict[str, Any] = {
        "subset_miou": {name: s["miou"] for name, s in per.items()},
        "subset_pixel_acc": {name: s["pixel_acc"] for name, s in per.items()},
        "subset_iou": {name: _round(s)["iou"] for name, s in per.items()},
        "miou_mean": out["miou_mean"], "miou_worst": out["miou_worst"],
        "miou_worst_subset": min(per, key=lambda name: per[name]["miou"]),
        "pixel_acc_mean": out["pixel_acc_mean"], "pixel_acc_worst": out["pixel_acc_worst"],
        "val_selection": best, "best_epoch": best_epoch, "selection_start_epoch": first_eligible,
        "inputs": input_info,
    }
    metrics.update(method.result_metrics())  # a method's own record (MMANet's mined combination); default none
    if test_fixed is not None:
        masked = masked_scores(method, data, rows["test"], test_fixed, ebs, device, eval_transform)
        metrics["masked_test_miou"], metrics["masked_test_pixel_acc"] = masked["miou"], masked["pixel_acc"]
    throughput = {
        "train_samples_per_s": samples / train_seconds if train_seconds else float("nan"),
        "step_ms": 1000 * statistics.median(step_seconds) if step_seconds else float("nan"),
        "train_seconds": train_seconds, "steps": len(step_seconds),
        "params": sum(p.numel() for p in method.modules().parameters()),
    }
    return {"metrics": metrics, "throughput": throughput, "history": history}
