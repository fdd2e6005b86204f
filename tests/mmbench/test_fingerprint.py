"""File hashes cached by (path, inode, size, mtime, ctime): content changes are seen, even those that keep
size and mtime; unchanged files are not re-read."""
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
    monkeypatch.setattr(fp, "RACY_NS", 0)  # ctime cannot be set back like mtime: no racy window here
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


def test_an_edit_that_keeps_size_and_mtime_is_seen(tmp_path, monkeypatch):
    """``touch -r`` / ``cp -p`` / rsync / tar keep size and mtime; ctime (and for a replaced file the inode)
    still changes, so the stale hash is not served (issue 21, failure 3)."""
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fp, "RACY_NS", 0)
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc")
    _age(path)
    first = fp.file_digest(path)
    mtime = path.stat().st_mtime_ns
    path.write_bytes(b"abd")  # same size
    os.utime(path, ns=(mtime, mtime))  # touch -r: the old mtime back
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (3, mtime)
    assert fp.file_digest(path) == fp.hashlib.sha256(b"abd").hexdigest() != first
    replaced = tmp_path / "y.bin"  # cp -p of another file over it, then renamed: a new inode
    replaced.write_bytes(b"abe")
    os.utime(replaced, ns=(mtime, mtime))
    os.replace(replaced, path)
    assert fp.file_digest(path) == fp.hashlib.sha256(b"abe").hexdigest()


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
