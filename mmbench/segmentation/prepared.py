"""Segmentation data sets prepared from disk: the per-pixel-label variant of :mod:`mmbench.prepare`.

A :class:`SegmentationPreparer` is an ordinary :class:`~mmbench.prepare.base.Preparer`: ``prepare NAME
--src DIR`` runs it through :func:`mmbench.prepare.run.prepare`, so it gets the same cache folder
(``$MMBENCH_CACHE/<name>-<settings hash>/``), resume, worker pool, skipped-file report, content hash,
integrity check at load and ``verify`` as the classification data sets. The classification cache
stores per sample only float32 arrays plus one int label, and that is enough here:

* the modalities written are ``rgb`` ``[3, H, W]`` (in [0, 1]), ``depth`` ``[1, H, W]`` (metres, 0 =
  invalid) and ``pixel_labels`` ``[H, W]``: the per-pixel class in ``[0, C)`` or the void index 255,
  stored as float32 like every cached array (exact for integers up to 2**24);
* the per-sample ``label`` (``labels.npy``) is unused and written as 0;
* the item's ``split`` holds ``train`` or ``test`` (``""``: in neither, not loaded).

Why not a cache of its own: the Preparer carries per-pixel labels as one more array without any
change, so the segmentation caches get the classification ones' integrity machinery for free. The
only change outside this package is in :func:`mmbench.data.prepared.register_prepared`, which
registers a preparer whose ``task`` is ``"segmentation"`` with that task and :meth:`load` as the
factory; the fingerprint is the same ``prepared_fingerprint`` (``<settings hash>-<content hash>``
of the cache), so runs are keyed by the cache's content.

The validation split is not made here: the segmentation runner carves it from train
(:func:`mmbench.segmentation.dataset.carve_validation`, ``val_fraction``), so no data set selects on test.

Images are resized at prepare time to the ``height`` x ``width`` settings (0 and 0 keep the source
size): RGB with PIL's bilinear filter, depth and labels with nearest neighbour (so an invalid depth or
a void label is never blended into its neighbours, as ESANet's preparation resizes them).
"""
from __future__ import annotations

from typing import Any, ClassVar, Dict, List, Tuple

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.prepare.base import PreparedCache, Preparer, SkipItem
from mmbench.segmentation.dataset import SegmentationDataset
from mmbench.segmentation.labels import VOID_INDEX

PIXEL_LABELS = "pixel_labels"  # not "labels": the cache's labels.npy holds the per-sample label
SPLITS = ("train", "test")


def target_size(settings: Dict[str, Any], native: Tuple[int, int]) -> Tuple[int, int]:
    """``(H, W)`` the frames are written at: the settings', or ``native`` when both are 0."""
    h, w = int(settings["height"]), int(settings["width"])
    if (h == 0) != (w == 0) or h < 0 or w < 0:
        raise ValueError(f"height={h}, width={w}: give both as positive sizes, or both 0 to keep the "
                         f"source size {native[0]} x {native[1]}")
    return (h, w) if h else tuple(native)


def resize_frame(rgb: np.ndarray, depth: np.ndarray, labels: np.ndarray, size: Tuple[int, int]
                 ) -> Dict[str, np.ndarray]:
    """One frame as the cache stores it.

    Args:
        rgb: uint8 ``[h, w, 3]``; depth: float ``[h, w]``; labels: integer ``[h, w]`` (classes or void).
        size: ``(H, W)`` to write.

    Returns:
        ``{"rgb": [3, H, W] in [0, 1], "depth": [1, H, W], "pixel_labels": [H, W]}``, float32.
    """
    from PIL import Image

    h, w = size
    if labels.max(initial=0) > 255 or labels.min(initial=0) < 0:
        raise ValueError(f"labels must lie in [0, 255] before resizing; got [{labels.min()}, {labels.max()}]")
    if rgb.shape[:2] != (h, w):
        rgb = np.asarray(Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8)).resize((w, h), Image.BILINEAR))
        depth = np.asarray(Image.fromarray(np.ascontiguousarray(depth, dtype=np.float32))
                           .resize((w, h), Image.NEAREST))
        labels = np.asarray(Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8)).resize((w, h), Image.NEAREST))
    return {"rgb": (np.asarray(rgb, dtype=np.float32) / 255.0).transpose(2, 0, 1),
            "depth": np.asarray(depth, dtype=np.float32)[None],
            PIXEL_LABELS: np.asarray(labels, dtype=np.float32)}


class SegmentationPreparer(Preparer):
    """A preparer whose items are RGB-D frames with per-pixel labels (module docstring).

    Subclasses set ``name``, ``datasets`` (one name -> ``"official"``), ``class_names``, ``defaults``
    (with ``height`` and ``width``), and implement ``list_items``, ``process`` (returning
    :func:`resize_frame`'s dict) and :meth:`frame_size`.
    """

    task: ClassVar[str] = "segmentation"
    class_names: ClassVar[Tuple[str, ...]] = ()

    def frame_size(self, settings: Dict[str, Any]) -> Tuple[int, int]:
        """``(H, W)`` of the written frames under ``settings``."""
        raise NotImplementedError

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        h, w = self.frame_size(settings)
        return [ModalitySpec("rgb", "image", (3, h, w)), ModalitySpec("depth", "image", (1, h, w)),
                ModalitySpec(PIXEL_LABELS, "image", (h, w))]

    def split(self, variant: str, cache: PreparedCache, seed: int) -> Dict[str, np.ndarray]:
        """The list files' train and test frames that were prepared (the validation carve is the runner's)."""
        if variant != "official":
            raise ValueError(f"{self.name}: unknown split variant {variant!r}; only 'official'")
        return {part: np.flatnonzero((cache.splits == part) & cache.ok).astype(np.int64) for part in SPLITS}

    def load(self, name: str) -> SegmentationDataset:
        """The data set ``name`` from the current cache: read-only float32 memmaps, no copy."""
        from mmbench.prepare.cache import find_cache, read_cache
        from mmbench.prepare.integrity import check_cache

        folder = find_cache(self.name)
        check_cache(folder)  # stat only, unless a file changed since prepare: then its content decides
        cache = read_cache(folder)
        split = self.split(self.datasets[name], cache, 0)
        for part, rows in split.items():
            if rows.size == 0:
                raise ValueError(f"{name}: the prepared cache {folder} has no {part} frames (every one was skipped "
                                 f"or the list files name none); see the skipped report in its meta.json")
        meta = cache.meta
        return SegmentationDataset(
            name, cache.arrays["rgb"], cache.arrays["depth"], cache.arrays[PIXEL_LABELS], split,
            len(meta["class_names"]), tuple(meta["class_names"]), VOID_INDEX,
            meta={"fingerprint": meta["fingerprint"], "cache": str(folder), "settings": meta["settings"],
                  "source": f"{self.name} prepared from {meta['settings']['src']} into {folder}"})


def skip_unless(condition: bool, reason: str, detail: str) -> None:
    """Raise :class:`SkipItem` (one bad frame is reported, the prepare goes on) unless ``condition``."""
    if not condition:
        raise SkipItem(reason, detail)
