"""Where results live, and how they are written so that none is ever lost or half-written.

Layout under the output directory (default ``results/``)::

    runs/<key>.json          one finished run (ok, failed or diverged), written atomically
    cache/masks/*.npz        persisted missing-modality masks (not committed)
    cache/models/<key>.pt    checkpoints of runs that other runs use as teachers (not committed)
    cache/locks/<key>.lock   so two workers never train the same teacher at once
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional


_NAMED: set = set()  # (path, reason) of untrusted results already named on stderr by this process


def write_json_atomic(path: Path, payload: Dict[str, Any]) -> None:
    """Write ``payload`` as JSON atomically (see :func:`write_text_atomic`)."""
    write_text_atomic(path, json.dumps(payload, indent=1, sort_keys=True, default=_json_default))


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it; set straight back
    os.umask(mask)
    return mask


def write_text_atomic(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over ``path``.

    The file gets the mode a plain ``open(path, "w")`` would give (``0o666`` minus the umask), not the
    ``0600`` of ``mkstemp``, so results are readable by whoever may read the folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _json_default(obj):
    if hasattr(obj, "item"):
        return obj.item()
    if isinstance(obj, (set, tuple)):
        return list(obj)
    return str(obj)


class ResultsStore:
    """The results directory."""

    def __init__(self, root: os.PathLike | str = "results"):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.cache = self.root / "cache"
        # result files the last all_results() could not read (truncated, not JSON), with the reason
        self.unreadable: List[str] = []
        # key -> why, for stored results load() refused (named once each on stderr)
        self.untrusted: Dict[str, str] = {}

    def run_path(self, key: str) -> Path:
        return self.runs / f"{key}.json"

    def model_path(self, key: str) -> Path:
        return self.cache / "models" / f"{key}.pt"

    def lock_path(self, key: str) -> Path:
        path = self.cache / "locks" / f"{key}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def mask_dir(self) -> Path:
        return self.cache / "masks"

    def load(self, key: str) -> Optional[Dict[str, Any]]:
        """The stored result of ``key`` if it validates (:mod:`mmbench.result_check`), else ``None``.

        A file that is there but not trusted (unreadable, forged, edited) is named once on stderr and
        in :attr:`untrusted`; the caller then trains the run again, and the new result replaces it.
        """
        from mmbench.result_check import problem

        path = self.run_path(key)
        if not path.exists():
            return None
        try:
            with open(path) as f:
                result = json.load(f)
        except (OSError, ValueError) as err:
            why = f"unreadable ({type(err).__name__}: {err})"
        else:
            why = problem(result, path)
            if why is None:
                return result
        self.untrusted[key] = why
        if (str(path), why) not in _NAMED:  # once per process, though several stores look at it
            _NAMED.add((str(path), why))
            print(f"mmbench: not trusting {path}: {why}; the run is trained again", file=sys.stderr)
        return None

    def is_done(self, key: str) -> bool:
        """A run is done when it finished, successfully or by diverging; failed runs are retried."""
        result = self.load(key)
        return result is not None and result.get("status") in ("ok", "diverged")

    def save(self, result: Dict[str, Any]) -> Path:
        """Store ``result`` atomically as ``runs/<key>.json``, sealed with its checksum."""
        from mmbench.result_check import seal

        path = self.run_path(result["key"])
        write_json_atomic(path, seal(result))
        return path

    def all_results(self) -> Iterator[Dict[str, Any]]:
        """Every trusted result in ``runs/`` (:mod:`mmbench.result_check`); the others are named in
        :attr:`unreadable` (``"path: why"``)."""
        from mmbench.result_check import problem

        self.unreadable = []
        if not self.runs.exists():
            return
        for path in sorted(self.runs.glob("*.json")):
            try:
                with open(path) as f:
                    result = json.load(f)
            except (OSError, ValueError) as err:
                self.unreadable.append(f"{path}: {type(err).__name__}: {err}")
                continue
            why = problem(result, path)
            if why is not None:
                self.unreadable.append(f"{path}: {why}")
                continue
            yield result
