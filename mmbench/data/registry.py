"""The data-set registry: ``register_dataset``, ``load_dataset``, ``list_datasets``, ``dataset_info``,
``dataset_fingerprint``.

A data set is registered as a *factory*: a function of keyword options returning a
:class:`MultimodalDataset`. Nothing is read from disk until ``load_dataset`` is called, so listing is
free. Every load goes through :func:`validate`, and loads are cached per (name, options) in-process,
because a grid calls ``load_dataset`` once per run on the same few data sets.

Each entry may declare a *fingerprint*: a function of the same options returning a string that
changes whenever the loaded data would (the embedded loaders hash their ``.npz`` file, user folders
every file they read, a loader with a prepared cache the cache's settings). Without one, the
fingerprint is a hash of the loaded arrays. Run keys include it (:mod:`mmbench.run_key`), so a
changed data set is never answered from the cache.

The cached object is shared: treat it as read-only (``standardize`` and ``select_modalities`` return
new objects).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional, Tuple

from mmbench.data.base import MultimodalDataset
from mmbench.data.select import select_modalities
from mmbench.data.validate import validate
from mmbench.fingerprint import dataset_digest, digest
from mmbench.registry import Registry, UnknownNameError

Factory = Callable[..., MultimodalDataset]

DATASETS: Registry[Factory] = Registry("data set")
# Hooks run before each lookup (the MMBENCH_DATA scan registers user folders through one), so a
# folder added, or an env var set, after import is still found.
_BEFORE_LOOKUP: List[Callable[[], None]] = []
# name -> fingerprint(**options) -> str, for entries that declare one (see the module docstring)
_FINGERPRINTS: Dict[str, Callable[..., str]] = {}
# name -> independence group: data sets that share samples (the two mfeat view sets) share a group and
# count once in comparisons across data sets (mmbench.report). Undeclared: the name is its own group.
_GROUPS: Dict[str, str] = {}
# name -> task, for entries that are not classification (``"segmentation"``: mmbench.segmentation)
TASKS = ("classification", "segmentation")
_TASKS: Dict[str, str] = {}
# id(loaded data set) -> (the data set, its content digest): hashing the arrays once per loaded object
_CONTENT_DIGESTS: Dict[int, Tuple[MultimodalDataset, str]] = {}


class UnknownDatasetError(UnknownNameError):
    """An unknown data-set name (a ``KeyError``); the message lists close matches and the known names."""


def register_dataset(name: str, factory: Factory, description: str = "", overwrite: bool = False,
                     fingerprint: Optional[Callable[..., str]] = None, group: Optional[str] = None,
                     task: str = "classification") -> Factory:
    """Register ``factory(**options) -> MultimodalDataset`` under ``name``.

    Args:
        name: registry name (``"mfeat-pix-mor"``, ``"user:mydata"``).
        factory: called with the options given to :func:`load_dataset`.
        description: one line for ``mmbench list datasets``.
        overwrite: replace an existing entry (and drop its cached loads) instead of raising ``ValueError``.
        fingerprint: ``fingerprint(**options) -> str``, cheap, changing whenever ``factory(**options)``
            would return different data (e.g. a hash of the files it reads and of its own settings).
            Default: a hash of the loaded data set's arrays (:func:`mmbench.fingerprint.dataset_digest`).
        group: independence group; data sets drawn from the same samples (or sharing a view) declare
            one group and count once across data sets. Default: the name itself.
        task: ``"classification"`` (a :class:`MultimodalDataset`, the default) or ``"segmentation"``
            (a :class:`mmbench.segmentation.dataset.SegmentationDataset`, run by the segmentation path,
            which must declare ``fingerprint``).
    """
    if task not in TASKS:
        raise ValueError(f"data set {name!r}: unknown task {task!r}; one of {', '.join(TASKS)}")
    if task != "classification" and fingerprint is None:
        raise ValueError(f"data set {name!r}: a {task} data set declares its fingerprint")
    if overwrite and name in DATASETS:
        unregister_dataset(name)
    DATASETS.register(name, factory, description=description)
    if fingerprint is not None:
        _FINGERPRINTS[name] = fingerprint
    if group is not None:
        _GROUPS[name] = group
    if task != "classification":  # classification is the default and is not stored
        _TASKS[name] = task
    return factory


def unregister_dataset(name: str) -> None:
    """Remove ``name`` (if registered) with its fingerprint, and drop every cached load."""
    # Registry has no removal; the entry is dropped in place and stale cached loads with it.
    DATASETS._entries.pop(name, None)
    DATASETS._descriptions.pop(name, None)
    _FINGERPRINTS.pop(name, None)
    _GROUPS.pop(name, None)
    _TASKS.pop(name, None)
    _load_cached.cache_clear()
    _CONTENT_DIGESTS.clear()


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
def _load_cached(name: str, key: Tuple, declared: Optional[str]) -> MultimodalDataset:
    """``declared``: the entry's declared fingerprint, so an edited file is read again, not served from
    this cache (the run key would otherwise name the new data while training used the old)."""
    return _load(name, _thaw(key))


def _load(name: str, options: dict) -> MultimodalDataset:
    options = dict(options)
    modalities = options.pop("modalities", None)
    if name in _TASKS:  # another task's data set checks itself (its own type, not a MultimodalDataset)
        if modalities is not None:
            raise ValueError(f"data set {name!r} ({_TASKS[name]}) has no modalities option")
        return _factory(name)(**options).validated()
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
    return _load_cached(name, key, _declared_fingerprint(name, options))


def _declared_fingerprint(name: str, options: dict) -> Optional[str]:
    hook = _FINGERPRINTS.get(name)
    return None if hook is None else hook(**{k: v for k, v in options.items() if k != "modalities"})


def dataset_fingerprint(name: str, **options: Any) -> str:
    """A digest (hex) that changes whenever ``load_dataset(name, **options)`` would return other data.

    The entry's declared fingerprint if it has one (with the ``modalities`` selection added), else a
    hash of the loaded arrays, computed once per loaded object.
    """
    _factory(name)  # an unknown name fails here, naming it
    declared = _declared_fingerprint(name, options)
    if declared is not None:
        return digest({"name": name, "declared": declared, "modalities": options.get("modalities")})
    dataset = load_dataset(name, **options)
    cached = _CONTENT_DIGESTS.get(id(dataset))
    if cached is None or cached[0] is not dataset:
        cached = (dataset, dataset_digest(dataset))
        if len(_CONTENT_DIGESTS) > 64:  # bounded like the load cache
            _CONTENT_DIGESTS.clear()
        _CONTENT_DIGESTS[id(dataset)] = cached
    return digest({"name": name, "content": cached[1]})


def list_datasets(pattern: str = "*") -> List[str]:
    """Registered names matching ``pattern`` (fnmatch wildcards, comma-separated alternatives), sorted.

    An exact name without wildcards must exist (a typo is an error, not an empty list).
    """
    _run_hooks()
    try:
        return DATASETS.names(pattern)
    except UnknownNameError as err:
        raise UnknownDatasetError(str(err)) from None


def dataset_group(name: str) -> str:
    """The independence group of ``name`` (its declared group, else the name itself).

    Unknown names (a run folder from another installation) are their own group rather than an error,
    so reports over stored results never fail on a data set this installation lacks.
    """
    _run_hooks()
    return _GROUPS.get(name, name)


def dataset_task(name: str) -> str:
    """``"classification"`` or ``"segmentation"``: which path runs ``name``.

    An unknown name is ``"classification"``: the classification path then reports it as it always did
    (an error naming close matches, or a failed run), so dispatching on the task never changes that.
    """
    _run_hooks()
    return _TASKS.get(name, "classification")


def dataset_info(name: str) -> str:
    """The one-line description of ``name`` (raises :class:`UnknownDatasetError` if unknown)."""
    _factory(name)
    return DATASETS.describe(name)


def clear_cache() -> None:
    """Drop every cached load (after editing a user folder on disk, say)."""
    _load_cached.cache_clear()
    _CONTENT_DIGESTS.clear()
