"""Registry of benchmarked ops (tritonbench-style, ``docs/kernels-and-style.md`` §4.2).

One :class:`BenchOp` per op. Each op lists its :class:`Provider` s (eager reference, released
composition, ``torch.compile``, Triton, C++ ...). A provider takes the inputs made by
``op.make_inputs`` and returns a **zero-argument callable**, so timing excludes set-up. Exactly one
provider per op should carry ``baseline=True``: speedups are reported against it.

Ops are registered from modules named ``kernels.benchmark.ops_*`` (one per op family), which call
:func:`register_op` at import time; :func:`discover` imports them all.

Example (an ``ops_<name>.py`` module)::

    register_op(BenchOp(
        name="my_op",
        providers=[Provider("eager", make_eager, baseline=True), Provider("triton", make_triton, available=needs_cuda)],
        make_inputs=lambda shape, device, dtype: {...},
        model_bytes=lambda shape, mode: ...,
        shapes={"realistic": [...], "sweep": [...], "cpu_sweep": [...], "quick": [...]},
    ))
"""
from __future__ import annotations

import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch

#: Benchmark modes. "fwd": forward only (no autograd graph); "fwd_bwd": forward + backward.
MODES = ("fwd", "fwd_bwd")

Inputs = Dict[str, Any]
Shape = Dict[str, Any]


def always_available(device: torch.device) -> Tuple[bool, str]:
    """Availability check for providers that run anywhere."""
    return True, ""


def needs_cuda(device: torch.device) -> Tuple[bool, str]:
    """Availability check for compiled-GPU providers (the Triton interpreter is not a performance path)."""
    if torch.device(device).type != "cuda" or not torch.cuda.is_available():
        return False, "no CUDA device"
    return True, ""


def lazily_compiled(fn: Callable) -> Callable:
    """``fn`` under ``torch.compile(dynamic=False)``, compiled on the first call, so that importing an
    ops module (and listing ops) stays cheap."""
    compiled: List[Callable] = []

    def call(*args, **kwargs):
        if not compiled:
            compiled.append(torch.compile(fn, dynamic=False))
        return compiled[0](*args, **kwargs)

    return call


@dataclass
class Provider:
    """One implementation of an op.

    Args:
        name: short provider name ("eager", "released", "compile", "triton", "cpp", ...).
        make_fn: ``make_fn(inputs, mode) -> fn`` where ``fn()`` runs one call of the op in ``mode``
            ("fwd" or "fwd_bwd"). For "fwd_bwd", ``fn`` must run forward and backward itself (use
            :func:`BenchOp.backward` or the op's own ``run_backward``).
        available: ``available(device) -> (ok, reason)``; a provider that cannot run is reported as
            "not available: reason", never silently dropped.
        baseline: speedups of the op are computed relative to this provider.
        modes: the modes this provider supports.
        heavy: expensive to set up (e.g. ``torch.compile``); skipped by ``--quick`` runs.
        reference: an eager formulation a user would otherwise run (our eager reference, the released
            code, ``torch.compile`` of either): speedups are reported against the fastest of these in
            each cell, never against a slow straw man.
        compiles: its first call per shape compiles (``torch.compile``): the runner times that call on
            its own, cold (:func:`kernels.benchmark.timing.cold_first_call_seconds`), and records it as
            the ``compile_seconds`` metric beside the steady-state times.
    """

    name: str
    make_fn: Callable[[Inputs, str], Callable[[], Any]]
    available: Callable[[torch.device], Tuple[bool, str]] = always_available
    baseline: bool = False
    modes: Tuple[str, ...] = MODES
    heavy: bool = False
    reference: bool = False
    compiles: bool = False


def _default_backward(out: Any, inputs: Inputs) -> None:
    """Back-propagate a scalar (or sum of a tensor) output."""
    if isinstance(out, (tuple, list)):
        out = out[0]
    (out if out.dim() == 0 else out.sum()).backward()


@dataclass
class BenchOp:
    """An op with its providers, shape sweeps, input maker and byte model.

    Args:
        name: op name (used by ``--ops`` filters, wildcards allowed).
        providers: list of :class:`Provider`.
        make_inputs: ``make_inputs(shape: dict, device, dtype) -> dict`` of tensors (leaf tensors that
            need gradients must have ``requires_grad=True`` so "fwd_bwd" works).
        model_bytes: ``model_bytes(shape, mode) -> int``: minimal bytes moved (each tensor read once,
            each output written once) for GB/s; ``None`` to skip GB/s.
        shapes: named sweeps, e.g. ``{"realistic": [...], "sweep": [...], "cpu_sweep": [...], "quick": [...]}``;
            each shape is a dict (e.g. ``{"M": 2, "B": 64, "C": 309}``).
        run_backward: ``run_backward(out, inputs)``: how to back-propagate the output in "fwd_bwd"
            mode (default: ``out.backward()`` on a scalar, ``out.sum().backward()`` otherwise).
        grad_to_none: names of inputs whose ``.grad`` is reset between timed calls.
        dtypes: dtypes to benchmark by default.
        modes: modes the op supports (e.g. ``("fwd",)`` for a no-grad statistics op).
        description: one line for the report.
        error: ``error(inputs, provider, mode) -> float``: the provider's largest error relative to a
            float64 reference on the cell's inputs (recorded as ``max_rel_err``; the dispatch table of
            ``auto`` only picks providers correct by it); ``None`` to skip.
    """

    name: str
    providers: List[Provider]
    make_inputs: Callable[[Shape, torch.device, torch.dtype], Inputs]
    model_bytes: Optional[Callable[[Shape, str], int]] = None
    shapes: Dict[str, List[Shape]] = field(default_factory=dict)
    run_backward: Callable[[Any, Inputs], None] = _default_backward
    grad_to_none: Sequence[str] = ()
    dtypes: Sequence[torch.dtype] = (torch.float32,)
    modes: Tuple[str, ...] = MODES
    description: str = ""
    error: Optional[Callable[[Inputs, str, str], float]] = None

    def provider(self, name: str) -> Provider:
        """Return the provider called ``name`` (KeyError if absent)."""
        for p in self.providers:
            if p.name == name:
                return p
        raise KeyError(f"op {self.name!r} has no provider {name!r}; known: {[p.name for p in self.providers]}")

    @property
    def baseline(self) -> Optional[Provider]:
        """The baseline provider, or None."""
        return next((p for p in self.providers if p.baseline), None)

    def shapes_for(self, sweep: str) -> List[Shape]:
        """Shapes of the named sweep (empty list if the op has none)."""
        return list(self.shapes.get(sweep, []))


_REGISTRY: Dict[str, BenchOp] = {}


def register_op(op: Optional[BenchOp] = None, **kwargs: Any):
    """Register a :class:`BenchOp`.

    Usable as ``register_op(BenchOp(...))``, as ``register_op(name=..., providers=..., ...)``, or as
    a decorator on a zero-argument factory returning a BenchOp::

        @register_op
        def _my_op() -> BenchOp: ...

    Re-registering a name replaces the old entry (modules may be re-imported in tests).
    """
    if op is None and kwargs:
        op = BenchOp(**kwargs)
    if callable(op) and not isinstance(op, BenchOp):
        factory = op
        built = factory()
        _REGISTRY[built.name] = built
        return factory
    if not isinstance(op, BenchOp):
        raise TypeError("register_op expects a BenchOp, BenchOp fields as keywords, or a factory function")
    _REGISTRY[op.name] = op
    return op


def discover() -> List[str]:
    """Import every ``kernels.benchmark.ops_*`` module (each registers its ops); return the module names.

    A module that fails to import is reported with a warning and skipped, so one broken op does not
    take the whole benchmark down.
    """
    import warnings

    from kernels import benchmark as pkg

    found = []
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
        if not info.name.startswith("ops_"):
            continue
        modname = f"{pkg.__name__}.{info.name}"
        try:
            importlib.import_module(modname)
            found.append(modname)
        except Exception as exc:  # noqa: BLE001 - report and continue
            warnings.warn(f"kernels.benchmark: could not import {modname}: {type(exc).__name__}: {exc}")
    return found


def get_op(name: str) -> BenchOp:
    """Return the registered op called ``name``."""
    return _REGISTRY[name]


def list_ops(patterns: Optional[Sequence[str]] = None) -> List[BenchOp]:
    """Registered ops whose names match any of the fnmatch ``patterns`` (all ops if None/empty), sorted."""
    names = sorted(_REGISTRY)
    if patterns:
        names = [n for n in names if any(fnmatch.fnmatch(n, p.strip()) for p in patterns if p.strip())]
    return [_REGISTRY[n] for n in names]
