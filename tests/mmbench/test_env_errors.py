"""Environment errors as one line naming the path and what to do; --out checked before training."""
import errno

import pytest

from mmbench.env_errors import check_writable, describe, diagnose_write_failure


def test_a_file_where_the_folder_should_be(tmp_path):
    (tmp_path / "out").write_text("x")
    with pytest.raises(NotADirectoryError) as err:
        check_writable(tmp_path / "out")
    assert describe(err.value).startswith(f"{tmp_path / 'out'}: --out is a file") and "remove or rename" in describe(err.value)
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "out" / "sub")


def test_a_writable_folder_is_created_and_left_clean(tmp_path):
    check_writable(tmp_path / "a" / "b")
    assert list((tmp_path / "a" / "b").iterdir()) == []


def test_disk_full_is_named_with_the_path_and_advice():
    line = describe(OSError(errno.ENOSPC, "No space left on device", "/x/runs/k.json"))
    assert line.startswith("/x/runs/k.json: No space left on device; the disk is full")


def test_a_failed_write_is_blamed_on_the_disk_only_when_it_is_full(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))
    err = diagnose_write_failure(tmp_path / "m.pt", RuntimeError("enforce fail ... unexpected pos 11200 vs 11088"))
    assert err.errno == errno.ENOSPC and err.filename == str(tmp_path / "m.pt")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10 << 30, 0, 10 << 30))
    assert diagnose_write_failure(tmp_path / "m.pt", RuntimeError("other")) is None
