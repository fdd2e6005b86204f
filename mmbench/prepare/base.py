"""What a data set's preparer is: the items it finds on disk and how one item becomes arrays.

A preparer (one per on-disk data set, e.g. CREMA-D) declares

* ``name``: the ``prepare NAME``; ``defaults``: every preprocessing setting with its default;
* ``modalities(settings)``: the per-sample :class:`ModalitySpec` of every array it writes;
* ``list_items(src, settings)``: a :class:`Listing` of the samples under ``src`` (labels, split
  codes from the list files, groups), in a fixed order; a missing folder, list file or a label not
  in the class list raises here, naming the file;
* ``process(item, settings)``: one item -> ``{modality: float32 array of spec.shape}``; runs in a
  worker process; a bad file raises :class:`SkipItem` with the reason (never stops the prepare);
* ``datasets``: registered data-set name -> split variant, and ``split(variant, cache, seed)``: the
  train / val / test indices of a variant over the prepared samples.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Tuple

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.registry import Registry


class SkipItem(Exception):
    """One item cannot be prepared (unreadable, empty, ...): ``reason`` is the short category shown
    in the skipped-file report; ``str(err)`` the detail naming the file."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(detail or reason)
        self.reason = reason


@dataclass
class Item:
    """One sample found on disk.

    Attributes:
        id: unique id within the data set (a clip name, a video id).
        label: class index in ``[0, C)``.
        split: ``"train" | "val" | "test"`` from the data set's list files, or ``""`` when unlisted.
        group: the group the sample belongs to (speaker, subject) for group-disjoint splits, or ``""``.
        paths: modality or role -> file or folder to read (strings, so an item pickles cheaply).
        payload: anything else the preparer's ``process`` needs (arrays for in-process preparers).
    """

    id: str
    label: int
    split: str = ""
    group: str = ""
    paths: Dict[str, str] = field(default_factory=dict)
    payload: Any = None


@dataclass
class Listing:
    """What ``list_items`` found: the items in order, the class names, files skipped while listing
    (``(path, reason)``), and notes for the cache's metadata (layout detected, list files read)."""

    items: List[Item]
    class_names: List[str]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    notes: Dict[str, Any] = field(default_factory=dict)


@dataclass
class PreparedCache:
    """A finished cache as the loaders see it (see :mod:`mmbench.prepare.cache`).

    Attributes:
        folder: the cache folder.
        arrays: modality -> read-only memmap ``[N, *shape]`` float32 (rows of skipped items are zeros).
        labels: int64 ``[N]``; ids: ``[N]`` item ids; splits: ``[N]`` list split codes (``""`` unlisted);
        groups: ``[N]`` group names; ok: bool ``[N]``, False for skipped items (in no split).
        meta: the cache's ``meta.json`` (class names, specs, settings, fingerprint, skipped report).
    """

    folder: Path
    arrays: Dict[str, np.ndarray]
    labels: np.ndarray
    ids: List[str]
    splits: np.ndarray
    groups: np.ndarray
    ok: np.ndarray
    meta: Dict[str, Any]


class Preparer(abc.ABC):
    """One on-disk data set's decoding and preprocessing (module docstring)."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    # Bump when the arrays written for the same settings change (a new cache, never a silent reuse).
    version: ClassVar[int] = 1
    defaults: ClassVar[Dict[str, Any]] = {}
    # False: items are processed in the main process (their payload is already in memory).
    parallel: ClassVar[bool] = True
    # registered data-set name -> split variant passed to ``split``
    datasets: ClassVar[Dict[str, str]] = {}
    # registered data-set name -> one line for ``mmbench list datasets``
    dataset_descriptions: ClassVar[Dict[str, str]] = {}
    # modalities holding RGB frames stacked as ``[3 * n_frames, H, W]``: what ``augment=true`` crops and
    # flips (mmbench.streaming.paper_augmentation); spectrograms, optical flow, depth and IR are not RGB
    rgb_modalities: ClassVar[Tuple[str, ...]] = ()

    def settings(self, overrides: Dict[str, Any]) -> Dict[str, Any]:
        """The defaults updated with ``overrides``; an unknown key is an error listing the known ones."""
        unknown = sorted(set(overrides) - set(self.defaults))
        if unknown:
            raise ValueError(f"prepare {self.name}: unknown setting {unknown[0]!r}; settings: "
                             + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()))
        return {**self.defaults, **{k: self._coerce(k, v) for k, v in overrides.items()}}

    def _coerce(self, key: str, value: Any) -> Any:
        """``value`` as the type of the default (``"16"`` -> 16 for an int setting), so the settings
        hash does not depend on how a value was spelled."""
        default = self.defaults[key]
        try:
            if isinstance(default, bool):
                if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
                    return value.lower() in ("true", "1")
                if isinstance(value, (bool, int)) and value in (0, 1):
                    return bool(value)
                raise ValueError
            if isinstance(default, int):
                if float(value) != int(float(value)):
                    raise ValueError
                return int(float(value))
            if isinstance(default, float):
                return float(value)
            return str(value)
        except (TypeError, ValueError):
            raise ValueError(f"prepare {self.name}: setting {key}={value!r} is not a valid "
                             f"{type(default).__name__} (default {default!r})") from None

    def crop_frame_size(self, meta: Dict[str, Any]) -> Dict[str, Tuple[int, int]]:
        """RGB modality -> ``(H_0, W_0)`` of the original frames, for those whose training crop is drawn
        in the original geometry (:mod:`mmbench.frame_crop`), from a cache's ``meta.json`` (settings and
        notes); empty: crops drawn on the stored frames."""
        return {}

    def requires(self, listing: Listing) -> List[str]:
        """Modules ``process`` imports for these items (checked before any work, so a missing decoder
        is one clear error naming its extra, not one skipped file per item)."""
        return []

    @abc.abstractmethod
    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        """The per-sample spec of every array written, in modality order."""

    @abc.abstractmethod
    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        """The samples under ``src`` (raises ``FileNotFoundError`` / ``ValueError`` naming the file)."""

    @abc.abstractmethod
    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        """``{modality: float32 [*spec.shape]}`` for one item; raise :class:`SkipItem` for a bad file."""

    @abc.abstractmethod
    def split(self, variant: str, cache: PreparedCache, seed: int) -> Dict[str, np.ndarray]:
        """Train / val / test int64 indices of ``variant``, over ok samples only."""


PREPARERS: Registry[Preparer] = Registry("prepared data set")


def register_preparer(preparer: Preparer) -> Preparer:
    """Register ``preparer`` under ``preparer.name`` (its ``datasets`` are registered as data sets by
    :mod:`mmbench.data.prepared`)."""
    PREPARERS.register(preparer.name, preparer, description=preparer.description)
    return preparer
