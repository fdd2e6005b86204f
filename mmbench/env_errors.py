"""Environment errors (disk full, read-only folder, a file where a folder should be) as one line.

:func:`describe` turns such an ``OSError`` into ``"<path>: <what happened>; <what to do>"`` for the
command line, which prints it instead of a traceback and exits non-zero. :func:`check_writable`
tries a results folder before any training, so a read-only ``--out`` fails in a second, not after
hours of training. :func:`is_environment_error` tells the runner which errors are the machine's (to
stop the grid with the message) rather than the run's (to record the run as ``failed``).
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

ADVICE = {
    errno.ENOSPC: "the disk is full: free space there (or point the option at another disk) and rerun; "
                  "finished work is kept and resumed",
    errno.EDQUOT: "the disk quota is exhausted: free space and rerun; finished work is kept and resumed",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "no permission to write there: choose a folder you can write to",
    errno.EPERM: "no permission to write there: choose a folder you can write to",
    errno.ENOTDIR: "a file stands where a folder is needed: remove or rename it, or choose another folder",
    errno.EEXIST: "a file stands where a folder is needed: remove or rename it, or choose another folder",
    errno.EISDIR: "a folder stands where a file is needed: remove or rename it",
}
# Errors of the machine, not of one run: they stop the grid with one line instead of failing every run.
ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
LOW_SPACE_BYTES = 16 << 20


def is_environment_error(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno in ENVIRONMENT_ERRNOS


def describe(err: OSError) -> str:
    """One line naming the path, what happened and what to do."""
    path = err.filename or ""
    what = err.strerror or str(err)
    advice = ADVICE.get(err.errno, "check the path and rerun")
    return f"{path}: {what}; {advice}" if path else f"{what}; {advice}"


def check_writable(folder: os.PathLike | str, what: str = "--out") -> None:
    """Create ``folder`` if needed and write (then remove) a probe file in it; an ``OSError`` naming
    the folder (read-only, a file in the way, no permission, disk full) otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, f"{what} is a file, not a folder", str(folder))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        try:
            os.write(fd, b"x")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except FileExistsError as err:  # a parent of the folder is a file
        raise NotADirectoryError(errno.ENOTDIR, f"{what}: a file stands in its path", str(err.filename or folder)) from None
    except OSError as err:
        raise type(err)(err.errno, f"{what} is not writable ({err.strerror})", str(folder)) from None


def diagnose_write_failure(path: os.PathLike | str, err: BaseException) -> Optional[OSError]:
    """An ``OSError(ENOSPC)`` naming ``path`` when a failed write there (torch.save reports a full disk
    as "enforce fail ... unexpected pos") is explained by a nearly full disk, else ``None``."""
    if isinstance(err, OSError) and err.errno is not None:
        return err if err.filename else type(err)(err.errno, err.strerror, str(path))
    try:
        free = shutil.disk_usage(Path(path).parent).free
    except OSError:
        return None
    if free < LOW_SPACE_BYTES:
        return OSError(errno.ENOSPC, f"No space left on device (writing failed: {str(err)[:80]})", str(path))
    return None
