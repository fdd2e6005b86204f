"""Run a grid of specs: skip finished runs, run the rest in parallel, never lose a result.

Each worker writes each result atomically as soon as its run ends, so killing ``all`` midway loses
only the runs in flight, and rerunning resumes where it stopped.

Scaling out:

* ``executor="local"``: a process pool on this machine (``--workers``, default 2).
* ``executor="dask"``: a Dask ``distributed`` cluster (``--scheduler tcp://host:8786``, or a local
  cluster of ``--workers`` processes when no address is given). Workers need ``mmbench`` installed
  and the results folder on a shared filesystem.
* ``--shard i/n`` splits a grid deterministically for several machines or a job array (e.g. SLURM)
  sharing one results folder; ``python -m mmbench table`` then merges everything.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Dict, List, Optional, Sequence, Tuple

from tqdm import tqdm

from mmbench.config import RunSpec
from mmbench.results_store import ResultsStore


def parse_shard(text: Optional[str]) -> Optional[Tuple[int, int]]:
    if not text:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard {text!r}: need 0 <= i < n")
    return i, n


def select_shard(specs: Sequence[RunSpec], shard: Optional[Tuple[int, int]]) -> List[RunSpec]:
    if shard is None:
        return list(specs)
    i, n = shard
    return [s for s in specs if int(s.key(), 16) % n == i]


def _work(spec: RunSpec, root: str) -> Dict:
    from mmbench.runner import Runner

    result = Runner(root).run(spec)
    return {"key": result["key"], "status": result.get("status"), "label": result.get("label"), "error": result.get("error")}


def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def run_grid(
    specs: Sequence[RunSpec],
    root: str = "results",
    workers: int = 2,
    show_progress: bool = True,
    executor: str = "local",
    scheduler: Optional[str] = None,
) -> Dict[str, int]:
    """Run every spec not yet done. Returns counts: ``{"cached", "ok", "failed", "diverged"}``."""
    if executor not in ("local", "dask"):
        raise ValueError(f"unknown executor {executor!r} (local, dask)")
    store = ResultsStore(root)
    todo = [s for s in specs if not store.is_done(s.key())]
    counts = {"cached": len(specs) - len(todo), "ok": 0, "failed": 0, "diverged": 0}
    if not todo:
        return counts
    bar = tqdm(total=len(todo), desc="runs", unit="run", disable=not show_progress, dynamic_ncols=True)
    failures: List[str] = []

    def record(outcome: Dict) -> None:
        counts[outcome["status"]] = counts.get(outcome["status"], 0) + 1
        if outcome["status"] == "failed":
            failures.append(f"{outcome['label']}: {outcome['error']}")
        bar.set_postfix_str(f"failed={counts['failed']} diverged={counts['diverged']}")
        bar.update(1)

    if executor == "dask":
        _run_dask(todo, root, workers, scheduler, record)
    elif workers <= 1:
        for spec in todo:
            bar.set_description(spec.label()[:60])
            record(_work(spec, root))
    else:
        ctx = mp.get_context("spawn")  # fork after torch's thread pools start can deadlock
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker) as pool:
            pending = {pool.submit(_work, spec, root) for spec in todo}
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    record(future.result())
    bar.close()
    for line in failures[:20]:
        print(f"  failed: {line}")
    return counts


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
        cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True)
        client = Client(cluster)
    try:
        futures = client.map(_work, list(todo), root=root, pure=False)
        for future in as_completed(futures):
            record(future.result())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
