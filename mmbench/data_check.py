"""Every data set of a grid loadable before any run starts.

Without it, a grid over data sets that were never prepared launches every run, each fails on its
own, and each failure is stored as a result. :func:`check_datasets` loads each distinct data set
once (loads are cached per process, so the runs that follow in this process do not load again) and
raises one error listing every data set that is not ready and what to do about it.
"""
from __future__ import annotations

from typing import Iterable, List


class DataNotReady(ValueError):
    """Some data sets of a grid cannot be loaded; the message lists each with its reason."""


def check_datasets(names: Iterable[str]) -> None:
    """Raise :class:`DataNotReady` naming every data set in ``names`` that does not load."""
    from mmbench.data import load_dataset
    from mmbench.data.validate import DatasetError

    names = list(dict.fromkeys(names))
    problems: List[str] = []
    for name in names:
        try:
            load_dataset(name)
        except (FileNotFoundError, DatasetError, ImportError, OSError) as err:
            problems.append(f"  {name}: {err}")
    if problems:
        raise DataNotReady(
            f"{len(problems)} of {len(names)} data sets of this grid cannot be loaded; nothing was run or written.\n"
            + "\n".join(problems)
            + "\nPrepare each (python -m mmbench prepare NAME --src DIR; python -m mmbench prepare --help lists them), "
              "or leave it out with --datasets.")
