"""Shared test helpers: a tiny real-shaped data set and quick in-process training.

``toy_dataset`` has a strong vector modality ``a``, a weak series modality ``b`` and (optionally) a
third image modality ``c``, so every encoder kind and imbalance are exercised in a few seconds.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np
import torch

from mmbench.config import TRAIN_DEFAULTS
from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.engine.trainer import build_method, fit_and_test
from mmbench.methods import get_method
from mmbench.methods.base import Method, RunInfo
from mmbench.patterns import get_pattern


def toy_dataset(n: int = 300, num_classes: int = 4, three: bool = False, seed: int = 0) -> MultimodalDataset:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, n)
    means = rng.normal(size=(num_classes, 10)) * 2.0
    a = (rng.normal(size=(n, 10)) + means[y]).astype(np.float32)
    b = (rng.normal(size=(n, 3, 16)) + 0.5 * y[:, None, None] / num_classes).astype(np.float32)
    specs = [ModalitySpec("a", "vector", (10,)), ModalitySpec("b", "series", (3, 16))]
    arrays = {"a": a, "b": b}
    if three:
        arrays["c"] = (rng.normal(size=(n, 1, 6, 5)) + 0.8 * y[:, None, None, None] / num_classes).astype(np.float32)
        specs.append(ModalitySpec("c", "image", (1, 6, 5)))
    perm = rng.permutation(n)
    k1, k2 = int(0.6 * n), int(0.8 * n)
    split = {"train": perm[:k1], "val": perm[k1:k2], "test": perm[k2:]}
    return MultimodalDataset("toy3" if three else "toy", specs, arrays, y.astype(np.int64), num_classes, split)


def run_info(data: MultimodalDataset, epochs: int = 2, batch_size: int = 32, seed: int = 0, pattern: str = "complete") -> RunInfo:
    return RunInfo(data.name, tuple(data.specs), data.num_classes, len(data.split["train"]), seed, epochs, batch_size, pattern)


def make_method(name: str, data: MultimodalDataset, epochs: int = 2, seed: int = 0, hp: Optional[Dict[str, Any]] = None, **train) -> Method:
    """Build a registered method on ``data`` with the engine's defaults (and overrides)."""
    cls = get_method(name)
    cfg = {**TRAIN_DEFAULTS, "epochs": epochs, "batch_size": 32, **cls.train_overrides, **train}
    torch.manual_seed(seed)
    return build_method(cls, data, cfg, {**cls.hparams, **(hp or {})}, run_info(data, epochs, cfg["batch_size"], seed))


def quick_fit(name: str, data: MultimodalDataset, epochs: int = 2, pattern: str = "complete", seed: int = 0,
              hp: Optional[Dict[str, Any]] = None, **train) -> Dict[str, Any]:
    """Train ``name`` in-process for a few epochs; teachers are trained in-process too (no cache)."""
    cls = get_method(name)
    cfg = {**TRAIN_DEFAULTS, "epochs": epochs, "batch_size": 32, **cls.train_overrides, **train}
    method = make_method(name, data, epochs, seed, hp, **train)

    def teacher_fn(teacher_name: str, teacher_hp: Dict[str, Any]) -> Method:
        teacher = make_method(teacher_name, data, epochs, seed, teacher_hp)
        fit_and_test(teacher, data, get_pattern("complete"), {**cfg, **get_method(teacher_name).train_overrides},
                     run_info(data, epochs, cfg["batch_size"], seed), teacher_fn=teacher_fn)
        return teacher

    out = fit_and_test(method, data, get_pattern(pattern), cfg, run_info(data, epochs, cfg["batch_size"], seed, pattern),
                       teacher_fn=teacher_fn)
    out["method"] = method
    return out


def tiny_av_dataset(n_train: int = 4, seed: int = 0, num_classes: int = 2) -> MultimodalDataset:
    """Paper-shaped but tiny: a spectrogram image ``audio`` [1, 32, 32] and a 2-frame RGB ``visual``
    [2, 3, 32, 32] (kind video); ``n_train`` training samples, 2 validation and 2 test samples."""
    rng = np.random.default_rng(seed)
    n = n_train + 4
    y = (np.arange(n) % num_classes).astype(np.int64)
    audio = (rng.normal(size=(n, 1, 32, 32)) + y[:, None, None, None]).astype(np.float32)
    visual = (rng.normal(size=(n, 2, 3, 32, 32)) - y[:, None, None, None, None]).astype(np.float32)
    specs = [ModalitySpec("audio", "image", (1, 32, 32)), ModalitySpec("visual", "video", (2, 3, 32, 32))]
    idx = np.arange(n)
    split = {"train": idx[:n_train], "val": idx[n_train : n_train + 2], "test": idx[n_train + 2 :]}
    return MultimodalDataset("tiny-av", specs, {"audio": audio, "visual": visual}, y, num_classes, split)
