"""A cache of the leaderboard's bootstrap statistics, one entry per compared group of cells.

The intervals and paired tests of one data set and pattern depend only on that group's runs (their
keys, metric values and per-sample outcomes) and on the code computing them. Rebuilding the tables
after new runs then recomputes only the groups that changed. Each entry is keyed by a digest of
exactly those inputs plus :data:`STATISTICS_VERSION` and the resampling constants, so a stale entry
is never read. The file, ``<results>/statistics-cache.json``, sits beside the tables it serves and can
be committed with them: a fresh clone then rebuilds the tables in seconds. It is rewritten
(atomically) only when an entry was added or dropped, so rebuilding unchanged results leaves it
byte-identical; deleting it only costs time.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import pandas as pd

# Bump when the statistics change for the same inputs (a new test, another resampling scheme).
STATISTICS_VERSION = 3  # 3: crossed-design intervals and max-T marks (mmbench.report.intervals, .paired)
CACHE_FILE = "statistics-cache.json"


def group_digest(group: pd.DataFrame, metrics, constants: Dict[str, Any]) -> str:
    """Digest of everything the statistics of one compared group are computed from.

    A run's per-sample outcomes are its bulk (about 3 s of JSON encoding over 4,000 runs); where every run
    carries the SHA-256 checksum of its stored record (verified when the record was read,
    :mod:`mmbench.result_check`), that checksum stands for them: the same checksum is the
    same record, outcomes included. Runs without one (older results, in-memory frames) are hashed whole.
    """
    sealed = "checksum" in group and group["checksum"].notna().all()
    columns = [c for c in ["key", "seed", "method", "overrides", "settings", *metrics,
                           "checksum" if sealed else "outcomes"] if c in group]
    records = group[columns].sort_values([c for c in ("key", "seed") if c in columns]).to_dict("records")
    payload = {"version": STATISTICS_VERSION, "constants": constants, "metrics": list(metrics), "runs": records}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def bayes_digest(scores: pd.DataFrame, control: str, seed: int, constants: Dict[str, Any]) -> str:
    """Digest of one Bayesian comparison's inputs: the ``[groups, methods]`` scores (exact reprs), the control,
    the seed and the test's settings (prefixed so it never collides with a group digest)."""
    payload = {"version": STATISTICS_VERSION, "constants": constants, "control": control, "seed": int(seed),
               "index": [str(i) for i in scores.index], "columns": [str(c) for c in scores.columns],
               "values": [[repr(float(v)) for v in row] for row in scores.to_numpy()]}
    return "bayes:" + hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class StatisticsCache:
    """``digest -> rows`` read from and written to ``<root>/statistics-cache.json``; no root: in memory only."""

    def __init__(self, root: Optional[str] = None):
        self.path = Path(root) / CACHE_FILE if root else None
        self.entries: Dict[str, List[dict]] = {}
        self.used: Dict[str, List[dict]] = {}
        if self.path is not None and self.path.exists():
            try:
                self.entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self.entries = {}  # unreadable: recomputed, then rewritten

    def get_or_compute(self, digest: str, compute: Callable[[], List[dict]]) -> List[dict]:
        rows = self.used.get(digest, self.entries.get(digest))
        if rows is None:
            rows = json.loads(json.dumps(compute(), default=_plain))  # the same types as a read-back entry
        self.used[digest] = rows
        return rows

    def save(self) -> None:
        """Keep the entries used by this build only (old groups drop out)."""
        if self.path is None or self.used == self.entries:
            return
        from mmbench.results_store import write_text_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.path, json.dumps(self.used))  # row key order kept: it is the column order


def _plain(value):
    """numpy scalars -> Python scalars for JSON."""
    return value.item() if hasattr(value, "item") else str(value)
