"""The on-disk folder format for a user's data set.

``<root>/<name>/``::

    labels.npy          int [N], classes 0..C-1
    <modality>.npy      one per modality, [N, ...]: [N, D] vector, [N, C, T] series, [N, C, H, W] image
    split.npy           optional, [N]: 0/1/2 or "train"/"val"/"test" (-1: in no split);
                        default: stratified 60/20/20 with split_seed
    groups.npy          optional, [N] int group (subject) ids
    meta.json           optional: {"modalities": [order], "kinds": {name: kind}, "class_names": [...],
                                   "num_classes": C, "source": "..."}
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import List, Optional, Union

import numpy as np

from mmbench.data.arrays import build_dataset
from mmbench.data.base import MultimodalDataset
from mmbench.fingerprint import digest, files_digest

_RESERVED = {"labels", "split", "groups"}


def load_folder(path: Union[str, os.PathLike], split_seed: int = 0, name: Optional[str] = None) -> MultimodalDataset:
    """Read a data set in the folder format (module docstring) from ``path``.

    Raises:
        FileNotFoundError: naming the path, if the folder or its ``labels.npy`` is missing.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data folder {str(root)!r} does not exist")
    if not (root / "labels.npy").exists():
        raise FileNotFoundError(f"data folder {str(root)!r} has no labels.npy "
                                "(expected labels.npy + <modality>.npy ...)")
    meta = json.loads((root / "meta.json").read_text()) if (root / "meta.json").exists() else {}
    found = sorted(p.stem for p in root.glob("*.npy") if p.stem not in _RESERVED)
    order = list(meta.get("modalities") or found)
    missing = [m for m in order if m not in found]
    if missing:
        raise FileNotFoundError(f"data folder {str(root)!r}: meta.json lists modality {missing[0]!r} but "
                                f"{missing[0]}.npy is missing")
    if not order:
        raise FileNotFoundError(f"data folder {str(root)!r} has no <modality>.npy files besides labels.npy")
    modalities = {m: _load_npy(root / f"{m}.npy", numeric=True) for m in order}
    split = _load_npy(root / "split.npy") if (root / "split.npy").exists() else None
    groups = _load_npy(root / "groups.npy", numeric=True) if (root / "groups.npy").exists() else None
    labels = _load_npy(root / "labels.npy", numeric=True)
    try:
        return build_dataset(name or root.name, modalities, labels, meta.get("num_classes"), split, meta.get("kinds"),
                             split_seed, meta.get("class_names"), groups,
                             source=meta.get("source") or f"user folder {root}")
    except ValueError as err:  # same type (DatasetError stays one), message naming the folder
        raise type(err)(f"data folder {str(root)!r}: {err}") from None


def _load_npy(path: Path, numeric: bool = False) -> np.ndarray:
    """``np.load`` of one file of a folder, with errors that name the file.

    ``allow_pickle`` stays False: a folder never needs to run code to be read, so an array of Python
    objects (or a file that is not a ``.npy`` array at all) is refused, with the file named.
    """
    with open(path, "rb") as handle:
        if handle.read(6) != b"\x93NUMPY":  # np.load would take it for a pickle and say only that
            raise ValueError(f"{path} is not a readable .npy array: it lacks the .npy header (a text or CSV file? "
                             "write it with np.save)")
    from mmbench.data.npy_check import check_npy

    check_npy(path, fix="write it again with np.save")  # a damaged header must not allocate GBs unnamed
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        if "pickle" in str(err).lower():
            raise ValueError(f"{path} holds Python objects (a pickled or object array), which are not read "
                             "for safety; save a numeric array (np.save(path, x.astype(np.float32)))") from None
        raise ValueError(f"{path} is not a readable .npy array: {err}") from None
    except (OSError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npy array ({type(err).__name__}: {err})") from None
    if numeric and array.dtype.kind not in "biuf":
        raise ValueError(f"{path} holds {array.dtype} values, not numbers; save a numeric array "
                         "(labels as integers 0..C-1)")
    return array


def folder_files(path: Union[str, os.PathLike]) -> List[Path]:
    """Every file :func:`load_folder` may read in ``path``: the ``.npy`` files and ``meta.json``."""
    root = Path(path).expanduser()
    return sorted(p for p in root.iterdir() if p.is_file() and (p.suffix == ".npy" or p.name == "meta.json"))


def folder_fingerprint(path: Union[str, os.PathLike], split_seed: int = 0) -> str:
    """Content hash of every file the folder's data set is read from, and ``split_seed``; cheap once the
    files were hashed (cached by size and mtime, :func:`mmbench.fingerprint.file_digest`)."""
    return digest({"files": files_digest(folder_files(path)), "split_seed": split_seed})


def save_folder(dataset: MultimodalDataset, path: Union[str, os.PathLike]) -> Path:
    """Write ``dataset`` in the folder format (split as 0/1/2 codes, -1 for none); returns the folder path."""
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    np.save(root / "labels.npy", dataset.labels)
    for spec in dataset.specs:
        np.save(root / f"{spec.name}.npy", dataset.arrays[spec.name])
    codes = np.full(len(dataset), -1, dtype=np.int64)  # -1: a sample in no split
    for k, part in enumerate(("train", "val", "test")):
        codes[dataset.split[part]] = k
    np.save(root / "split.npy", codes)
    if dataset.groups is not None:
        np.save(root / "groups.npy", dataset.groups)
    meta = {"modalities": dataset.modalities, "kinds": {s.name: s.kind for s in dataset.specs},
            "num_classes": dataset.num_classes, "source": dataset.source}
    if dataset.class_names is not None:
        meta["class_names"] = list(dataset.class_names)
    (root / "meta.json").write_text(json.dumps(meta, indent=1))
    return root
