"""Run one cell of the grid: resolve its settings, train, test, and store the result."""
from __future__ import annotations

import fcntl
import os
import random
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Any, Callable, Dict, Optional

import numpy as np
import torch

from mmbench.config import RunSpec, resolve
from mmbench.data import load_dataset, standardize
from mmbench.engine import distributed
from mmbench.engine.context import DivergedError
from mmbench.engine.trainer import build_method, fit_and_test
from mmbench.env_errors import diagnose_write_failure, is_environment_error
from mmbench.environment import environment
from mmbench.methods import get_method
from mmbench.methods.base import Method, RunInfo
from mmbench.patterns import MaskStore, get_pattern, natural_masks
from mmbench.results_store import ResultsStore
from mmbench.run_key import identity_key, run_identity, settings_hash

# Engine settings a teacher inherits from the run that asks for it (so a quick run gets quick teachers).
# Methods other runs ask for as teachers: their complete-pattern runs keep a checkpoint.
TEACHER_METHODS = ("joint", "unimodal")
INHERITED_BY_TEACHERS = ("epochs", "batch_size", "lr", "optimizer", "schedule", "device", "threads", "feature_dim", "missing",
                         "fill", "encoder", "loader", "workers", "augment", "amp", "channels_last")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@contextmanager
def file_lock(path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class Runner:
    """Executes run specs against a results directory."""

    def __init__(self, store: ResultsStore | str = "results"):
        self.store = store if isinstance(store, ResultsStore) else ResultsStore(store)

    # ------------------------------------------------------------------ public
    def run(self, spec: RunSpec, force: bool = False, progress: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> Dict[str, Any]:
        """The result of ``spec``: from the cache when it is done, otherwise trained and stored."""
        from mmbench.data.registry import dataset_task

        if dataset_task(spec.dataset) == "segmentation":  # the segmentation path (mmbench/segmentation/runner.py)
            from mmbench.segmentation.runner import SegmentationRunner

            return SegmentationRunner(self.store).run(spec, force=force, progress=progress)
        key = spec.key()
        if not force and self.store.is_done(key):
            return self.store.load(key)
        save = spec.method in TEACHER_METHODS and spec.pattern == "complete"
        result = self._execute(spec, save_model=save, progress=progress)
        if distributed.info().is_main:  # under torchrun every rank holds the same result; one writes it
            self.store.save(result)
        return result

    # ------------------------------------------------------------------ internals
    def prepare(self, spec: RunSpec):
        """Resolve ``spec``: ``(method class, pattern, train settings, hparams, data, RunInfo)``."""
        method_cls = get_method(spec.method)
        pattern = get_pattern(spec.pattern)
        train_cfg, hp = resolve(spec, method_cls)
        # loader=stream standardises per item (a memory-mapped data set is never copied whole into RAM)
        data = standardize(load_dataset(spec.dataset), lazy=train_cfg.get("loader") == "stream")
        pattern.check_modalities(data.modalities)
        info = RunInfo(
            dataset=spec.dataset, specs=tuple(data.specs), num_classes=data.num_classes,
            num_train=len(data.split["train"]), seed=spec.seed, epochs=int(train_cfg["epochs"]),
            batch_size=int(train_cfg["batch_size"]), pattern=spec.pattern,
        )
        return method_cls, pattern, train_cfg, hp, data, info

    def _execute(self, spec: RunSpec, save_model: bool = False, progress=None) -> Dict[str, Any]:
        try:
            identity = run_identity(spec)
        except (KeyError, ValueError, OSError):
            identity = None  # unresolvable: tried below, recorded as failed with the error
        key = identity_key(identity) if identity is not None else spec.key()
        result: Dict[str, Any] = {"key": key, "spec": spec.canonical(), "label": spec.label(), "env": environment()}
        if identity is not None:
            # what the key hashes, and the hash of it without the seed (the leaderboard groups by it)
            result.update(identity=identity, settings_hash=settings_hash(identity))
        start = time.time()
        threads = torch.get_num_threads()
        try:
            method_cls, pattern, train_cfg, hp, data, info = self.prepare(spec)
            result["config"] = {"train": train_cfg, "method": hp}
            torch.set_num_threads(int(train_cfg["threads"]))
            result["env"]["threads"] = str(torch.get_num_threads())  # what this run computed with
            seed_everything(spec.seed)
            method = build_method(method_cls, data, train_cfg, hp, info)
            masks = MaskStore(self.store.mask_dir).masks(
                spec.dataset, pattern, data.modalities, len(data.split["train"]), len(data.split["test"]), spec.seed,
                natural=natural_masks(data))
            teacher_fn = lambda name, teacher_hp: self.teacher(spec, train_cfg, name, teacher_hp)  # noqa: E731
            if str(train_cfg["device"]) == "cpu":
                # op 1's CPU backend: built or loaded now, so neither lands in the timed epochs' throughput
                from kernels.cpp_ext import get_extension

                get_extension()
            out = fit_and_test(method, data, pattern, train_cfg, info, masks, teacher_fn, progress)
            if out["metrics"]["best_epoch"] < 0:
                # No epoch trained or none had a finite validation score: nothing was selected, so the
                # test numbers are those of an untrained model and must not count as a result.
                raise RuntimeError(f"no epoch was selected in {info.epochs} epochs (best epoch -1): not a result")
            result.update(out)
            result["status"] = "ok"
            if save_model and distributed.info().is_main:
                path = self.store.model_path(key)
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                try:
                    torch.save({"modules": method.modules().state_dict(), "extra_state": method.extra_state()}, tmp)
                    os.replace(tmp, path)
                except BaseException as err:  # an interrupted save leaves no temporary file behind
                    tmp.unlink(missing_ok=True)
                    disk = diagnose_write_failure(path, err) if isinstance(err, Exception) else None
                    if disk is not None:
                        raise disk from None  # the disk, named: not a "failed" run with torch's message
                    raise
        except OSError as err:
            if is_environment_error(err):
                raise  # disk full or read-only: the machine's problem, stops the grid with one line
            result.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        except DivergedError as err:
            result.update(status="diverged", error=str(err))
        except Exception as err:  # one failing run is recorded and does not stop the grid
            result.update(status="failed", error=f"{type(err).__name__}: {err}", traceback=traceback.format_exc())
        finally:
            torch.set_num_threads(threads)
        result["wall_seconds"] = time.time() - start
        result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return result

    def teacher(self, parent: RunSpec, parent_train: Dict[str, Any], method: str, hp: Dict[str, Any]) -> Method:
        """Train (once, under a lock) or load the teacher ``method`` for ``parent``'s data set and seed."""
        inherited = {k: parent_train[k] for k in INHERITED_BY_TEACHERS if k in parent.overrides}
        spec = RunSpec(method, parent.dataset, "complete", parent.seed, {**inherited, **hp})
        key = spec.key()
        path = self.store.model_path(key)
        if distributed.active():
            # All ranks train a missing teacher together (rank 0 writes it); a file lock held by one
            # rank would leave the others waiting in a collective.
            if not distributed.broadcast_flag(path.exists()):
                result = self._execute(spec, save_model=True)
                if result.get("status") != "ok":
                    raise RuntimeError(f"teacher run {spec.label()} {result.get('status')}: {result.get('error')}")
                if distributed.info().is_main:
                    self.store.save(result)
                distributed.barrier()
        else:
            with file_lock(self.store.lock_path(key)):
                if not path.exists():
                    result = self._execute(spec, save_model=True)
                    if result.get("status") != "ok":
                        raise RuntimeError(f"teacher run {spec.label()} {result.get('status')}: {result.get('error')}")
                    self.store.save(result)
        method_cls, _, train_cfg, t_hp, data, info = self.prepare(spec)
        teacher = build_method(method_cls, data, train_cfg, t_hp, info)
        state = torch.load(path, map_location=train_cfg["device"], weights_only=False)
        teacher.modules().load_state_dict(state["modules"])
        teacher.load_extra_state(state["extra_state"])
        return teacher


def run_one(spec: RunSpec, out_dir: str = "results", force: bool = False) -> Dict[str, Any]:
    """Convenience: run (or fetch) one spec."""
    return Runner(out_dir).run(spec, force=force)


def main_worker_init() -> None:  # pragma: no cover - executed in worker processes
    torch.set_num_threads(1)
    sys.stdout.flush()
