"""File hashes cached by (path, size, mtime): content changes are seen, unchanged files are not re-read."""
import json
import os

import numpy as np

import mmbench.fingerprint as fp
from mmbench.data.arrays import build_dataset


def _age(path, seconds=10):
    """Pretend ``path`` was written ``seconds`` ago (so it is past the racy window and gets cached)."""
    t = path.stat().st_mtime_ns - seconds * 10**9
    os.utime(path, ns=(t, t))


def test_file_digest_is_cached_and_follows_content(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    _age(path)
    first = fp.file_digest(path)
    cache = json.loads((tmp_path / "cache" / "file-hashes.json").read_text())
    assert list(cache.values()) == [first]
    path.write_bytes(b"abd")  # same size, new content and mtime
    _age(path, 5)
    assert fp.file_digest(path) != first
    assert len(json.loads((tmp_path / "cache" / "file-hashes.json").read_text())) == 1  # old entry dropped


def test_recently_written_files_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"abc")
    fp.file_digest(path)
    assert not (tmp_path / "cache" / "file-hashes.json").exists()


def test_dataset_digest_sees_every_array_and_the_split():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    a, b = rng.normal(size=(60, 4)), rng.normal(size=(60, 2, 5))
    base = fp.dataset_digest(build_dataset("d", {"a": a, "b": b}, y))
    assert fp.dataset_digest(build_dataset("d", {"a": a, "b": b}, y)) == base
    b2 = b.copy()
    b2[0, 0, 0] += 1
    assert fp.dataset_digest(build_dataset("d", {"a": a, "b": b2}, y)) != base
    assert fp.dataset_digest(build_dataset("d", {"a": a, "b": b}, y, split_seed=1)) != base
