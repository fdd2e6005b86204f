"""Data sets: the registry, the embedded loaders and bring-your-own-data helpers.

Public API::

    load_dataset(name, **options) -> MultimodalDataset   # validated, cached per (name, options)
    list_datasets(pattern="*") -> list[str]
    dataset_info(name) -> str
    register_dataset(name, factory, description="")
    register_arrays(name, modalities, labels, ...)       # in-memory data
    load_folder(path) / save_folder(dataset, path)       # folder format; MMBENCH_DATA -> "user:<folder>"
    standardize(dataset) -> MultimodalDataset            # train-split statistics
    standardize(dataset, lazy=True)                      # per-read views: memory maps stay on disk
    validate(dataset)                                    # raises DatasetError
    make_synthetic(...), bayes_optimal_logits(...)       # Gaussian toy with a closed-form optimum

Embedded: mfeat-pix-mor, mfeat-fou-zer, mfeat-fou-zer-mor, mfeat-fac-kar, mfeat, watch, synthetic,
multi-view tables (:mod:`mmbench.data.tabular`): yeast-cc, yeast-ml, satellite, cells, spam, leaves, alzheimer, pd-speech,
synthetic-3, synthetic-av-paper (random, CREMA-D shapes); on-disk: avmnist; from a ``prepare`` cache
(:mod:`mmbench.data.prepared`): crema-d, crema-d-speaker, cmu-mosei, cmu-mosei-7, ave, kinetics-sounds,
vggsound, ucf101, casia-surf. Layout scanners of the latter five (list files -> paths, labels, splits;
nothing decoded): :mod:`mmbench.data.layouts`.
"""
from mmbench.data.base import SPLITS, ModalitySpec, MultimodalDataset
from mmbench.data.registry import (
    DATASETS,
    UnknownDatasetError,
    clear_cache,
    dataset_info,
    list_datasets,
    load_dataset,
    register_dataset,
)
from mmbench.data.select import select_modalities
from mmbench.data.splits import group_split, random_split, split_from_codes, stratified_split
from mmbench.data.standardize import standardize
from mmbench.data.validate import DatasetError, validate

# Importing the loaders registers them (nothing is read from disk until a load).
from mmbench.data import avmnist, mfeat, prepared, synthetic, synthetic_av, watch  # noqa: E402,F401  isort: skip
from mmbench.data import alzheimer, cells, leaves, pd_speech, satellite, spam, yeast_cc, yeast_ml  # noqa: E402,F401  isort: skip
from mmbench.segmentation import datasets as _segmentation_datasets  # noqa: E402,F401  (task="segmentation")
from mmbench.data.arrays import build_dataset  # noqa: E402
from mmbench.data.folder import load_folder, save_folder  # noqa: E402
from mmbench.data.synthetic import bayes_optimal_logits, make_synthetic  # noqa: E402
from mmbench.data.user import register_arrays, scan_env  # noqa: E402

__all__ = [
    "SPLITS", "ModalitySpec", "MultimodalDataset", "DATASETS", "UnknownDatasetError", "DatasetError",
    "clear_cache", "dataset_info", "list_datasets", "load_dataset", "register_dataset", "select_modalities",
    "group_split", "random_split", "split_from_codes", "stratified_split", "standardize", "validate",
    "bayes_optimal_logits", "make_synthetic", "build_dataset", "load_folder", "register_arrays", "save_folder",
    "scan_env",
]
