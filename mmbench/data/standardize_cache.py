"""Standardisation statistics of a prepared data set, kept beside its ``prepare`` cache.

Computing them reads every training row twice (two chunked passes over 4.5 GB of CREMA-D frames);
they depend only on the cache's content and the training rows, so they are computed once and stored
as ``<cache folder>/standardize/<key>.json``, key = digest of the cache's fingerprint (settings hash
and content hash), the training rows, the modalities and :data:`STATS_VERSION`. A changed cache or
split has another key: never a stale reuse. The JSON floats round-trip exactly, so a stored
statistic gives the bit-identical standardised values of a freshly computed one.

Data sets without a prepared cache (``meta["cache"]`` and ``meta["fingerprint"]``) are not cached here.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

from mmbench.data.base import MultimodalDataset

STATS_VERSION = 1  # bump when the statistics' definition (axes, floor, precision) changes
Stats = Dict[str, Tuple[np.ndarray, np.ndarray]]  # modality -> (mean, std) float64 [1, *broadcast shape]


def stats_path(dataset: MultimodalDataset, train: np.ndarray, floor: float) -> Optional[Path]:
    """Where the statistics of ``dataset`` over training rows ``train`` are kept, or ``None`` (not prepared)."""
    folder, fingerprint = dataset.meta.get("cache"), dataset.meta.get("fingerprint")
    if not folder or not fingerprint:
        return None
    h = hashlib.sha256()
    h.update(json.dumps({"fingerprint": fingerprint, "version": STATS_VERSION, "floor": floor,
                         "specs": [[s.name, s.kind, list(s.shape)] for s in dataset.specs]}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(train, dtype=np.int64).tobytes())
    return Path(folder) / "standardize" / f"{h.hexdigest()[:16]}.json"


def load_stats(path: Optional[Path], modalities) -> Optional[Stats]:
    """The stored statistics of every modality in ``modalities``, or ``None`` (absent or unreadable)."""
    if path is None or not path.exists():
        return None
    try:
        stored = json.loads(path.read_text())
        out = {m: tuple(np.asarray(stored[m][k], dtype=np.float64).reshape(stored[m]["shape"]) for k in ("mean", "std"))
               for m in modalities}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a damaged file is recomputed (and rewritten), not trusted
    if not all(np.isfinite(v).all() for pair in out.values() for v in pair):
        return None  # poisoned (NaN from data that has since been fixed): recomputed, never reused
    return out


def save_stats(path: Optional[Path], stats: Stats) -> None:
    """Store ``stats`` atomically; a read-only cache folder only costs a recomputation next time."""
    if path is None:
        return
    from mmbench.results_store import write_json_atomic

    payload = {m: {"shape": list(mean.shape), "mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
               for m, (mean, std) in stats.items()}
    try:
        write_json_atomic(path, payload)
    except OSError as err:
        print(f"mmbench: could not store standardisation statistics in {str(path)!r} ({err}); "
              "they are recomputed by each run", file=sys.stderr)
