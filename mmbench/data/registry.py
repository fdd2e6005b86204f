"""The data-set registry: ``register_dataset``, ``load_dataset``, ``list_datasets``, ``dataset_info``.

A data set is registered as a *factory*: a function of keyword options returning a
:class:`MultimodalDataset`. Nothing is read from disk until ``load_dataset`` is called, so listing is
free. Every load goes through :func:`validate`, and loads are cached per (name, options) in-process,
because a grid calls ``load_dataset`` once per run on the same few data sets.

The cached object is shared: treat it as read-only (``standardize`` and ``select_modalities`` return
new objects).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, List, Tuple

from mmbench.data.base import MultimodalDataset
from mmbench.data.select import select_modalities
from mmbench.data.validate import validate
from mmbench.registry import Registry, UnknownNameError

Factory = Callable[..., MultimodalDataset]

DATASETS: Registry[Factory] = Registry("data set")
# Hooks run before each lookup (the MMBENCH_DATA scan registers user folders through one), so a
# folder added, or an env var set, after import is still found.
_BEFORE_LOOKUP: List[Callable[[], None]] = []


class UnknownDatasetError(UnknownNameError):
    """An unknown data-set name (a ``KeyError``); the message lists close matches and the known names."""


def register_dataset(name: str, factory: Factory, description: str = "", overwrite: bool = False) -> Factory:
    """Register ``factory(**options) -> MultimodalDataset`` under ``name``.

    Args:
        name: registry name (``"mfeat-pix-mor"``, ``"user:mydata"``).
        factory: called with the options given to :func:`load_dataset`.
        description: one line for ``mmbench list datasets``.
        overwrite: replace an existing entry (and drop its cached loads) instead of raising ``ValueError``.
    """
    if overwrite and name in DATASETS:
        # Registry has no removal; the entry is replaced in place and stale cached loads are dropped.
        DATASETS._entries.pop(name)
        DATASETS._descriptions.pop(name, None)
        _load_cached.cache_clear()
    return DATASETS.register(name, factory, description=description)


def _run_hooks() -> None:
    for hook in _BEFORE_LOOKUP:
        hook()


def _factory(name: str) -> Factory:
    _run_hooks()
    try:
        return DATASETS.get(name)
    except UnknownNameError as err:
        raise UnknownDatasetError(str(err)) from None


def _freeze(value: Any) -> Any:
    """Options -> a hashable key (lists become tuples, dicts sorted item tuples)."""
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    hash(value)  # raises TypeError for anything else unhashable (e.g. numpy arrays)
    return value


def _thaw(key: Tuple) -> dict:
    return {k: v for k, v in key}


@functools.lru_cache(maxsize=64)
def _load_cached(name: str, key: Tuple) -> MultimodalDataset:
    return _load(name, _thaw(key))


def _load(name: str, options: dict) -> MultimodalDataset:
    options = dict(options)
    modalities = options.pop("modalities", None)
    dataset = validate(_factory(name)(**options))
    if modalities is not None:
        dataset = select_modalities(dataset, modalities)
    return dataset


def load_dataset(name: str, **options: Any) -> MultimodalDataset:
    """Load (or fetch from the in-process cache) the data set ``name``, validated.

    Args:
        name: a registered name; see :func:`list_datasets`.
        **options: passed to the factory (``split_seed=1``, ``views="fou,pix"``, ``window=64`` ...).
            ``modalities="a,b"`` (any data set) keeps only those modalities, in that order.

    Raises:
        UnknownDatasetError: (a ``KeyError``) naming the unknown data set, close matches and the known ones.
        ValueError: an unknown modality in ``modalities`` (or a loader's own option), naming it.
        DatasetError: the loader produced an inconsistent data set.
    """
    _factory(name)  # fail on a typo before touching the cache
    try:
        key = tuple(sorted((k, _freeze(v)) for k, v in options.items()))
    except TypeError:  # unhashable option (an array): load without caching
        return _load(name, options)
    return _load_cached(name, key)


def list_datasets(pattern: str = "*") -> List[str]:
    """Registered names matching ``pattern`` (fnmatch wildcards, comma-separated alternatives), sorted.

    An exact name without wildcards must exist (a typo is an error, not an empty list).
    """
    _run_hooks()
    try:
        return DATASETS.names(pattern)
    except UnknownNameError as err:
        raise UnknownDatasetError(str(err)) from None


def dataset_info(name: str) -> str:
    """The one-line description of ``name`` (raises :class:`UnknownDatasetError` if unknown)."""
    _factory(name)
    return DATASETS.describe(name)


def clear_cache() -> None:
    """Drop every cached load (after editing a user folder on disk, say)."""
    _load_cached.cache_clear()
