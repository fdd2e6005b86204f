"""Data sets read from a ``prepare`` cache: ``crema-d``, ``cmu-mosei``, ... (see :mod:`mmbench.prepare`).

Each preparer's ``datasets`` are registered at the first data-set lookup (a registry hook, so that
importing :mod:`mmbench.data` does not import :mod:`mmbench.prepare`, which imports it). A loader
reads the last completed cache of its preparer as read-only memmaps; the split comes from the
preparer's ``split`` variant. A missing cache is a ``FileNotFoundError`` saying to run ``prepare``.

Each entry declares its fingerprint for the run key (:func:`prepared_fingerprint`): the cache's
``<settings hash>-<content hash>``, the split variant and the split seed, read from ``meta.json``, so
the arrays (GBs for CREMA-D) are never hashed again per run.
"""
from __future__ import annotations

from typing import List

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.registry import _BEFORE_LOOKUP, DATASETS, register_dataset

_registered: List[str] = []


def load_prepared(name: str, split_seed: int = 0) -> MultimodalDataset:
    """The data set ``name`` (e.g. ``crema-d-speaker``) from its preparer's current cache.

    Returns:
        arrays: modality -> read-only float32 memmap ``[N, *shape]`` (N = every listed item; rows of
        skipped items are zeros and in no split); labels int64 ``[N]``; split from the preparer's
        variant with ``split_seed``; ``meta["fingerprint"]`` the cache's fingerprint.
    """
    from mmbench.prepare.cache import find_cache, read_cache

    from mmbench.prepare.integrity import check_cache

    preparer = _preparer_of(name)
    folder = find_cache(preparer.name)
    check_cache(folder)  # stat only, unless a file changed since prepare: then its content decides
    cache = read_cache(folder)
    split = {k: np.asarray(v, dtype=np.int64) for k, v in preparer.split(preparer.datasets[name], cache,
                                                                          split_seed).items()}
    meta = cache.meta
    return MultimodalDataset(
        name=name, specs=[ModalitySpec(s["name"], s["kind"], tuple(s["shape"])) for s in meta["specs"]],
        arrays=dict(cache.arrays), labels=cache.labels.astype(np.int64), num_classes=len(meta["class_names"]),
        split=split, class_names=list(meta["class_names"]),
        source=f"{preparer.name} prepared from {meta['settings']['src']} into {cache.folder}",
        meta={"fingerprint": meta["fingerprint"], "cache": str(cache.folder), "settings": meta["settings"],
              # every row was checked finite as prepare wrote it: validate does not rescan GBs per run
              "checked_finite": True, "rgb_modalities": list(preparer.rgb_modalities),
              # RGB modality -> original (H, W) when the training crop is drawn in that geometry (CREMA-D)
              "crop_frame_size": preparer.crop_frame_size(meta),
              # the data set's extra evaluation metrics (mmbench.metrics), e.g. CASIA-SURF's anti-spoofing rates
              **({"extra_metrics": preparer.extra_metrics} if getattr(preparer, "extra_metrics", None) else {})},
    )


def _preparer_of(name: str):
    from mmbench.prepare.base import PREPARERS

    return next(p for _, p in PREPARERS.items() if name in p.datasets)


def prepared_fingerprint(name: str, split_seed: int = 0) -> str:
    """``"<settings hash>-<content hash>:<split variant>:split_seed=<k>"`` of the cache ``name`` reads.

    Raises:
        FileNotFoundError: no completed cache (the message says to run ``prepare``).
    """
    import json

    from mmbench.prepare.cache import find_cache

    from mmbench.prepare.integrity import check_cache

    preparer = _preparer_of(name)
    folder = find_cache(preparer.name)
    check_cache(folder)  # a cache edited since prepare has no valid fingerprint: an error, not a stale key
    meta = json.loads((folder / "meta.json").read_text())
    return f"{meta['fingerprint']}:{preparer.datasets[name]}:split_seed={split_seed}"


def register_prepared() -> None:
    """Register every preparer's data sets (once each)."""
    from mmbench.prepare import load_builtin
    from mmbench.prepare.base import PREPARERS

    load_builtin()
    for _, preparer in PREPARERS.items():
        for name in preparer.datasets:
            if name in _registered or name in DATASETS:
                continue
            task = getattr(preparer, "task", "classification")  # segmentation: mmbench.segmentation.prepared
            factory = ((lambda split_seed=0, _n=name: load_prepared(_n, split_seed)) if task == "classification"
                       else (lambda _n=name, _p=preparer: _p.load(_n)))
            register_dataset(name, factory, task=task,
                             description=preparer.dataset_descriptions.get(name, preparer.description),
                             fingerprint=lambda split_seed=0, _n=name: prepared_fingerprint(_n, split_seed))
            _registered.append(name)


_BEFORE_LOOKUP.append(register_prepared)
