"""A preparer whose listing is a layout scanner's (:mod:`mmbench.data.layouts`), and the image readers
the field's data sets share beyond :mod:`mmbench.prepare.frontends`.

The scanners parse list files and find paths; this turns a :class:`~mmbench.data.layouts.Layout`
into the framework's :class:`Listing`, and turns the list split (plus a seeded, class-stratified val
carve when the lists have no val) into the train / val / test indices of a prepared cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

import numpy as np

from mmbench.data.layouts import Layout
from mmbench.data.splits import stratified_split
from mmbench.prepare import frontends
from mmbench.prepare.base import Item, Listing, PreparedCache, Preparer, SkipItem


class ScannedPreparer(Preparer):
    """List items with ``scanner(src, **scan settings)``; split by the lists, carving val from train.

    Subclasses set ``scanner`` and ``scan_settings`` (the setting names the scanner takes); settings
    ``val_fraction`` (when the lists have no val list) are read back from the cache's metadata.
    """

    scanner: ClassVar[Optional[Callable[..., Layout]]] = None
    scan_settings: ClassVar[Sequence[str]] = ()
    # Fixed scanner arguments: val_fraction=0, because the val carve happens in split(), with the
    # loader's split_seed (as for CREMA-D), not at prepare time.
    scan_fixed: ClassVar[Dict[str, Any]] = {"val_fraction": 0.0}
    # A data set's extra evaluation metrics (``mmbench.metrics.EXTRA_METRICS``), or None.
    extra_metrics: ClassVar[Optional[str]] = None

    def requires(self, listing: Listing) -> List[str]:
        return ["PIL"]  # every field data set here has image files

    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        kwargs = {**{k: settings[k] for k in self.scan_settings}, **self.scan_fixed}
        layout = type(self).scanner(src, **kwargs)
        items = [Item(c.clip_id, c.label, c.split, "", {k: str(p) for k, p in c.paths.items()}) for c in layout.clips]
        return Listing(items, list(layout.classes), list(layout.skipped), {"scan": layout.notes})

    def split(self, variant: str, cache: PreparedCache, seed: int) -> Dict[str, np.ndarray]:
        ok = cache.ok
        parts = {s: np.flatnonzero(ok & (cache.splits == s)) for s in ("train", "val", "test")}
        for s in ("train", "test"):
            if parts[s].size == 0:
                raise ValueError(f"{self.name}: no prepared sample is in the {s} list of {cache.folder} "
                                 f"(see the skipped report in its meta.json)")
        if parts["val"].size == 0:
            fraction = float(cache.meta["settings"]["settings"].get("val_fraction", 0.1))
            inner = stratified_split(cache.labels[parts["train"]], (1 - fraction, fraction, 0.0), seed=seed)
            parts["val"] = np.sort(parts["train"][inner["val"]])
            parts["train"] = np.sort(parts["train"][inner["train"]])
        return parts


def spaced(count: int, n: int) -> List[int]:
    """``n`` indices spread evenly over ``count`` frames, ``seg * i`` with ``seg = count // n`` (the
    OGM-GE AVE loader's ``frame_0000{seg*i+1}``, 0-based here); repeats the last when ``count < n``."""
    seg = max(1, count // n)
    return [min(seg * i, count - 1) for i in range(n)]


def centred(count: int, n: int) -> List[int]:
    """The centre frame of each of ``n`` equal segments of ``count`` frames (TSN's test-time sampling);
    ``n=1`` is the middle frame."""
    return [min(int((i + 0.5) * count / n), count - 1) for i in range(n)]


def middle(count: int, n: int) -> List[int]:
    """``n`` consecutive indices centred in ``count`` frames (a stacked-flow window); clamped at the ends."""
    start = max(0, (count - n) // 2)
    return [min(start + i, count - 1) for i in range(n)]


def frame_files(folder: Path, order: str = "sorted") -> List[Path]:
    """:func:`mmbench.prepare.frontends.frame_files` (by name, or the released loaders' ``os.listdir``
    order), with ``SkipItem("missing frames")`` when there are none."""
    files = frontends.frame_files(folder, order)
    if not files:
        raise SkipItem("missing frames", f"{folder}: no .jpg/.png frames")
    return files


def read_image(path: Path, size: int, mode: str) -> np.ndarray:
    """One image as float32 ``[channels, size, size]`` in [0, 1]: ``mode`` ``"RGB"`` (3) or ``"L"`` (1),
    bilinear resize (``size=0``: the decoded size, no resize). ``SkipItem("unreadable image")`` naming
    the file when Pillow cannot decode it."""
    frontends.require("PIL")  # names the extra ("video") when Pillow is missing
    from PIL import Image as pil
    try:
        with pil.open(path) as image:
            converted = image.convert(mode)
            if size:
                converted = converted.resize((size, size), pil.BILINEAR)
            x = np.asarray(converted, dtype=np.float32) / 255.0
    except (OSError, ValueError) as err:
        raise SkipItem("unreadable image", f"{path}: {err}") from None
    return x[None] if x.ndim == 2 else x.transpose(2, 0, 1)


def stacked_frames(folder: Path, indices: Callable[[int, int], List[int]], n: int, size: int, mode: str,
                   normalize: bool = False, order: str = "sorted") -> np.ndarray:
    """Frames ``indices(count, n)`` of ``folder`` (in ``order``, :func:`frame_files`) stacked on the channel
    axis: float32 ``[channels * n, size, size]``; ImageNet-normalised when ``normalize`` (RGB only)."""
    files = frame_files(folder, order)
    out = []
    for i in indices(len(files), n):
        x = read_image(files[i], size, mode)
        if normalize:
            x = (x - frontends.IMAGENET_MEAN[:, None, None]) / frontends.IMAGENET_STD[:, None, None]
        out.append(x.astype(np.float32))
    return np.concatenate(out, axis=0)
