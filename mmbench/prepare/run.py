"""``prepare(name, src)``: decode and preprocess every item once into the cache, resumably, on all cores.

Each item's arrays are written into their row of the memmaps as it finishes; ``status.npy`` (the
resume point) is flushed after the arrays, every ``FLUSH_SECONDS`` or ``FLUSH_ITEMS``, so a killed
prepare loses at most the items since the last flush and a rerun continues from there. Items run in
a spawn-started process pool (spawn: forking a process that has initialised torch's thread pools can
deadlock). A bad file is recorded in the skipped report by reason and never stops the run.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import sys
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from mmbench.data.registry import clear_cache
from mmbench.prepare.base import PREPARERS, Item, Preparer, SkipItem
from mmbench.prepare.frontends import require
from mmbench.prepare.cache import (
    STATUS_DONE,
    STATUS_SKIPPED,
    STATUS_PENDING,
    cache_folder,
    content_hash,
    mark_current,
    settings_record,
    write_meta,
)
from mmbench.results_store import write_json_atomic

FLUSH_SECONDS = 5.0
FLUSH_ITEMS = 64
REPORT_LINES = 20  # skipped files shown per reason (all of them are in the cache's meta.json)


@dataclass
class PrepareReport:
    """What a prepare did.

    Attributes:
        folder: the cache folder.
        total: items listed; done: items written; processed: items processed in this call (0 when
            the cache was complete already); reused: the cache was complete already.
        skipped: reason -> ``[(file or item id, detail)]``, from listing and from processing.
        fingerprint: ``"<settings hash>-<content hash>"``.
        notes: the listing's notes; a note holding a ``message`` (CREMA-D's published-split check) is printed.
    """

    folder: Path
    total: int
    done: int
    processed: int
    reused: bool
    skipped: Dict[str, List[Tuple[str, str]]] = field(default_factory=dict)
    fingerprint: str = ""
    notes: Dict[str, Any] = field(default_factory=dict)  # the preparer's listing notes (e.g. a split check)

    def lines(self) -> List[str]:
        """The human-readable report: counts, then every skipped file grouped by reason."""
        n_skip = sum(len(v) for v in self.skipped.values())
        out = [f"{'cache up to date' if self.reused else 'prepared'}: {self.folder}",
               f"  {self.done} of {self.total} items written, {n_skip} skipped"
               + (f" ({self.processed} processed now)" if not self.reused else "")]
        out += [f"  {key}: {note['message']}" for key, note in sorted(self.notes.items())
                if isinstance(note, dict) and "message" in note]
        for reason, entries in sorted(self.skipped.items()):
            out.append(f"  skipped, {reason}: {len(entries)}")
            out.extend(f"    {where}: {detail}" if detail and detail != where else f"    {where}"
                       for where, detail in entries[:REPORT_LINES])
            if len(entries) > REPORT_LINES:
                out.append(f"    ... and {len(entries) - REPORT_LINES} more (all in {self.folder / 'meta.json'})")
        return out


def _process_one(preparer: Preparer, settings: Dict[str, Any], shapes: Dict[str, tuple], index: int,
                 item: Item) -> Tuple[int, Optional[Dict[str, np.ndarray]], Optional[Tuple[str, str]]]:
    """Worker: ``(index, arrays, None)`` or ``(index, None, (reason, detail))``; never raises."""
    try:
        arrays = preparer.process(item, settings)
    except SkipItem as err:
        return index, None, (err.reason, str(err))
    except Exception as err:  # an unexpected decoder error on one file must not stop the others
        return index, None, (f"error ({type(err).__name__})", f"{item.id}: {err}")
    for name, shape in shapes.items():
        got = np.shape(arrays.get(name))
        if got != shape:
            return index, None, ("wrong shape", f"{item.id}: {name} has shape {got}, expected {shape}")
        if not np.isfinite(arrays[name]).all():
            return index, None, ("non-finite values", f"{item.id}: {name} has NaN/inf")
    return index, {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}, None


def _stamp(item: Item) -> List[Optional[List[int]]]:
    """``[size, mtime_ns]`` of each source path of ``item`` (``None`` if absent): a file rewritten since
    the cache was written is prepared again, not silently reused."""
    out = []
    for path in sorted(item.paths.values()):
        try:
            st = os.stat(path)
            out.append([int(st.st_size), int(st.st_mtime_ns)])
        except OSError:
            out.append(None)
    return out


def _open(folder: Path, record: Dict[str, Any], items: List[Item], shapes: Dict[str, tuple]):
    """The memmaps, status and skipped record of ``folder``, and the rows to (re)do.

    The same item ids as the folder holds: the folder is resumed, and items whose source files,
    label or split changed since are marked to do again. Other ids (or a new folder): started over.
    """
    rows = [{"id": it.id, "label": int(it.label), "split": it.split, "group": it.group, "stamp": _stamp(it)}
            for it in items]
    n = len(items)
    resumable = (folder / "items.json").exists() and (folder / "status.npy").exists() and all(
        (folder / f"{m}.npy").exists() for m in shapes)
    old = json.loads((folder / "items.json").read_text()) if resumable else None
    if old is not None and [r["id"] for r in old] == [r["id"] for r in rows]:
        mode = "r+"
        changed = [i for i, (was, now) in enumerate(zip(old, rows)) if was != now]
    else:  # new, or other items than an interrupted prepare saw: start this folder over
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "meta.json").unlink(missing_ok=True)
        write_json_atomic(folder / "settings.json", record)
        (folder / "skipped.json").write_text("{}")
        mode, changed = "w+", list(range(n))
    try:
        arrays = {m: np.lib.format.open_memmap(folder / f"{m}.npy", mode=mode, dtype=np.float32, shape=(n, *s))
                  for m, s in shapes.items()}
        status = np.lib.format.open_memmap(folder / "status.npy", mode=mode, dtype=np.uint8, shape=(n,))
        if mode == "w+":
            _allocate(folder, [f"{m}.npy" for m in shapes] + ["status.npy"])
    except OSError as err:
        if mode == "w+":  # started over: nothing of this folder is worth keeping, no sparse files left
            shutil.rmtree(folder, ignore_errors=True)
        need = sum(4 * n * int(np.prod(s)) for s in shapes.values())
        raise type(err)(err.errno, f"{err.strerror} (the prepared cache needs about {need / 2**20:.0f} MiB)",
                        str(folder)) from None
    skipped = json.loads((folder / "skipped.json").read_text())
    # killed between a status write and the next flush of skipped.json: redo, so no reason is lost
    ids = [it.id for it in items]
    changed += [i for i in np.flatnonzero(status == STATUS_SKIPPED).tolist() if ids[i] not in skipped]
    if changed:
        (folder / "meta.json").unlink(missing_ok=True)  # incomplete until the changed rows are redone
        status[changed] = STATUS_PENDING
        for arr in arrays.values():  # as a fresh prepare has them: the same source gives the same content hash
            arr[changed] = 0
        for i in changed:
            skipped.pop(items[i].id, None)
        _flush(folder, arrays, status, skipped)
        (folder / "items.json").write_text(json.dumps(rows))
        np.save(folder / "labels.npy", np.array([it.label for it in items], dtype=np.int64))
    return arrays, status, skipped


def _allocate(folder: Path, names: List[str]) -> None:
    """Reserve the disk blocks of freshly created (sparse) memmaps now: a full disk is then an ``OSError``
    (ENOSPC) before any item is processed, not a SIGBUS on the first write into a hole."""
    if not hasattr(os, "posix_fallocate"):  # pragma: no cover - not Linux
        return
    for name in names:
        with open(folder / name, "r+b") as handle:
            size = os.fstat(handle.fileno()).st_size
            try:
                os.posix_fallocate(handle.fileno(), 0, size)
            except OSError as err:
                if err.errno in (errno.EOPNOTSUPP, errno.EINVAL):  # a file system without it: best effort
                    return
                raise OSError(err.errno, err.strerror, str(folder / name)) from None


def _flush(folder: Path, arrays, status, skipped) -> None:
    for arr in arrays.values():  # the arrays first: a row marked done is always on disk
        arr.flush()
    write_json_atomic(folder / "skipped.json", skipped)
    status.flush()


def prepare(name: str, src, overrides: Optional[Dict[str, Any]] = None, workers: Optional[int] = None,
            force: bool = False, show_progress: bool = True,
            on_item: Optional[Callable[[int], None]] = None) -> PrepareReport:
    """Prepare data set ``name`` from ``src`` into ``$MMBENCH_CACHE/<name>-<settings hash>/``.

    Args:
        name: a registered preparer (``crema-d``, ``cmu-mosei``, ...).
        src: the data set's root folder (or file) as downloaded / as the papers' code reads it.
        overrides: preprocessing settings (the preparer's ``defaults`` list them all).
        workers: processes (default: every core); 1 runs in this process.
        force: redo a complete cache.
        show_progress: a tqdm progress bar with ETA on stderr.
        on_item: called with the number of items processed so far in this call, after each item.

    Raises:
        KeyError: unknown name (the message lists the known ones). ValueError: an unknown setting, a
        bad list file or label. FileNotFoundError: a missing source folder, file or list file.
    """
    from mmbench.prepare import load_builtin

    load_builtin()
    preparer = PREPARERS.get(name)
    settings = preparer.settings(dict(overrides or {}))
    src = Path(src).expanduser()
    if not src.exists():
        raise FileNotFoundError(f"prepare {name}: source {str(src)!r} does not exist")
    record = settings_record(name, preparer.version, src, settings)
    folder = cache_folder(name, record["hash"])
    if not force and (folder / "meta.json").exists():
        from mmbench.prepare.integrity import CacheChangedError, check_cache

        try:
            check_cache(folder)
        except CacheChangedError as err:  # edited or damaged since: never "up to date", written again
            print(f"prepare {name}: {err}; preparing it again", file=sys.stderr)
            force = True
    if force:
        (folder / "items.json").unlink(missing_ok=True)  # start over
        # statistics derived from the old content (standardisation): rebuilt from the new one
        shutil.rmtree(folder / "standardize", ignore_errors=True)

    listing = preparer.list_items(src, settings)
    if not listing.items:
        raise ValueError(f"prepare {name}: no items found under {str(src)!r}")
    for module in preparer.requires(listing):
        require(module)
    specs = preparer.modalities(settings)
    shapes = {s.name: tuple(s.shape) for s in specs}
    arrays, status, skipped = _open(folder, record, listing.items, shapes)
    if (folder / "meta.json").exists():  # complete, and no source file changed since
        mark_current(name, folder)
        clear_cache()
        meta = json.loads((folder / "meta.json").read_text())
        return PrepareReport(folder, meta["counts"]["total"], meta["counts"]["done"], 0, True,
                             {k: [tuple(e) for e in v] for k, v in meta["skipped"].items()}, meta["fingerprint"],
                             meta.get("notes", {}))
    todo = np.flatnonzero(status == STATUS_PENDING)
    processed = 0
    bar = None
    if show_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(status), initial=len(status) - len(todo), desc=f"prepare {name}", unit="item",
                   dynamic_ncols=True)
    workers = max(1, workers or os.cpu_count() or 1)
    pool = None
    last_flush = time.time()
    try:
        if workers > 1 and preparer.parallel and len(todo) > 1:
            from mmbench.parent_death import die_with_parent

            # die_with_parent: a killed prepare (SIGKILL, SIGBUS) leaves no orphaned workers behind
            pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                                       initializer=die_with_parent, initargs=(os.getpid(),))
            results = pool.map(_process_one, *zip(*[(preparer, settings, shapes, int(i), listing.items[i])
                                                     for i in todo]), chunksize=4)
        else:
            results = (_process_one(preparer, settings, shapes, int(i), listing.items[i]) for i in todo)
        for index, out, skip in results:
            if skip is None:
                for m, arr in out.items():
                    arrays[m][index] = arr
                status[index] = STATUS_DONE
            else:
                skipped[listing.items[index].id] = list(skip)
                for arr in arrays.values():  # a row skipped now may hold an older item's values: zero, as fresh
                    arr[index] = 0
                status[index] = STATUS_SKIPPED
            processed += 1
            if bar is not None:
                bar.update(1)
            if processed % FLUSH_ITEMS == 0 or time.time() - last_flush > FLUSH_SECONDS:
                _flush(folder, arrays, status, skipped)
                last_flush = time.time()
            if on_item is not None:
                on_item(processed)
    except BrokenProcessPool:
        raise RuntimeError(f"prepare {name}: a worker process died (killed or out of memory; from a script, "
                           f"call prepare() under `if __name__ == '__main__':`); the {processed} items written "
                           f"are kept in {folder}: rerun prepare to resume") from None
    finally:
        _flush(folder, arrays, status, skipped)
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    report: Dict[str, List[Tuple[str, str]]] = defaultdict(list)
    for where, reason in listing.skipped:
        report[reason].append((where, ""))
    for item_id, (reason, detail) in skipped.items():
        report[reason].append((item_id, detail))
    fingerprint = f"{record['hash']}-{content_hash(folder, list(shapes))}"
    from mmbench.prepare.integrity import stamps
    counts = {"total": len(status), "done": int((status == STATUS_DONE).sum()),
              "skipped": int((status == STATUS_SKIPPED).sum()), "skipped_while_listing": len(listing.skipped)}
    write_meta(folder, {
        "name": name, "settings": record, "modalities": list(shapes),
        "specs": [{"name": s.name, "kind": s.kind, "shape": list(s.shape)} for s in specs],
        "class_names": listing.class_names, "counts": counts, "skipped": dict(report), "notes": listing.notes,
        "fingerprint": fingerprint, "stamps": stamps(folder, {"modalities": list(shapes)}), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    mark_current(name, folder)
    clear_cache()  # a load of this data set earlier in this process read the previous cache
    return PrepareReport(folder, counts["total"], counts["done"], processed, False, dict(report), fingerprint,
                         listing.notes)
