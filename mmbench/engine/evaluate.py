"""Evaluation: predictions over a split, accuracy, macro-F1, per-subset metrics (and a data set's extra metrics)."""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from mmbench.batching import SplitTensors, all_subsets, subset_name
from mmbench.methods.base import Method
from mmbench.metrics import EXTRA_METRICS


@torch.no_grad()
def predict_split(method: Method, split: SplitTensors, batch_size: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fused logits ``[N, C]`` over a whole split; ``mask`` is ``[M]`` (same for all) or ``[N, M]``."""
    return predict_masks(method, split, batch_size, [mask])[0]


@torch.no_grad()
def predict_masks(method: Method, split: SplitTensors, batch_size: int,
                  masks: Sequence[Optional[torch.Tensor]]) -> List[torch.Tensor]:
    """Fused logits ``[N, C]`` over a whole split under each presence mask in ``masks``.

    Each mask is ``[M]`` (the same for every sample), ``[N, M]``, or None (every modality present).
    One pass over the split: each batch is predicted under every mask in turn inside the model's
    :meth:`~mmbench.models.model.MultimodalModel.reusing_features`, so a method that encodes through
    the shared model runs its encoders once per batch, not once per mask (the masks only zero
    features). Each mask's logits are those :func:`predict_split` would give it alone.
    """
    method.modules().eval()
    rows = [None if m is None else (m.unsqueeze(0).expand(len(split), -1) if m.dim() == 1 else m).to(split.device)
            for m in masks]
    outs: List[List[torch.Tensor]] = [[] for _ in masks]
    model = getattr(method, "model", None)
    for batch in split.iterate(batch_size):
        with model.reusing_features() if hasattr(model, "reusing_features") else nullcontext():
            for out, row in zip(outs, rows):
                out.append(method.predict(batch if row is None else replace(batch, mask=row[batch.index])))
    return [torch.cat(out).float() for out in outs]


@torch.no_grad()
def unimodal_split(method: Method, split: SplitTensors, batch_size: int) -> List[torch.Tensor]:
    """Per-modality logits ``M x [N, C]`` on complete inputs."""
    method.modules().eval()
    per_batch = [method.unimodal_logits(b) for b in split.iterate(batch_size)]
    return [torch.cat([b[m] for b in per_batch]).float() for m in range(len(split.modalities))]


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the arg-max of ``logits`` ``[N, C]`` against ``labels`` ``[N]`` (NaN for an empty split)."""
    pred = logits.argmax(1).cpu().numpy()
    true = labels.cpu().numpy()
    return float((pred == true).mean()) if len(true) else float("nan")


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, float]:
    """Accuracy and macro-F1 (classes absent from both labels and predictions are skipped).

    The per-class counts come from three ``bincount`` calls, not a loop over classes: the same
    integers and the same float64 divisions and mean as a per-class loop (so the same bits), without
    3 x C array passes, which cost more than the predictions on a 32-class validation split.
    """
    pred = logits.argmax(1).cpu().numpy()
    true = labels.cpu().numpy()
    acc = float((pred == true).mean()) if len(true) else float("nan")
    tp = np.bincount(true[pred == true], minlength=num_classes)[:num_classes]
    fp = np.bincount(pred, minlength=num_classes)[:num_classes] - tp  # predicted c, labelled otherwise
    fn = np.bincount(true, minlength=num_classes)[:num_classes] - tp  # labelled c, predicted otherwise
    seen = (tp + fp + fn) > 0
    f1s = 2 * tp[seen] / (2 * tp[seen] + fp[seen] + fn[seen])
    return {"acc": acc, "f1": float(np.mean(f1s)) if len(f1s) else float("nan")}


def subset_masks(modalities) -> Dict[str, torch.Tensor]:
    """Name -> ``[M]`` presence mask for every non-empty subset."""
    return {
        subset_name(s): torch.tensor([float(m in s) for m in modalities]) for s in all_subsets(list(modalities))
    }


def subset_logits(method: Method, split: SplitTensors, batch_size: int) -> Dict[str, torch.Tensor]:
    """Subset name -> fused logits ``[N, C]`` with only that subset present, for every non-empty subset."""
    masks = subset_masks(split.modalities)
    return dict(zip(masks, predict_masks(method, split, batch_size, list(masks.values()))))


def evaluate_subsets(method: Method, split: SplitTensors, num_classes: int, batch_size: int,
                     logits: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, Dict[str, float]]:
    """Metrics for every non-empty subset of modalities (all samples get the same subset)."""
    logits = subset_logits(method, split, batch_size) if logits is None else logits
    return {name: evaluate_logits(lg, split.labels, num_classes) for name, lg in logits.items()}


def evaluate_missing_rates(method: Method, split: SplitTensors, num_classes: int, batch_size: int,
                           dataset: str, seed: int, rates) -> Dict[str, float]:
    """Test accuracy with a fraction ``eta`` of samples missing modalities, for each ``eta`` in ``rates``.

    Returns ``{"0.1": acc, ...}`` (string keys: they go into JSON). Empty for a single-modality data set,
    where no sample can miss a modality and keep another.
    """
    from mmbench.patterns import robustness_test_mask

    if len(split.modalities) < 2:
        return {}
    masks = [torch.from_numpy(robustness_test_mask(len(split), split.modalities, eta, dataset, seed)) for eta in rates]
    logits = predict_masks(method, split, batch_size, masks)
    return {f"{eta:g}": evaluate_logits(lg, split.labels, num_classes)["acc"] for eta, lg in zip(rates, logits)}


def extra_subset_metrics(method: Method, split: SplitTensors, name: str, batch_size: int,
                         logits: Optional[Dict[str, torch.Tensor]] = None) -> Dict[str, Dict[str, float]]:
    """A data set's extra metrics (``meta["extra_metrics"]``, e.g. ``"anti_spoofing"``) for every subset.

    Returns ``{subset name: {metric: value}}``, computed on the arg-max predictions; ``logits`` (subset
    name -> ``[N, C]``, from :func:`subset_logits`) saves predicting again.

    Raises:
        ValueError: ``name`` is not a known extra metric (the message lists the known ones).
    """
    if name not in EXTRA_METRICS:
        raise ValueError(f"unknown extra_metrics {name!r} (known: {', '.join(sorted(EXTRA_METRICS))})")
    fn, true = EXTRA_METRICS[name], split.labels.cpu().numpy()
    logits = subset_logits(method, split, batch_size) if logits is None else logits
    return {subset: fn(lg.argmax(1).cpu().numpy(), true) for subset, lg in logits.items()}
