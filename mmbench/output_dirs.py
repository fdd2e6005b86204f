"""Where commands write when ``--out`` is not given.

Only the two commands that produce the committed results write into ``results/`` by default: ``all``
with the default suite and the full kernel benchmark (``bench`` without ``--quick``). Every other
suite, ``run``, ``steps`` and ``bench --quick`` write under ``results/scratch/`` (ignored by git), so
trying the README's commands never changes a clone's tracked files nor mixes smoke runs into the
committed leaderboard. Commands print the folder they chose.
"""
from __future__ import annotations

import os
import re

RESULTS = "results"
SCRATCH = os.path.join(RESULTS, "scratch")


def _safe(name: str) -> str:
    """A folder name for a suite given by name or YAML path."""
    stem = os.path.splitext(os.path.basename(name))[0]
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem) or "suite"


def suite_out(suite: str) -> str:
    """``results`` for the default suite, ``results/scratch/<suite>`` for any other."""
    return RESULTS if suite == "default" else os.path.join(SCRATCH, _safe(suite))


def run_out() -> str:
    return os.path.join(SCRATCH, "run")


def steps_out(scale: str) -> str:
    return os.path.join(SCRATCH, "steps" if scale == "suite" else f"steps-{scale}")


def bench_out(quick: bool) -> str:
    return os.path.join(SCRATCH, "bench-quick") if quick else RESULTS


def announce(out: str, explicit: bool) -> str:
    """The line naming where results go (commands say it when the folder was chosen for the user)."""
    note = "" if explicit else (" (default; --out to choose)" if out == RESULTS else
                                " (not the committed results/: --out results to write there)")
    return f"writing to {out}{note}"
