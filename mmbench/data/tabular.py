"""Loader of the embedded multi-view tables (``files/<name>.npz`` written by ``scripts/make_<name>.py``).

Every such data set is a set of feature vectors per view (``kind="vector"``, small MLP encoders), one
label per row, and optionally the data's own split and its own gaps.

Split: the data's own split where the file has one (its test rows are the test set; val is a
stratified ``val_fraction`` of its train rows, seeded by ``split_seed``); otherwise stratified
60/20/20 with ``split_seed``. Rows are independent samples (for pd-speech: subjects).

Gaps (NaN in the source): a view counts as *missing* for a row when more than ``missing_above``
(default 25%) of its values are NaN there; those rows get a 0 in the data set's natural presence mask
(:attr:`MultimodalDataset.presence`, used by the ``natural`` pattern); a row that would so lose every
view keeps its least incomplete one. Every remaining NaN (also the
values of a view counted missing) is imputed with the train split's column mean, so the arrays are
finite and the ``complete`` pattern sees the imputed values.

The build script's per-view accuracies (5-fold logistic regression, :mod:`scripts.tabular_build`)
are kept in ``meta["view_acc"]`` / ``meta["view_bacc"]`` / ``meta["all_acc"]`` / ``meta["all_bacc"]``
for the data-set card (:mod:`mmbench.data.card`).
"""
from __future__ import annotations

import functools
from typing import Callable, Dict, Optional

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.files_path import data_file
from mmbench.data.registry import register_dataset
from mmbench.data.splits import check_every_class_in_every_split, stratified_split
from mmbench.fingerprint import digest, file_digest

# Bump when load_tabular's code changes the data it returns from the same file (it enters the run keys).
LOADER_VERSION = 1
DEFAULT_MISSING_ABOVE = 0.25


@functools.lru_cache(maxsize=32)
def read_tables(filename: str) -> Dict[str, np.ndarray]:
    """Every array of ``files/<filename>`` (read once per process; treat as read-only)."""
    with np.load(data_file(filename)) as z:
        return {k: z[k] for k in z.files}


def tabular_split(labels: np.ndarray, own: Optional[np.ndarray], split_seed: int,
                  val_fraction: float) -> Dict[str, np.ndarray]:
    """The data's own train/test codes (0/2) with a stratified val cut from train, else stratified 60/20/20."""
    if own is None:
        return stratified_split(labels, seed=split_seed)
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    train = np.flatnonzero(own == 0)
    inner = stratified_split(labels[train], (1 - val_fraction, val_fraction, 0.0), seed=split_seed)
    return {"train": train[inner["train"]], "val": train[inner["val"]], "test": np.flatnonzero(own == 2)}


def natural_presence(raw: Dict[str, np.ndarray], views, missing_above: float) -> Optional[np.ndarray]:
    """``[N, V]`` float32: 0 where more than ``missing_above`` of a view's values are NaN; ``None`` if no gap."""
    if not 0 <= missing_above < 1:
        raise ValueError(f"missing_above is a fraction in [0, 1), got {missing_above}")
    fraction = np.stack([np.isnan(raw[f"x_{v}"]).mean(1) for v in views], axis=1)  # [N, V] share of NaN
    presence = fraction <= missing_above
    # a row that would lose every view keeps its least incomplete one (imputed): a sample needs a modality
    empty = np.flatnonzero(~presence.any(1))
    presence[empty, fraction[empty].argmin(1)] = True
    return None if presence.all() else presence.astype(np.float32)


def impute_train_means(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """``x`` with each NaN replaced by its column's mean over the train rows (0 if none is observed)."""
    if not np.isnan(x).any():
        return x
    with np.errstate(all="ignore"):
        means = np.nanmean(np.where(np.isnan(x[train]), np.nan, x[train]), axis=0)
    means = np.where(np.isfinite(means), means, 0.0).astype(np.float32)
    return np.where(np.isnan(x), means, x).astype(np.float32)


def load_tabular(filename: str, name: str, source: str, split_seed: int = 0, val_fraction: float = 0.2,
                 missing_above: float = DEFAULT_MISSING_ABOVE) -> MultimodalDataset:
    """The views of ``files/<filename>`` as a :class:`MultimodalDataset` (see the module docstring).

    Returns:
        arrays ``{view: float32 [N, D_v]}``, labels int64 ``[N]``, ``presence`` float32 ``[N, V]`` or ``None``.
    """
    raw = read_tables(filename)
    views = [str(v) for v in raw["views"]]
    labels = raw["labels"].astype(np.int64)
    split = tabular_split(labels, raw.get("split"), split_seed, val_fraction)
    check_every_class_in_every_split(labels, split, f"data set {name!r}")
    presence = natural_presence(raw, views, missing_above)
    arrays = {v: impute_train_means(raw[f"x_{v}"], split["train"]) for v in views}
    meta = {
        "view_acc": dict(zip(views, raw["view_acc"].tolist())),
        "view_bacc": dict(zip(views, raw["view_bacc"].tolist())),
        "all_acc": float(raw["all_acc"]), "all_bacc": float(raw["all_bacc"]),
        "own_split": "split" in raw, "missing_above": missing_above, "file": filename,
        "features": {v: [str(f) for f in raw[f"features_{v}"]] for v in views},
    }
    return MultimodalDataset(
        name=name, specs=[ModalitySpec(v, "vector", (arrays[v].shape[1],)) for v in views],
        arrays=arrays, labels=labels, num_classes=int(raw["class_names"].size), split=split,
        class_names=[str(c) for c in raw["class_names"]], source=source, meta=meta, presence=presence,
    )


def register_tabular(name: str, filename: str, source: str, description: str, group: Optional[str] = None,
                     license_file: Optional[str] = None) -> Callable[..., MultimodalDataset]:
    """Register ``name`` as :func:`load_tabular` of ``filename``, fingerprinted by the file's hash.

    ``license_file``: the licence and attribution beside the data (``files/<name>.LICENSE.txt`` by default).
    """
    def factory(split_seed: int = 0, val_fraction: float = 0.2, missing_above: float = DEFAULT_MISSING_ABOVE,
                name: str = name) -> MultimodalDataset:
        return load_tabular(filename, name, source, split_seed, val_fraction, missing_above)

    def fingerprint(**options) -> str:
        return digest({"file": file_digest(data_file(filename)), "options": options, "loader": LOADER_VERSION})

    factory.license_file = license_file or filename.replace(".npz", ".LICENSE.txt")
    factory.source = source
    register_dataset(name, factory, description=description, fingerprint=fingerprint, group=group)
    return factory
