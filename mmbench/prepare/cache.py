"""The on-disk cache ``prepare`` writes and the loaders read.

Layout, under ``$MMBENCH_CACHE`` (default ``~/.cache/mmbench``)::

    <name>-<settings hash>/
        settings.json     {"name", "version", "src", "settings", "hash"}: what the hash is of
        items.json        [{"id", "label", "split", "group", "stamp"}] in row order; stamp: [size, mtime]
                          of the item's source files (a changed file is prepared again)
        <modality>.npy    float32 [N, *shape], np.lib.format.open_memmap, written row by row
        labels.npy        int64 [N]
        status.npy        uint8 [N]: 0 to do, 1 done, 2 skipped (flushed regularly: the resume point)
        skipped.json      {id: [reason, detail]} for status 2
        meta.json         written last, when every item is done: class names, specs, counts, the
                          skipped report and ``fingerprint`` (its presence marks the cache complete)
    <name>.current        the folder name of the last completed prepare of <name>: what
                          ``--dataset <name>`` reads

The settings hash covers the preparer's name and version, the resolved source folder and every
setting, so a changed setting (or another source) gets a new folder, never a silent reuse.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from mmbench.prepare.base import PreparedCache
from mmbench.results_store import write_json_atomic, write_text_atomic

ENV_VAR = "MMBENCH_CACHE"
STATUS_PENDING, STATUS_DONE, STATUS_SKIPPED = 0, 1, 2


def cache_root() -> Path:
    """``$MMBENCH_CACHE`` or ``~/.cache/mmbench``."""
    return Path(os.environ.get(ENV_VAR) or Path.home() / ".cache" / "mmbench").expanduser()


def settings_record(name: str, version: int, src: Path, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The ``settings.json`` content, with ``hash``: sha256 (12 hex) of everything else in it."""
    record = {"name": name, "version": version, "src": str(Path(src).expanduser().resolve()),
              "settings": dict(sorted(settings.items()))}
    blob = json.dumps(record, sort_keys=True, default=str)
    return {**record, "hash": hashlib.sha256(blob.encode()).hexdigest()[:12]}


def cache_folder(name: str, settings_hash: str, root: Optional[Path] = None) -> Path:
    return (root or cache_root()) / f"{name}-{settings_hash}"


def pointer_path(name: str, root: Optional[Path] = None) -> Path:
    return (root or cache_root()) / f"{name}.current"


def content_hash(folder: Path, modalities: List[str]) -> str:
    """sha256 (16 hex) of the written arrays, labels, status and the items' ids, labels, splits and
    groups (not the files' timestamps: the same data prepared elsewhere has the same hash)."""
    digest = hashlib.sha256()
    for fname in [f"{m}.npy" for m in modalities] + ["labels.npy", "status.npy"]:
        digest.update(fname.encode())
        with open(folder / fname, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 24), b""):  # 16 MiB at a time
                digest.update(chunk)
    rows = [{k: v for k, v in row.items() if k != "stamp"} for row in json.loads((folder / "items.json").read_text())]
    digest.update(json.dumps(rows, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def mark_current(name: str, folder: Path) -> None:
    write_text_atomic(pointer_path(name, folder.parent), folder.name + "\n")


def find_cache(name: str, root: Optional[Path] = None) -> Path:
    """The folder ``--dataset <name>`` reads: the last completed prepare of ``name``.

    Raises:
        FileNotFoundError: no completed cache, saying to run ``prepare`` and naming the expected folder.
    """
    root = root or cache_root()
    how = f"run `python -m mmbench prepare {name} --src DIR` first"
    pointer = pointer_path(name, root)
    if pointer.exists():
        folder = root / pointer.read_text().strip()
        if (folder / "meta.json").exists():
            return folder
        raise FileNotFoundError(f"{name}: the cache {str(folder)!r} named in {str(pointer)!r} is missing or "
                                f"incomplete; {how} (it resumes an interrupted prepare)")
    partial = sorted(p.name for p in root.glob(f"{name}-*") if p.is_dir())
    hint = f" (incomplete, interrupted: {', '.join(partial)}; rerun prepare to resume)" if partial else ""
    raise FileNotFoundError(f"{name}: no prepared cache under {str(root)!r} (${ENV_VAR}); {how}: it writes "
                            f"{str(root / (name + '-<settings hash>'))!r}{hint}")


def read_cache(folder: Path) -> PreparedCache:
    """A completed cache folder as read-only memmaps (nothing is loaded until indexed)."""
    from mmbench.data.npy_check import check_npy

    meta = json.loads((folder / "meta.json").read_text())
    items = json.loads((folder / "items.json").read_text())
    fix = f"run `python -m mmbench prepare {meta.get('name', '<name>')} --src DIR --force` to write it again"
    for name in [f"{m}.npy" for m in meta["modalities"]] + ["labels.npy", "status.npy"]:
        check_npy(folder / name, fix=fix)  # a truncated memmap: an error naming the file, not mmap's
    status = np.load(folder / "status.npy")
    arrays = {m: np.load(folder / f"{m}.npy", mmap_mode="r") for m in meta["modalities"]}
    return PreparedCache(
        folder=folder, arrays=arrays, labels=np.load(folder / "labels.npy"),
        ids=[it["id"] for it in items], splits=np.array([it["split"] for it in items], dtype=object),
        groups=np.array([it["group"] for it in items], dtype=object), ok=status == STATUS_DONE, meta=meta,
    )


def cache_fingerprint(name: str) -> Optional[str]:
    """``"<settings hash>-<content hash>"`` of the cache ``--dataset <name>`` reads, for the run key.

    ``name`` is a prepare name (``crema-d``) or any data set registered from it (``crema-d-speaker``);
    ``None`` for a data set that is not prepared from disk or not prepared yet.
    """
    from mmbench.prepare.base import PREPARERS

    for prep_name, preparer in PREPARERS.items():
        if name == prep_name or name in preparer.datasets:
            try:
                folder = find_cache(prep_name)
            except FileNotFoundError:
                return None
            return json.loads((folder / "meta.json").read_text())["fingerprint"]
    return None


def write_meta(folder: Path, meta: Dict[str, Any]) -> None:
    write_json_atomic(folder / "meta.json", meta)
