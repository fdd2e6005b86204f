"""``list`` and ``show`` answer at once: their printed output, memoised on everything it depends on.

What these commands print comes from the registries (methods, data sets, patterns, suites), which
live in modules that import torch (over a second of CPU). Their output is a pure function of the
command line, the installed sources and the data sets found through the environment, so it is
stored under ``$MMBENCH_CACHE/cli/`` keyed by a digest of exactly that:

* the arguments;
* every file of the ``mmbench``, ``kernels`` and ``baselines`` packages (path, size, modification
  time): editing a method or a suite makes a new key;
* every ``MMBENCH_*`` environment variable, and the entries (name, modification time) of the
  folders that register data sets: ``$MMBENCH_DATA`` folders and the prepared caches in
  ``$MMBENCH_CACHE`` (preparing a data set makes a new key).

A miss runs the command as before and stores its output if it succeeded; errors are never stored.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Callable, List, Sequence

PACKAGES = ("mmbench", "kernels", "baselines")
OWN_FOLDERS = {"cli", "ext"}  # this memo and the C++ extension builds: not data sets


def cache_root() -> Path:
    """``$MMBENCH_CACHE`` or ``~/.cache/mmbench`` (the prepared data sets' root too)."""
    return Path(os.environ.get("MMBENCH_CACHE") or Path.home() / ".cache" / "mmbench").expanduser()


def _tree(root: Path) -> List[tuple]:
    out = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            st = os.stat(os.path.join(folder, name))
            out.append((os.path.relpath(os.path.join(folder, name), root), st.st_size, st.st_mtime_ns))
    return out


def _entries(folder: Path, depth: int = 2) -> List[tuple]:
    """(name, mtime) of a folder's entries, ``depth`` levels down; [] if it does not exist."""
    try:
        items = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return []
    out = []
    for entry in items:
        if entry.name in OWN_FOLDERS and folder == cache_root():
            continue
        out.append((entry.name, entry.stat().st_mtime_ns))
        if depth > 1 and entry.is_dir():
            out.append((entry.name, _entries(Path(entry.path), depth - 1)))
    return out


def memo_key(argv: Sequence[str]) -> str:
    here = Path(__file__).resolve().parent.parent
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("MMBENCH_")}
    data_folders = [p for p in os.environ.get("MMBENCH_DATA", "").split(os.pathsep) if p]
    payload = {
        "argv": list(argv), "python": sys.version, "env": env,
        "sources": {pkg: _tree(here / pkg) for pkg in PACKAGES},
        "data": [_entries(Path(p)) for p in data_folders], "cache": _entries(cache_root()),
    }
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:32]


def memoized(argv: Sequence[str], command: Callable[[], int]) -> int:
    """Print ``command``'s stored output for ``argv`` if there is one, else run it (and store it on success)."""
    path = cache_root() / "cli" / f"{memo_key(argv)}.txt"
    try:
        sys.stdout.write(path.read_text())
        return 0
    except OSError:
        pass
    buffer = io.StringIO()
    try:
        with redirect_stdout(buffer):
            status = command()
    finally:
        text = buffer.getvalue()
        sys.stdout.write(text)  # what it printed before an error too
    if status == 0:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(text)
            os.replace(tmp, path)
        except OSError:
            pass  # a read-only cache: answer, just not faster next time
    return status
