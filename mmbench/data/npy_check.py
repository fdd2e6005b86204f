"""Check a ``.npy`` file's header against its size before reading or memory-mapping it.

``np.load`` trusts the header: a damaged header declaring 1.3e10 floats in a tiny file makes it try
to allocate 48 GiB, and a truncated prepared array fails inside ``mmap`` with "mmap length is greater
than file size", neither naming the file. :func:`check_npy` reads only the header and compares the
bytes it declares with the bytes on disk, so both become one clear error naming the file.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Tuple

import numpy as np


class DamagedArrayError(ValueError):
    """A ``.npy`` file whose header does not fit its content (truncated, or a damaged header)."""


def check_npy(path: os.PathLike | str, fix: str = "write it again (np.save)") -> Tuple[Tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` from the header of ``path``; raise :class:`DamagedArrayError` naming the file
    when the header is unreadable or declares more (or fewer) bytes than the file holds.

    ``fix``: what the message tells the user to do (e.g. to rerun ``prepare --force``).
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as handle:
            major, _ = np.lib.format.read_magic(handle)
            read_header = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(handle, max_header_size=1 << 20)
            offset = handle.tell()
    except (ValueError, EOFError, OSError, SyntaxError) as err:
        raise DamagedArrayError(f"{path}: not a readable .npy array ({err}); {fix}") from None
    if dtype.hasobject:
        return tuple(shape), dtype  # object arrays have no fixed size; the loader refuses them by name
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + declared != size:
        state = "truncated or damaged" if offset + declared > size else "longer than its header says"
        raise DamagedArrayError(f"{path}: its header declares shape {tuple(shape)} {dtype} ({declared} bytes) "
                                f"but the file holds {size - offset} bytes of data ({state}); {fix}")
    return tuple(shape), dtype
