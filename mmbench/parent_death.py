"""Worker processes die with their parent, so a killed ``all`` or ``prepare`` leaves no orphans.

A pool worker whose parent is SIGKILLed (or dies of SIGBUS) is re-parented to PID 1, finishes its
queue and then blocks for ever, holding the resource tracker alive with it. :func:`die_with_parent`,
run as a pool's initializer, prevents that:

* on Linux, ``prctl(PR_SET_PDEATHSIG, SIGTERM)``: the kernel sends SIGTERM to the worker the moment
  its parent exits (SIGTERM, not SIGKILL: the grid's worker unwinds its run and removes temporary files);
* elsewhere (or if ``prctl`` is unavailable), a daemon thread that checks every second whether the
  parent is still the process that started the worker, and ends the worker when it is not.

Either way the worker first checks that its parent is still alive: a parent that died between
spawning it and the ``prctl`` call would otherwise never signal it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WATCH_SECONDS = 1.0


def _set_pdeathsig(sig: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:  # pragma: no cover - only where prctl is unavailable
    while os.getppid() == parent_pid:
        time.sleep(WATCH_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(128 + signal.SIGTERM)  # SIGTERM was handled but did not end the process


def die_with_parent(parent_pid: int) -> None:
    """End this process when ``parent_pid`` (the process that started it) exits."""
    if not _set_pdeathsig(signal.SIGTERM):
        threading.Thread(target=_watch, args=(parent_pid,), daemon=True, name="parent-watchdog").start()
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(128 + signal.SIGTERM)
