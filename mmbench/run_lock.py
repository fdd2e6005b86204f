"""One process trains a run at a time, across every ``all`` sharing a results folder.

Two ``python -m mmbench all`` on one ``--out`` (two terminals, a job array without ``--shard``) used
to train every run twice. Each run is now trained under an exclusive, non-blocking ``flock`` on
``<out>/cache/locks/run-<key>.lock``: a process that finds the lock taken skips the run (another is
training it; its result appears in ``runs/`` when done), and one that gets the lock first checks
whether the run was stored meanwhile. A lock dies with its process (flock), so a killed ``all``
leaves nothing to clean up.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from typing import Iterator

from mmbench.results_store import ResultsStore


@contextmanager
def run_lock(store: ResultsStore, key: str) -> Iterator[bool]:
    """Yields ``True`` holding the run's lock, or ``False`` when another process holds it."""
    path = store.lock_path(f"run-{key}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
