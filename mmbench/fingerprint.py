"""Content fingerprints: what a run's cached result depends on, as short SHA-256 digests.

* :func:`file_digest`: SHA-256 of a file's bytes, cached by ``(path, inode, size, mtime_ns, ctime_ns)``
  in a small JSON file (``$MMBENCH_CACHE/file-hashes.json``, default ``~/.cache/mmbench``), so a key
  costs one ``stat`` per file once a file was hashed. An edited file is hashed again even when the edit
  kept its size and modification time (``touch -r``, ``cp -p``, rsync, tar restore them): every write
  and every ``utime`` sets the change time ``ctime``, which no user call can set back, and a file
  replaced by another gets a new inode.
* :func:`dataset_digest`: SHA-256 of a loaded data set's arrays, labels, split and groups.
* :func:`digest`: SHA-256 of any JSON-able value (settings), order of dict keys ignored.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

import numpy as np

CACHE_ENV_VAR = "MMBENCH_CACHE"
_CHUNK = 1 << 20
RACY_NS = 2_000_000_000  # files modified less than this long ago are hashed but not cached

# In-process copy of the JSON cache: "<abs path>|<inode>|<size>|<mtime_ns>|<ctime_ns>" -> hex digest.
_memo: Optional[Dict[str, str]] = None
_memo_file: Optional[Path] = None


def cache_dir() -> Path:
    """``$MMBENCH_CACHE`` or ``~/.cache/mmbench``."""
    return Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "mmbench").expanduser()


def _cache_file() -> Path:
    return cache_dir() / "file-hashes.json"


def _load_memo() -> Dict[str, str]:
    global _memo, _memo_file
    path = _cache_file()
    if _memo is None or _memo_file != path:  # the env var may change between calls (tests)
        try:
            _memo = json.loads(path.read_text())
            if not isinstance(_memo, dict):
                _memo = {}
        except (OSError, ValueError):
            _memo = {}  # no cache yet, or a damaged one: hash again
        _memo_file = path
    return _memo


def _save_memo(memo: Dict[str, str]) -> None:
    """Best effort: a read-only home only costs re-hashing next time."""
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".file-hashes.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f)
        os.replace(tmp, path)
    except OSError:
        pass


def file_digest(path: os.PathLike | str) -> str:
    """SHA-256 (hex) of the file's content, from the cache when its inode, size, mtime and ctime are unchanged."""
    path = Path(path).resolve()
    st = path.stat()
    entry = f"{path}|{st.st_ino}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}"
    memo = _load_memo()
    if entry in memo:
        return memo[entry]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < RACY_NS:
        # Written just now: a second write within the file system's timestamp resolution could keep
        # size and mtime, so such a file is hashed again next time rather than cached (git's "racy" rule).
        return h.hexdigest()
    # drop stale entries of the same path so the cache does not grow with every edit
    # (and entries of the older "<path>|<size>|<mtime>" format, which nothing looks up any more)
    for old in [k for k in memo if k.rsplit("|", 4)[0] == str(path) or k.rsplit("|", 2)[0] == str(path)]:
        del memo[old]
    memo[entry] = h.hexdigest()
    _save_memo(memo)
    return memo[entry]


def files_digest(paths: Iterable[os.PathLike | str]) -> str:
    """One digest over several files: their names (not folders) and contents, in sorted name order."""
    items = sorted((Path(p).name, file_digest(p)) for p in paths)
    return digest(items)


def digest(value: Any) -> str:
    """SHA-256 (hex) of ``value`` as canonical JSON (sorted keys; non-JSON values by ``str``)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _update_array(h, name: str, arr: np.ndarray) -> None:
    arr = np.ascontiguousarray(arr)
    h.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode())
    h.update(arr.tobytes())


def dataset_digest(dataset) -> str:
    """SHA-256 (hex) of what training reads from a :class:`MultimodalDataset`: modality specs and
    arrays ``[N, ...]``, labels ``[N]``, number of classes, split indices (in order) and groups."""
    h = hashlib.sha256()
    h.update(json.dumps([[s.name, s.kind, list(s.shape)] for s in dataset.specs]).encode())
    h.update(f"classes={dataset.num_classes}".encode())
    for spec in dataset.specs:
        _update_array(h, spec.name, dataset.arrays[spec.name])
    _update_array(h, "labels", dataset.labels)
    for part in sorted(dataset.split):
        _update_array(h, f"split:{part}", dataset.split[part])
    if dataset.groups is not None:
        _update_array(h, "groups", dataset.groups)
    return h.hexdigest()
