"""Teachers for segmentation methods: a ``complete`` run of a named method (``joint``) on the student's data
set and seed, trained once, stored with a checkpoint, and loaded for every student that asks for it.

The segmentation twin of :meth:`mmbench.runner.Runner.teacher`:

* A segmentation method declares its teacher with the class attribute ``teacher_method`` (a registry name,
  e.g. ``"joint"``; ``None``: no teacher; a hyper-parameter ``teacher`` may name another), says per run
  whether it needs one (``needs_teacher()``, e.g. not when its distillation weight is 0) and receives it
  through ``set_teacher``.
* :func:`teacher_spec`: the teacher's run is ``RunSpec(teacher, dataset, "complete", seed, inherited)``.
  It inherits every *training setting* the student's spec overrides (epochs, batch size, network size,
  ...: a quick student gets a quick teacher of the same network), never the student's hyper-parameters.
* :func:`teacher_identity`: what of the teacher enters the student's identity, namely the teacher run's
  settings hash (a hash of its whole identity but the seed: data fingerprint, resolved settings, method
  version, protocol), its method name and version. So a change of the teacher's method, settings or data
  changes the student's key. The seed is left out because the teacher's seed is the student's, which is in
  the student's identity already; with it, each seed of a student would have its own settings hash and the
  leaderboard could not average a student's seeds in one cell.
* :func:`keeps_checkpoint`: a ``complete`` run of a teacher method (a grid's own ``joint`` run) writes its
  checkpoint when it is trained, so a student of the same settings loads it instead of training it again.
* :func:`load_or_train_teacher`: under a file lock, if the teacher's checkpoint is not in the store (never
  trained, or its result is stored but the checkpoint was deleted), the teacher run is trained, its result
  stored and its checkpoint written; then a fresh teacher method is built and the checkpoint loaded. A
  teacher run that fails is an error naming it. A checkpoint that does not fit the teacher's network is an
  error naming the file.
"""
from __future__ import annotations

import os
import random
from contextlib import contextmanager
from typing import Any, Dict, Optional

import numpy as np
import torch

from mmbench.config import RunSpec

TEACHER_PATTERN = "complete"


def teacher_name(method_cls, hp: Dict[str, Any]) -> Optional[str]:
    """The teacher's registry name if ``method_cls`` declares one, else None (``hp`` may name another one)."""
    declared = getattr(method_cls, "teacher_method", None)
    if declared is None:
        return None
    named = hp.get("teacher", declared)
    return named if isinstance(named, str) else declared


def keeps_checkpoint(spec: RunSpec) -> bool:
    """Whether ``spec``'s run is one a method may load as its teacher (a ``complete`` run of a method some
    registered segmentation method names as ``teacher_method``): such a run writes its checkpoint, as the
    classification runner's ``joint`` and ``unimodal`` complete runs do."""
    from mmbench.segmentation.methods import SEGMENTATION_METHODS

    if spec.pattern != TEACHER_PATTERN:
        return False
    return any(getattr(SEGMENTATION_METHODS.get(name), "teacher_method", None) == spec.method
               for name in SEGMENTATION_METHODS.names())


def teacher_spec(parent: RunSpec, name: str) -> RunSpec:
    """The teacher's run: ``name`` on the parent's data set and seed, ``complete`` pattern, with the parent's
    overridden *training settings* (not its hyper-parameters)."""
    from mmbench.segmentation.settings import SEGMENTATION_DEFAULTS

    inherited = {k: v for k, v in parent.overrides.items() if k in SEGMENTATION_DEFAULTS}
    return RunSpec(name, parent.dataset, TEACHER_PATTERN, parent.seed, inherited)


def teacher_identity(parent: RunSpec, method_cls, hp: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The part of the student's identity that names its teacher (module docstring), or None without one."""
    from mmbench.run_key import settings_hash
    from mmbench.segmentation.methods import get_segmentation_method
    from mmbench.segmentation.runner import segmentation_identity

    name = teacher_name(method_cls, hp)
    if name is None:
        return None
    spec = teacher_spec(parent, name)
    return {"method": name, "version": get_segmentation_method(name, parent.dataset).version,
            "pattern": TEACHER_PATTERN, "settings": settings_hash(segmentation_identity(spec))}


@contextmanager
def _global_rng_kept():
    """Restore Python's, NumPy's and torch's global generator states (CPU and CUDA) on exit."""
    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


def save_checkpoint(path, method) -> None:
    """Write ``method``'s networks and extra state to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    try:
        torch.save({"modules": method.modules().state_dict(), "extra_state": method.extra_state()}, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Training (and building) the teacher re-seeds and draws from the global generators; restored on return, so
# the student continues from its own state and trains the same whether its teacher was trained now or loaded.
@_global_rng_kept()
def load_or_train_teacher(runner, parent: RunSpec, name: str, num_classes: int, device: str):
    """The trained teacher method for ``parent`` (training and storing it first if its checkpoint is absent).

    Args:
        runner: a :class:`~mmbench.segmentation.runner.SegmentationRunner` (its store and ``execute``).
        parent: the student's spec. name: the teacher's registry name. num_classes: C of the data set.
        device: where to load it.

    Returns:
        The teacher :class:`~mmbench.segmentation.methods.SegmentationMethod`, weights loaded, in eval mode.

    Raises:
        RuntimeError: the teacher run failed or diverged, or its checkpoint does not fit its network.
    """
    from mmbench.runner import file_lock
    from mmbench.segmentation.methods import get_segmentation_method
    from mmbench.segmentation.settings import resolve_segmentation

    spec = teacher_spec(parent, name)
    key = spec.key()
    path = runner.store.model_path(key)
    with file_lock(runner.store.lock_path(key)):
        if not path.exists():  # never trained, or stored without its checkpoint: (re)train it
            result = runner.execute(spec, save_model=True)
            if result.get("status") != "ok":
                raise RuntimeError(f"teacher run {spec.label()} {result.get('status')}: {result.get('error')}")
            runner.store.save(result)
    method_cls = get_segmentation_method(name, spec.dataset)
    train, hp = resolve_segmentation(spec, method_cls)
    state = torch.load(path, map_location=device, weights_only=False)
    teacher = method_cls(num_classes, train, hp, None)
    try:
        teacher.modules().load_state_dict(state["modules"])
    except (RuntimeError, KeyError) as err:
        raise RuntimeError(f"teacher checkpoint {path} does not fit {spec.label()}'s network: {err}") from None
    teacher.load_extra_state(state["extra_state"])
    teacher.to(device)
    teacher.modules().eval()
    return teacher
