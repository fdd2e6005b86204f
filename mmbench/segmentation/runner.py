"""Run one segmentation cell: its identity (run key), training, testing, and the stored result.

The segmentation twin of :mod:`mmbench.runner`, sharing its store (:class:`mmbench.results_store.ResultsStore`),
its key function (:func:`mmbench.run_key.identity_key` of an identity dict) and its result layout
(``key``, ``spec``, ``label``, ``identity``, ``settings_hash``, ``status``, ``config``, ``metrics``,
``throughput``, ``history``, ``env``), plus ``task: "segmentation"``. :class:`mmbench.runner.Runner` and
:func:`mmbench.run_key.run_identity` hand a spec whose data set is registered with
``task="segmentation"`` to this module; classification runs never come here, so their keys are
unchanged.

The identity holds the spec, ``task``, :data:`SEGMENTATION_PROTOCOL`, the data set's fingerprint, the
resolved settings and hyper-parameters, and the method's version; a method with a teacher
(:mod:`mmbench.segmentation.teacher`) also ``teacher``: the teacher run's key, method and version. ``task``
alone makes a segmentation key differ from any classification key.
"""
from __future__ import annotations

import time
import traceback
from typing import Any, Callable, Dict, Optional

import torch

from mmbench.config import RunSpec

# bump when a change makes earlier segmentation results incomparable.
# 2: ESANet's deep supervision, depth normalisation by train statistics and training augmentation (on by default).
SEGMENTATION_PROTOCOL = 2
TASK = "segmentation"


def segmentation_identity(spec: RunSpec) -> Dict[str, Any]:
    """Everything the result of a segmentation ``spec`` depends on (module docstring).

    Raises:
        KeyError: a method without a segmentation form, or an unknown data set. ValueError: a bad setting.
    """
    from mmbench.data.registry import dataset_fingerprint
    from mmbench.segmentation.methods import get_segmentation_method
    from mmbench.segmentation.settings import resolve_segmentation

    from mmbench.segmentation.teacher import teacher_identity

    method_cls = get_segmentation_method(spec.method, spec.dataset)
    train, hp = resolve_segmentation(spec, method_cls)
    from mmbench.segmentation.pretrained import identity_train, weights_identity

    identity = {
        **spec.canonical(),
        "task": TASK,
        "segmentation_protocol": SEGMENTATION_PROTOCOL,
        "data": dataset_fingerprint(spec.dataset),
        "train": identity_train(train),
        "method_hparams": hp,
        "method_version": method_cls.version,
    }
    teacher = teacher_identity(spec, method_cls, hp)
    if teacher is not None:  # only a method with a teacher has the field: no other key changes
        identity["teacher"] = teacher
    weights = weights_identity(train)
    if weights is not None:  # only a run with pretrained weights has the field (the file's content, not its path)
        identity["backbone_weights"] = weights
    return identity


def check_segmentation_spec(spec: RunSpec) -> None:
    """Raise (``KeyError`` / ``ValueError`` / ``FileNotFoundError`` naming the problem) if ``spec`` could not
    run; trains nothing."""
    from mmbench.patterns import get_pattern
    from mmbench.segmentation.methods import get_segmentation_method
    from mmbench.segmentation.settings import resolve_segmentation

    from mmbench.segmentation.pretrained import weights_identity

    train, _ = resolve_segmentation(spec, get_segmentation_method(spec.method, spec.dataset))
    weights_identity(train)  # a named weights file must exist before anything is trained
    pattern = get_pattern(spec.pattern)
    if pattern.train == "natural":
        raise ValueError(f"{spec.label()}: pattern 'natural' needs the data's own missing modalities, which a "
                         "segmentation data set does not declare; use complete, dropout or missing-<eta>")
    pattern.check_modalities(("rgb", "depth"))


def _seed_everything(seed: int) -> None:
    from mmbench.runner import seed_everything

    seed_everything(seed)


class SegmentationRunner:
    """Executes segmentation run specs against a results store (as :class:`mmbench.runner.Runner`)."""

    def __init__(self, store):
        self.store = store

    def run(self, spec: RunSpec, force: bool = False,
            progress: Optional[Callable[[int, Dict[str, Any]], None]] = None) -> Dict[str, Any]:
        key = spec.key()
        if not force and self.store.is_done(key):
            return self.store.load(key)
        from mmbench.engine import distributed
        from mmbench.segmentation.teacher import keeps_checkpoint

        if keeps_checkpoint(spec):
            # a run other runs load as a teacher keeps its checkpoint, so that they need not train it again;
            # under the teacher's lock, so that a student training the same run at once waits for this one
            from mmbench.runner import file_lock

            with file_lock(self.store.lock_path(key)):
                if not force and self.store.is_done(key):
                    return self.store.load(key)
                result = self.execute(spec, progress, save_model=True)
                if distributed.info().is_main:
                    self.store.save(result)
            return result
        result = self.execute(spec, progress)
        if distributed.info().is_main:
            self.store.save(result)
        return result

    def execute(self, spec: RunSpec, progress=None, save_model: bool = False) -> Dict[str, Any]:
        """Train and test ``spec``; ``save_model``: also write its checkpoint to the store (a teacher run)."""
        from mmbench.engine.context import DivergedError
        from mmbench.env_errors import is_environment_error
        from mmbench.environment import environment
        from mmbench.run_key import identity_key, settings_hash

        try:
            identity = segmentation_identity(spec)
        except (KeyError, ValueError, OSError):
            identity = None  # unresolvable: tried below, recorded as failed with the error
        key = identity_key(identity) if identity is not None else spec.key()
        result: Dict[str, Any] = {"key": key, "task": TASK, "spec": spec.canonical(), "label": spec.label(),
                                  "env": environment()}
        if identity is not None:
            result.update(identity=identity, settings_hash=settings_hash(identity))
        start = time.time()
        threads = torch.get_num_threads()
        try:
            result.update(self._train_and_test(spec, result, progress, key if save_model else None))
            result["status"] = "ok"
        except OSError as err:
            if is_environment_error(err):
                raise
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

    def _train_and_test(self, spec: RunSpec, result: Dict[str, Any], progress,
                        checkpoint_key: Optional[str] = None) -> Dict[str, Any]:
        from mmbench.data import load_dataset
        from mmbench.patterns import MaskStore, get_pattern
        from mmbench.segmentation.class_weights import median_frequency_weights
        from mmbench.segmentation.dataset import carve_validation
        from mmbench.segmentation.methods import get_segmentation_method
        from mmbench.segmentation.settings import resolve_segmentation
        from mmbench.engine import distributed
        from mmbench.segmentation.teacher import load_or_train_teacher, save_checkpoint, teacher_name
        from mmbench.segmentation.pretrained import apply_backbone_weights
        from mmbench.segmentation.train import fit_and_test

        check_segmentation_spec(spec)
        method_cls = get_segmentation_method(spec.method, spec.dataset)
        train, hp = resolve_segmentation(spec, method_cls)
        result["config"] = {"train": train, "method": hp}
        torch.set_num_threads(int(train["threads"]))
        result["env"]["threads"] = str(torch.get_num_threads())
        data = load_dataset(spec.dataset)
        rest, val = carve_validation(data.split["train"], train["val_fraction"])
        rows = {"train": rest, "val": val, "test": data.split["test"]}
        weights = None
        if train["class_weighting"] == "median-frequency":
            weights = median_frequency_weights([torch.as_tensor(data.labels[rest].astype("int64"))],
                                               data.num_classes, data.void_index)
        pattern = get_pattern(spec.pattern)
        masks = MaskStore(self.store.mask_dir).masks(spec.dataset, pattern, data.modalities, len(rest),
                                                     len(rows["test"]), spec.seed)
        _seed_everything(spec.seed)
        method = method_cls(data.num_classes, train, hp, weights)
        apply_backbone_weights(method.modules(), train)
        name = teacher_name(method_cls, hp)
        if name is not None and method.needs_teacher():  # trained once and stored, or loaded (teacher.py)
            method.set_teacher(load_or_train_teacher(self, spec, name, data.num_classes, train["device"]))
        out = fit_and_test(method, data, rows, pattern, train, spec.seed, masks, progress)
        if out["metrics"]["best_epoch"] < 0:
            raise RuntimeError(f"no epoch was selected in {train['epochs']} epochs (best epoch -1): not a result")
        if checkpoint_key is not None and distributed.info().is_main:
            save_checkpoint(self.store.model_path(checkpoint_key), method)
        out["metrics"]["class_weights"] = None if weights is None else [float(w) for w in weights]
        out["metrics"]["split_sizes"] = {k: int(len(v)) for k, v in rows.items()}
        if data.class_names:  # the page's per-class IoU headings; output only, not part of the identity
            out["metrics"]["class_names"] = list(data.class_names)
        return out
