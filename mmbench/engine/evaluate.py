"""Evaluation: predictions over a split, accuracy, macro-F1, per-subset metrics."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch

from mmbench.batching import SplitTensors, all_subsets, subset_name
from mmbench.methods.base import Method


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


def subset_logits(method: Method, split: SplitTensors, batch_size: int) -> Dict[str, torch.Tensor]:
    """Subset name -> fused logits ``[N, C]`` with only that subset present, for every non-empty subset."""
    return {name: predict_split(method, split, batch_size, mask) for name, mask in subset_masks(split.modalities).items()}


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
    out = {}
    for eta in rates:
        mask = torch.from_numpy(robustness_test_mask(len(split), split.modalities, eta, dataset, seed))
        out[f"{eta:g}"] = evaluate_logits(predict_split(method, split, batch_size, mask), split.labels, num_classes)["acc"]
    return out
