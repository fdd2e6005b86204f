"""A run's identity: everything that determines its result, hashed into its cache key.

``run_identity(spec)`` holds

* ``data``: the data set's fingerprint (:func:`mmbench.data.registry.dataset_fingerprint`: the content
  hash of the embedded ``.npz`` file, of every file of a user folder, or of arrays registered in memory);
* ``train`` and ``method``: the fully *resolved* settings (engine defaults, data-set defaults, the
  method's defaults and the user's overrides), so a changed default makes a new key;
* ``method_version`` and ``teachers`` (settings and versions of the methods it may load as teachers);
* ``protocol``: :data:`mmbench.config.PROTOCOL_VERSION`;
* the spec itself (method, data set, pattern, seed, overrides);
* ``processes``: the torchrun process count, only where it changes the result (encoders with per-rank
  BatchNorm statistics, :func:`mmbench.engine.distributed.key_world_size`; otherwise a run on N
  processes equals one process and shares its key);
* ``kernel_providers`` for methods with a kernel ``backend`` setting: what that backend *resolves to*
  on this machine for the training device and dtype (:func:`kernels.dispatch.resolved_providers`:
  ``auto`` is the measured dispatch table's choice, ``cpp`` is eager where the extension does not
  build), because eager and C++ give different loss histories (last bits of the sums).

The library versions and the machine are deliberately *not* part of it (they are recorded in each
result's ``env``): with them, the committed results could never be cache hits on a user's machine.

A spec whose data set is registered with ``task="segmentation"`` gets the segmentation path's identity
(:func:`mmbench.segmentation.runner.segmentation_identity`, which holds ``task``); every other spec
gets the one above, unchanged.

``settings_hash`` is the same without the seed: runs sharing it are seeds of one leaderboard cell.
"""
from __future__ import annotations

from typing import Any, Dict

from mmbench.config import PROTOCOL_VERSION, RunSpec, _match, resolve
from mmbench.fingerprint import digest

KEY_LENGTH = 16


def _teacher_settings(method_cls, hp: Dict[str, Any], dataset: str) -> Dict[str, Any]:
    """Versions and default settings of the methods ``method_cls`` may load as teachers."""
    from mmbench.methods import METHODS

    names = list(method_cls.teachers)
    named = hp.get("teacher")
    if isinstance(named, str) and named in METHODS and named not in names:
        names.append(named)
    out = {}
    for name in names:
        cls = METHODS.get(name)
        out[name] = {"version": cls.version, "train_overrides": cls.train_overrides,
                     "hparams": {**cls.hparams, **_match(cls.dataset_hparams, dataset)}}
    return out


def run_identity(spec: RunSpec) -> Dict[str, Any]:
    """Everything the result of ``spec`` depends on (module docstring), as a JSON-able dict.

    Raises:
        KeyError: an unknown method or data set. ValueError: an unknown setting. FileNotFoundError:
        a data file that is gone.
    """
    from mmbench.data.registry import dataset_fingerprint, dataset_task
    from mmbench.methods import get_method

    if dataset_task(spec.dataset) == "segmentation":  # the segmentation path's own identity
        from mmbench.segmentation.runner import segmentation_identity

        return segmentation_identity(spec)
    method_cls = get_method(spec.method)
    train, hp = resolve(spec, method_cls)
    identity = {
        **spec.canonical(),
        "protocol": PROTOCOL_VERSION,
        "data": dataset_fingerprint(spec.dataset),
        "train": train,
        "method_hparams": hp,
        "method_version": method_cls.version,
        "teachers": _teacher_settings(method_cls, hp, spec.dataset),
    }
    from mmbench.engine.distributed import key_world_size  # here: it imports torch, the tables need none

    world = key_world_size(train)
    if world > 1:  # torchrun with per-rank BatchNorm statistics: another result than one process
        identity["processes"] = world
    if isinstance(hp.get("backend"), str):
        identity["kernel_providers"] = _kernel_providers(hp["backend"], train)
    return identity


def _kernel_providers(backend: str, train: Dict[str, Any]) -> Dict[str, str]:
    """The op-1 providers ``backend`` resolves to for the run's device and logits dtype (nothing built)."""
    import torch

    from kernels.dispatch import resolved_providers

    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(str(train.get("amp", "off")), torch.float32)
    return resolved_providers(backend, str(train.get("device", "cpu")), dtype)


def identity_key(identity: Dict[str, Any]) -> str:
    """The cache key (file name of the result) of a run identity."""
    return digest(identity)[:KEY_LENGTH]


def settings_hash(identity: Dict[str, Any]) -> str:
    """The identity without the seed: equal for the seeds of one leaderboard cell."""
    return digest({k: v for k, v in identity.items() if k != "seed"})[:KEY_LENGTH]


def run_key(spec: RunSpec) -> str:
    """The content key of ``spec``; if it cannot be resolved (unknown name or setting, unreadable data),
    a key of the spec alone, so that the run can still be tried and recorded as failed with its error."""
    try:
        return identity_key(run_identity(spec))
    except (KeyError, ValueError, OSError):
        return digest({"unresolved": spec.canonical()})[:KEY_LENGTH]
