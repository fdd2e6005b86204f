"""Prepared caches are checked against their content hash: cheaply at every load, fully by ``verify``.

``prepare`` records in ``meta.json`` the content hash (the second half of ``fingerprint``) and, under
``stamps``, the ``[inode, size, mtime_ns, ctime_ns]`` of every file the hash covers. At load
(:func:`check_cache`) the files are stat-ed: unchanged stamps (ctime cannot be set back by a user, and
``touch -r`` or ``cp -p`` change it) mean unchanged content, so nothing is read. A changed stamp means
the file was written, replaced or restored: the content hash is recomputed, and

* equal: the cache is intact (a file restored from a backup), the new stamps are recorded;
* different: :class:`CacheChangedError` naming the cache and saying to rerun ``prepare --force``;
  no run trains on it and no derived statistic is computed from it.

``python -m mmbench verify`` (:func:`verify_all`) recomputes every current cache's hash regardless.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Dict, List, Optional

from mmbench.prepare.cache import cache_root, content_hash, write_meta


# folder -> stamps whose content this process has hashed and found intact
_verified: Dict[str, Dict[str, List[int]]] = {}


class CacheChangedError(ValueError):
    """A prepared cache whose files no longer hold what ``prepare`` wrote."""


def hashed_files(meta: Dict) -> List[str]:
    """The files of a cache folder its content hash covers (:func:`mmbench.prepare.cache.content_hash`)."""
    return [f"{m}.npy" for m in meta["modalities"]] + ["labels.npy", "status.npy", "items.json"]


def stamps(folder: Path, meta: Dict) -> Dict[str, List[int]]:
    """``{file: [inode, size, mtime_ns, ctime_ns]}`` of every hashed file of ``folder``."""
    out = {}
    for name in hashed_files(meta):
        st = os.stat(folder / name)
        out[name] = [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
    return out


def _fix(meta: Dict) -> str:
    src = meta.get("settings", {}).get("src", "DIR")
    return f"run `python -m mmbench prepare {meta.get('name', '<name>')} --src {src} --force` to rebuild it"


def full_check(folder: Path, meta: Optional[Dict] = None) -> None:
    """Recompute the content hash of ``folder``; raise :class:`CacheChangedError` if it differs."""
    from mmbench.data.npy_check import check_npy

    meta = meta or json.loads((folder / "meta.json").read_text())
    for name in hashed_files(meta):
        if name.endswith(".npy"):
            check_npy(folder / name, fix=_fix(meta))
    expected = meta["fingerprint"].rsplit("-", 1)[1]
    try:
        got = content_hash(folder, list(meta["modalities"]))
    except OSError as err:
        raise CacheChangedError(f"prepared cache {str(folder)!r} cannot be read ({err}); {_fix(meta)}") from None
    if got != expected:
        raise CacheChangedError(f"prepared cache {str(folder)!r} changed since prepare wrote it (content hash {got}, "
                                f"expected {expected}): a file was edited or damaged; {_fix(meta)}, or restore the "
                                "files")


def check_cache(folder: Path, meta: Optional[Dict] = None) -> None:
    """The cheap check at load (module docstring): stat every hashed file; rehash only when one changed."""
    meta = meta or json.loads((folder / "meta.json").read_text())
    try:
        now = stamps(folder, meta)
    except OSError as err:
        raise CacheChangedError(f"prepared cache {str(folder)!r}: {err}; {_fix(meta)}") from None
    if meta.get("stamps") == now or _verified.get(str(folder)) == now:
        return
    full_check(folder, meta)  # written, replaced or restored since: the content decides
    _verified[str(folder)] = now  # a read-only cache (stamps not recordable) is hashed once per process
    try:  # intact: remember the new stamps, so the next load is cheap again (best effort: may be read-only)
        write_meta(folder, {**meta, "stamps": now})
    except OSError:
        pass


def verify_all(names: Optional[List[str]] = None, root: Optional[Path] = None) -> List[str]:
    """Full check of the current cache of every prepared data set (or of ``names``); one line each.

    Returns the lines; those of damaged caches start with ``"damaged"``.
    """
    from mmbench.prepare.cache import find_cache

    root = root or cache_root()
    names = names or sorted(p.name[: -len(".current")] for p in root.glob("*.current"))
    lines = []
    for name in names:
        try:
            folder = find_cache(name, root)
            meta = json.loads((folder / "meta.json").read_text())
            full_check(folder, meta)
            write_meta(folder, {**meta, "stamps": stamps(folder, meta)})
            lines.append(f"ok       {name}: {folder} (content hash {meta['fingerprint'].rsplit('-', 1)[1]})")
        except (ValueError, OSError) as err:
            lines.append(f"damaged  {name}: {err}")
    return lines
