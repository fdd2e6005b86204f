"""Bring your own data: register in-memory arrays, or folders listed in ``MMBENCH_DATA``.

In memory::

    register_arrays("mine", {"audio": a, "video": v}, labels)      # then load_dataset("mine")

On disk: every sub-folder (holding a ``labels.npy``, format in :mod:`mmbench.data.folder`) of the
directories in ``MMBENCH_DATA`` (``os.pathsep`` separated, ``:`` on Linux) is registered as
``user:<folder>``, re-scanned at each lookup.

Worker processes. The grid runs in *spawned* processes, which start with a fresh registry, so a
data set living only in this process's memory would be unknown there. ``register_arrays``
therefore also writes the data set to a private temporary folder (removed at exit) and records
``name -> folder`` in the env var ``MMBENCH_REGISTERED_ARRAYS``, which child processes inherit and
read at their first lookup.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

from mmbench.data.arrays import SplitArg, build_dataset
from mmbench.data.base import MultimodalDataset
from mmbench.data.folder import folder_fingerprint, load_folder, save_folder
from mmbench.data.registry import _BEFORE_LOOKUP, DATASETS, register_dataset, unregister_dataset
from mmbench.fingerprint import dataset_digest

FINGERPRINT_FILE = "fingerprint.txt"  # in a spilled folder: the parent's fingerprint of the in-memory data

ENV_VAR = "MMBENCH_DATA"
ARRAYS_ENV_VAR = "MMBENCH_REGISTERED_ARRAYS"
_spill_dir: Optional[Path] = None
_local_arrays: set = set()  # names registered from memory in this process (not re-read from disk)


def _spill(dataset: MultimodalDataset, content: str) -> None:
    """Save ``dataset`` where spawned children can read it, and tell them through the environment."""
    global _spill_dir
    if _spill_dir is None:
        _spill_dir = Path(tempfile.mkdtemp(prefix="mmbench-arrays-"))
        atexit.register(shutil.rmtree, _spill_dir, True)
    entries = json.loads(os.environ.get(ARRAYS_ENV_VAR) or "{}")
    folder = _spill_dir / f"{len(entries)}-{re.sub(r'[^A-Za-z0-9_.-]', '_', dataset.name)}"
    if folder.exists():
        shutil.rmtree(folder)
    save_folder(dataset, folder)
    # Children must compute the same run keys as the parent, which hashed the arrays in memory.
    (folder / FINGERPRINT_FILE).write_text(content)
    entries[dataset.name] = str(folder)
    os.environ[ARRAYS_ENV_VAR] = json.dumps(entries)


def register_arrays(name: str, modalities: Dict[str, np.ndarray], labels: np.ndarray, num_classes: Optional[int] = None,
                    split: SplitArg = None, kinds: Optional[Dict[str, str]] = None, split_seed: int = 0,
                    class_names: Optional[Sequence[str]] = None, groups: Optional[np.ndarray] = None,
                    description: str = "", overwrite: bool = True, share: bool = True) -> MultimodalDataset:
    """Register a data set made from in-memory arrays; ``load_dataset(name)`` then returns it.

    Args:
        name: registry name.
        modalities: name -> ``[N, ...]`` array, in modality order. The kind follows from the
            per-sample number of dimensions: 1 -> vector ``(D,)``, 2 -> series ``(C, T)``, 3 -> image ``(C, H, W)``.
        labels: int ``[N]`` in ``[0, num_classes)``.
        num_classes: C (default ``max(labels) + 1``).
        split: ``None`` (stratified 60/20/20 with ``split_seed``), ``"random"`` (plain random
            60/20/20), a dict ``{"train", "val", "test"} -> indices``, or per-sample codes ``[N]`` (0/1/2 or names).
        kinds: override the inferred kind per modality; an image given as ``[N, H, W]`` or a series
            as ``[N, T]`` gets a channel axis (``[N, 1, H, W]``, ``[N, 1, T]``).
        split_seed: seed of the generated split.
        overwrite: re-registering a name replaces it (and drops its cached load), handy in notebooks.
        share: also write it to a temporary folder so spawned worker processes can load it (module docstring).

    Returns:
        the validated data set (validated now, so a bad array fails here, not in a later run).
    """
    if name in DATASETS and name not in _local_arrays and name not in _SHARED_REGISTERED:
        raise ValueError(f"data set {name!r} is already registered (not from arrays); choose another name")
    dataset = build_dataset(name, modalities, labels, num_classes, split, kinds, split_seed, class_names, groups)
    content = dataset_digest(dataset)  # hashed once here; also what spawned children will use
    register_dataset(name, lambda: dataset, fingerprint=lambda: content, description=description or
                     f"user arrays: {', '.join(f'{s.name} {s.kind} {s.shape}' for s in dataset.specs)}; "
                     f"{len(dataset)} samples, {dataset.num_classes} classes", overwrite=overwrite)
    _local_arrays.add(name)
    if share:
        _spill(dataset, content)
    return dataset


# name -> folder registered from MMBENCH_DATA, so a re-scan only touches what changed
_ENV_REGISTERED: Dict[str, Path] = {}


def scan_env() -> None:
    """Register every data sub-folder of the ``MMBENCH_DATA`` directories as ``user:<folder>``."""
    wanted: Dict[str, Path] = {}
    for entry in filter(None, os.environ.get(ENV_VAR, "").split(os.pathsep)):
        base = Path(entry).expanduser()
        if not base.is_dir():
            warnings.warn(f"{ENV_VAR}: {str(base)!r} is not a directory; skipped", stacklevel=3)
            continue
        for sub in sorted(p for p in base.iterdir() if p.is_dir() and (p / "labels.npy").exists()):
            wanted.setdefault(f"user:{sub.name}", sub.resolve())  # the first directory listed wins
    for name in [n for n in _ENV_REGISTERED if n not in wanted]:  # folder or env entry gone
        unregister_dataset(name)
        del _ENV_REGISTERED[name]
    for name, folder in wanted.items():
        if _ENV_REGISTERED.get(name) != folder:
            register_dataset(name, lambda split_seed=0, _f=folder, _n=name: load_folder(_f, split_seed, _n),
                             description=f"user folder {folder}", overwrite=True,
                             fingerprint=lambda split_seed=0, _f=folder: folder_fingerprint(_f, split_seed))
            _ENV_REGISTERED[name] = folder


_SHARED_REGISTERED: Dict[str, str] = {}


def scan_shared_arrays() -> None:
    """In a child process: register the data sets a parent registered from memory
    (listed in ``MMBENCH_REGISTERED_ARRAYS``)."""
    entries = json.loads(os.environ.get(ARRAYS_ENV_VAR) or "{}")
    for name, folder in entries.items():
        if name in _local_arrays or _SHARED_REGISTERED.get(name) == folder:
            continue
        register_dataset(name, lambda _f=folder, _n=name: load_folder(_f, name=_n),
                         description=f"arrays registered by a parent process ({folder})", overwrite=True,
                         fingerprint=lambda _f=folder: (Path(_f) / FINGERPRINT_FILE).read_text())
        _SHARED_REGISTERED[name] = folder


_BEFORE_LOOKUP.extend([scan_env, scan_shared_arrays])
