"""Run a grid of specs: skip finished runs, run the rest in parallel, never lose a result.

Each worker writes each result atomically as soon as its run ends, so killing ``all`` midway loses
only the runs in flight, and rerunning resumes where it stopped. Ctrl-C stops scheduling and ends the
local workers at once (they ignore SIGINT themselves, so only the parent decides), then
:class:`GridInterrupted` carries the counts to the command line's one-line summary.

Scaling out:

* ``executor="local"``: a process pool on this machine (``--workers``, default 2).
* ``executor="dask"``: a Dask ``distributed`` cluster (``--scheduler tcp://host:8786``, or a local
  cluster of ``--workers`` processes when no address is given). Workers need ``mmbench`` installed
  and the results folder on a shared filesystem.
* ``--shard i/n`` splits a grid deterministically for several machines or a job array (e.g. SLURM)
  sharing one results folder; ``python -m mmbench table`` then merges everything.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from mmbench.config import RunSpec, resolve
from mmbench.results_store import ResultsStore


class GridInterrupted(Exception):
    """Ctrl-C during :func:`run_grid`: scheduling stopped, the runs in flight were stopped unsaved.

    Attributes:
        counts: the outcome counts so far (as :func:`run_grid` returns them).
        total: the number of runs in the grid.
        done: how many of them are finished (cached or run now) and stored.
    """

    def __init__(self, counts: Dict[str, int], total: int, done: int):
        super().__init__(f"interrupted: {done} of {total} runs done, {total - done} not done")
        self.counts, self.total, self.done = counts, total, done


def check_specs(specs: Sequence[RunSpec]) -> None:
    """Raise ``ValueError`` for the first spec that could not run: bad settings, or a pattern that
    drops a modality its data set does not have. Nothing is trained or stored."""
    from mmbench.data import load_dataset
    from mmbench.data.registry import dataset_task
    from mmbench.methods import get_method
    from mmbench.patterns import get_pattern
    from mmbench.segmentation.runner import check_segmentation_spec

    checked = set()
    for spec in specs:
        if dataset_task(spec.dataset) == "segmentation":  # its own methods and settings
            check_segmentation_spec(spec)
            continue
        resolve(spec, get_method(spec.method))
        pattern = get_pattern(spec.pattern)
        # Only named-modality patterns depend on the data set; loading is cached per process.
        if pattern.missing_type != "mixed" and (spec.dataset, spec.pattern) not in checked:
            try:
                pattern.check_modalities(load_dataset(spec.dataset).modalities)
            except ValueError as err:
                raise ValueError(f"{spec.label()}: {err}") from None
            checked.add((spec.dataset, spec.pattern))


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n (shard i of n, counted from 0, e.g. 0/4)")
    return i, n


def select_shard(specs: Sequence[RunSpec], shard: Optional[Tuple[int, int]]) -> List[RunSpec]:
    if shard is None:
        return list(specs)
    i, n = shard
    return [s for s in specs if int(s.key(), 16) % n == i]


class _Stopped(BaseException):
    """SIGTERM in a pool worker while it runs: unwinds the run, so the ``finally`` blocks on the way
    remove its temporary files, before the worker exits. Not an ``Exception``: never stored as failed."""


_in_run = False  # whether this pool worker is inside _work (its SIGTERM handler reads it)


def _on_sigterm(signum, frame) -> None:  # pragma: no cover - runs in worker processes
    if _in_run:
        raise _Stopped()
    os._exit(128 + signum)  # idle: nothing to clean up


def _work(spec: RunSpec, root: str) -> Dict:
    from mmbench.run_lock import run_lock
    from mmbench.runner import Runner

    global _in_run
    _in_run = True
    try:
        store = ResultsStore(root)
        key = spec.key()
        with run_lock(store, key) as mine:  # another `all` on this --out may be training it
            if not mine:
                return {"key": key, "status": "busy", "label": spec.label(), "error": None}
            if store.is_done(key):  # stored by another process while this one waited
                return {"key": key, "status": "cached", "label": spec.label(), "error": None}
            result = Runner(store).run(spec)
    except _Stopped:  # pragma: no cover - runs in worker processes
        os._exit(128 + signal.SIGTERM)
    finally:
        _in_run = False
    return {"key": result["key"], "status": result.get("status"), "label": result.get("label"), "error": result.get("error")}


def tune_gc() -> None:
    """Fewer and cheaper garbage collections in a process that trains runs.

    The objects alive after the imports (torch, the method and data-set registries) move out of the
    collector's generations (``gc.freeze``: a full collection no longer walks them), and generation 0 is
    collected every 50,000 container allocations instead of every 700. A training step allocates many
    short-lived tensors and autograd nodes, which reference counting frees; with the default threshold a
    collection ran every few steps for nothing. Reference cycles are still collected, just less often.
    Results are unchanged (bit for bit); CPU per run fell 5-10% (``joint`` on ``watch``, two seeds,
    alternating runs with and without).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


def _init_worker(parent_pid: Optional[int] = None) -> None:
    import torch

    from mmbench.parent_death import die_with_parent

    die_with_parent(os.getppid() if parent_pid is None else parent_pid)  # a SIGKILLed `all` leaves no orphaned worker training on

    # Ctrl-C reaches the whole process group; the parent alone decides what stops (it ends the
    # workers), so a worker never turns the signal into a traceback or a half-finished run.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _on_sigterm)  # how the parent ends a run in flight

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    tune_gc()


def run_grid(
    specs: Sequence[RunSpec],
    root: str = "results",
    workers: int = 2,
    show_progress: bool = True,
    executor: str = "local",
    scheduler: Optional[str] = None,
) -> Dict[str, int]:
    """Run every spec not yet done. Returns counts: ``{"cached", "ok", "failed", "diverged"}``.

    Ctrl-C (SIGINT) stops scheduling and ends the runs in flight without storing them, then raises
    :class:`GridInterrupted`; a second Ctrl-C while stopping exits the process at once (status 130).
    """
    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r} (local, dask)")
    store = ResultsStore(root)
    unique = {s.key(): s for s in specs}  # the same run listed twice is trained once
    todo = [s for k, s in unique.items() if not store.is_done(k)]
    counts = {"cached": len(unique) - len(todo), "ok": 0, "failed": 0, "diverged": 0}
    if not todo:
        return counts
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not show_progress, dynamic_ncols=True)
    failures: List[str] = []

    def record(outcome: Dict) -> None:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        if outcome["status"] in ("failed", "diverged"):
            failures.append(f"{outcome['status']}: {outcome['label']}: {outcome['error']}")
        bar.set_postfix_str(f"failed={counts['failed']} diverged={counts['diverged']}")
        bar.update(1)

    try:
        if executor == "dask":
            _run_dask(todo, root, workers, scheduler, record)
        elif workers <= 1:
            tune_gc()
            for spec in todo:
                bar.set_description(spec.label()[:60])
                record(_work(spec, root))
        else:
            _run_pool(todo, root, workers, record)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, _exit_now)  # a second Ctrl-C while stopping: exit at once
        bar.close()
        # Counted from the store: a run may have been stored just before its outcome reached us.
        done = sum(store.is_done(k) for k in unique)
        if done < len(unique):
            raise GridInterrupted(counts, len(unique), done) from None
        # Ctrl-C after the last run was stored: nothing is lost or left to resume, so the grid is
        # finished and the caller writes the tables (a second Ctrl-C still exits at once).
        print("interrupted after every run was stored: finishing normally", file=sys.stderr, flush=True)
        return counts
    bar.close()
    if counts.get("busy"):
        print(f"  {counts['busy']} runs were being trained by another process on {root}; "
              "its results appear there when done (rerun to pick up any it did not finish)")
    for line in failures[:20]:
        print(f"  {line}")
    if len(failures) > 20:
        print(f"  ... and {len(failures) - 20} more")
    return counts


def _exit_now(signum, frame) -> None:  # pragma: no cover - exercised by the subprocess test
    os._exit(130)


@contextmanager
def _sigint_ignored():
    """Ignore SIGINT while worker processes start: a spawned child inherits the ignored disposition,
    so there is no window in which Ctrl-C kills a half-started worker with a traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _quiet_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with its leak warning filtered out.

    A second Ctrl-C exits the parent at once (:func:`_exit_now`); the tracker then cleans up the
    pool's semaphores as designed, but warns about "leaked semaphore objects", a warning cut off by the
    closing terminal that looks like a crash. The filter reaches only the tracker (started now, with this
    environment), not this process nor the workers.
    """
    from multiprocessing import resource_tracker

    previous = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [previous, "ignore:resource_tracker:UserWarning"]))
    try:
        resource_tracker.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONWARNINGS"]
        else:
            os.environ["PYTHONWARNINGS"] = previous


def _run_pool(todo: Sequence[RunSpec], root: str, workers: int, record) -> None:
    ctx = mp.get_context("spawn")  # fork after torch's thread pools start can deadlock
    _quiet_resource_tracker()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        with _sigint_ignored():  # submitting starts the workers
            pending = {pool.submit(_work, spec, root) for spec in todo}
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                record(future.result())
    except BaseException as err:
        if isinstance(err, KeyboardInterrupt):
            signal.signal(signal.SIGINT, _exit_now)  # a second Ctrl-C while the workers stop: exit at once
        # Ctrl-C (or any error here): stop the runs in flight. A worker stores a result only when its
        # run ends (atomically), so ending it loses that run and nothing else.
        # ProcessPoolExecutor has no public way to end busy workers before Python 3.14.
        workers_alive = list(getattr(pool, "_processes", {}).values())
        for process in workers_alive:
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        for process in workers_alive:
            process.join(timeout=5)  # a worker unwinds its run (removing temporary files), then exits
            if process.is_alive():
                process.kill()
        raise
    pool.shutdown(wait=True)


def _run_dask(todo: Sequence[RunSpec], root: str, workers: int, scheduler: Optional[str], record) -> None:
    try:
        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ValueError("executor 'dask' needs the 'distributed' package: pip install distributed") from None
    root = os.path.abspath(root)  # workers may start in another directory
    if scheduler:
        client = Client(scheduler)
        cluster = None
    else:
        with _sigint_ignored():  # Ctrl-C is the parent's to handle: workers must not print tracebacks
            # Worker errors only: a run's own errors are recorded in its result; Dask's warnings
            # about tasks dropped when Ctrl-C ends the cluster would only clutter the summary.
            cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                   silence_logs=logging.ERROR)
        client = Client(cluster)
    futures = []
    try:
        futures = client.map(_work, list(todo), root=root, pure=False)
        for future in as_completed(futures):
            record(future.result())
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, _exit_now)  # closing the cluster takes seconds: a second Ctrl-C exits now
        # Nothing more starts. Runs already going on a remote cluster finish and store their complete
        # results; a local cluster's workers are ended by cluster.close(). Dask logs the tasks it
        # drops at shutdown as warnings and errors: expected here, so not shown.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        if cluster is None:
            client.cancel(futures)
        raise
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
