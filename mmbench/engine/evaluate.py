"""Evaluation: predictions over a split, accuracy, macro-F1, per-subset metrics (and a data set's extra metrics)."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from mmbench.batching import SplitTensors, all_subsets, subset_name
from mmbench.methods.base import Method
from mmbench.metrics import EXTRA_METRICS


@torch.no_grad()
def predict_split(method: Method, split: SplitTensors, batch_size: int, mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Fused logits ``[N, C]`` over a whole split; ``mask`` is ``[M]`` (same for all) or ``[N, M]``."""
    method.modules().eval()
    if mask is not None and mask.dim() == 1:
        mask = mask.unsqueeze(0).expand(len(split), -1)
    out = [method.predict(b) for b in split.iterate(batch_size, mask=None if mask is None else mask.to(split.device))]
    return torch.cat(out).float()


@torch.no_grad()
def unimodal_split(method: Method, split: SplitTensors, batch_size: int) -> List[torch.Tensor]:
    """Per-modality logits ``M x [N, C]`` on complete inputs."""
    method.modules().eval()
    per_batch = [method.unimodal_logits(b) for b in split.iterate(batch_size)]
    return [torch.cat([b[m] for b in per_batch]).float() for m in range(len(split.modalities))]


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> Dict[str, float]:
    """Accuracy and macro-F1 (classes absent from both labels and predictions are skipped)."""
    pred = logits.argmax(1).cpu().numpy()
    true = labels.cpu().numpy()
    acc = float((pred == true).mean()) if len(true) else float("nan")
    f1s = []
    for c in range(num_classes):
        tp = np.sum((pred == c) & (true == c))
        fp = np.sum((pred == c) & (true != c))
        fn = np.sum((pred != c) & (true == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"acc": acc, "f1": float(np.mean(f1s)) if f1s else float("nan")}


def subset_masks(modalities) -> Dict[str, torch.Tensor]:
    """Name -> ``[M]`` presence mask for every non-empty subset."""
    return {
        subset_name(s): torch.tensor([float(m in s) for m in modalities]) for s in all_subsets(list(modalities))
    }


def evaluate_subsets(method: Method, split: SplitTensors, num_classes: int, batch_size: int) -> Dict[str, Dict[str, float]]:
    """Metrics for every non-empty subset of modalities (all samples get the same subset)."""
    return {
        name: evaluate_logits(predict_split(method, split, batch_size, mask), split.labels, num_classes)
        for name, mask in subset_masks(split.modalities).items()
    }


def extra_subset_metrics(method: Method, split: SplitTensors, name: str,
                         batch_size: int) -> Dict[str, Dict[str, float]]:
    """A data set's extra metrics (``meta["extra_metrics"]``, e.g. ``"anti_spoofing"``) for every subset.

    Returns ``{subset name: {metric: value}}``, computed on the arg-max predictions.

    Raises:
        ValueError: ``name`` is not a known extra metric (the message lists the known ones).
    """
    if name not in EXTRA_METRICS:
        raise ValueError(f"unknown extra_metrics {name!r} (known: {', '.join(sorted(EXTRA_METRICS))})")
    fn, true = EXTRA_METRICS[name], split.labels.cpu().numpy()
    return {
        subset: fn(predict_split(method, split, batch_size, mask).argmax(1).cpu().numpy(), true)
        for subset, mask in subset_masks(split.modalities).items()
    }
