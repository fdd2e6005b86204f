"""The ``compile`` provider's machinery: ``torch.compile`` of an eager function, cached, with a fallback.

:func:`call` runs ``fn(*args)`` through one ``torch.compile`` wrapper per function (made on first use,
kept for the process), and falls back to ``fn`` itself -- eager, the same numbers up to rounding --
when ``torch.compile`` cannot run here, with **one** ``RuntimeWarning`` that names the reason.

How it compiles, and why:

* ``dynamic=False``: one specialised graph per input shape, the kernel the benchmark times (its
  ``compile_seconds`` metric is the cost of one such compilation; :mod:`kernels.dispatch` amortises it
  per shape). A training run meets a few shapes per call site (the full batch, the last partial
  batch), each compiled once.
* ``fullgraph=True``: the whole function is one graph or nothing; a graph break is an error (then the
  fallback), never a silent mix of compiled and eager pieces.
* ``recompile_limit=RECOMPILE_LIMIT`` with ``isolate_recompiles=True`` (where this torch has them): dynamo's
  global default of 8 compilations per function would otherwise be reached by a process that trains on
  several data sets (each M, B, C is a shape), after which dynamo runs the function eagerly without
  telling anyone. Beyond the limit dynamo raises under ``fullgraph`` and :func:`call` runs the new
  shapes eagerly, with one warning (the shapes compiled so far stay compiled).
* A call with new inputs (shape, dtype, grad mode: dynamo compiles) lowers its backward graph at once
  (``torch._functorch.config.force_non_lazy_backward_lowering``): otherwise AOTAutograd compiles the
  backward lazily inside ``loss.backward()``, where a compile error could not fall back.

Usability is known without compiling (:func:`unusable_reason`: ``MMBENCH_NO_COMPILE=1``, no
``torch.compile``, a Python dynamo does not support, no C++ compiler for inductor's CPU code, no Triton
for its CUDA code) and for sure after the first call (a compile error caught by :func:`call`). Errors
that are not compile errors (an index out of range inside the graph, out of memory) propagate.
"""
from __future__ import annotations

import inspect
import os
import shutil
import warnings
from typing import Callable, Dict, Tuple

import torch

#: ``MMBENCH_NO_COMPILE=1`` turns the provider off (it then runs eager, like a failed compile).
ENV_NO_COMPILE = "MMBENCH_NO_COMPILE"
#: Compilations allowed per compiled function and process (distinct shapes, dtypes, grad modes).
RECOMPILE_LIMIT = 64

# Per device type: "" once a compiled call succeeded there, the reason once one failed (absent: untried).
_STATE: Dict[str, str] = {}
_WARNED: set = set()
_COMPILED: Dict[Callable, Callable] = {}


def _compile_errors() -> Tuple[type, ...]:
    """Exceptions that mean "torch.compile cannot run this here" (not an error of the computation)."""
    errors = []
    try:
        from torch._dynamo import exc as dynamo_exc

        errors += [dynamo_exc.BackendCompilerFailed, dynamo_exc.Unsupported, dynamo_exc.InternalTorchDynamoError,
                   dynamo_exc.InvalidBackend]
    except ImportError:  # pragma: no cover - torch without dynamo: unusable_reason says so first
        pass
    try:
        from torch._inductor import exc as inductor_exc

        errors += [inductor_exc.InvalidCxxCompiler, inductor_exc.CppCompileError]
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _limit_errors() -> Tuple[type, ...]:
    """The exception of a function that reached :data:`RECOMPILE_LIMIT` (under ``fullgraph``)."""
    from torch._dynamo import exc as dynamo_exc

    return (dynamo_exc.FailOnRecompileLimitHit,) if hasattr(dynamo_exc, "FailOnRecompileLimitHit") else ()


def _cxx_compiler() -> str:
    """Path of the C++ compiler inductor would use on the CPU (``$CXX``, else c++/g++/clang++), or ""."""
    for name in [os.environ.get("CXX", "")] + ["c++", "g++", "clang++"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return ""


def unusable_reason(device_type: str) -> str:
    """Why ``torch.compile`` cannot run op code on ``device_type`` here ("" when it may), without compiling.

    After a compiled call on ``device_type`` this is the real outcome: "" when it compiled, the
    error's reason when it did not.
    """
    if device_type in _STATE:
        return _STATE[device_type]
    if os.environ.get(ENV_NO_COMPILE, "") == "1":
        return f"{ENV_NO_COMPILE}=1"
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile"
    try:
        from torch._dynamo.eval_frame import is_dynamo_supported

        if not is_dynamo_supported():
            return "torch.compile does not support this Python / platform"
    except ImportError:
        return "torch._dynamo is missing"
    if device_type == "cpu" and not _cxx_compiler():
        return "no C++ compiler for inductor's CPU code (install g++ or set CXX)"
    if device_type == "cuda":
        from ._triton import HAVE_TRITON, MISSING_REASON

        if not HAVE_TRITON:
            return f"inductor's CUDA code needs triton ({MISSING_REASON})"
    return ""


def compile_would_work(device_type: str) -> bool:
    """Whether the ``compile`` provider runs compiled on ``device_type`` (:func:`unusable_reason` is "")."""
    return not unusable_reason(device_type)


def _options() -> dict:
    """``torch.compile`` keyword arguments (the recompile ones only where this torch has them)."""
    params = inspect.signature(torch.compile).parameters
    opts = {"dynamic": False, "fullgraph": True}
    if "recompile_limit" in params:
        opts["recompile_limit"] = RECOMPILE_LIMIT
    if "isolate_recompiles" in params:
        opts["isolate_recompiles"] = True
    return opts


def compiled(fn: Callable) -> Callable:
    """The process's ``torch.compile`` wrapper of ``fn`` (made once; compiles lazily, per shape)."""
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, **_options())
    return _COMPILED[fn]


def _fall_back(device_type: str, reason: str, stacklevel: int) -> None:
    _STATE[device_type] = reason
    if device_type not in _WARNED:
        _WARNED.add(device_type)
        warnings.warn(f"kernels: backend 'compile' unavailable on {device_type} ({reason}); running eager",
                      RuntimeWarning, stacklevel=stacklevel)


def usable_or_warn(device_type: str) -> bool:
    """:func:`compile_would_work`, with one ``RuntimeWarning`` naming the reason when it does not."""
    reason = unusable_reason(device_type)
    if reason:
        _fall_back(device_type, reason, stacklevel=4)
    return not reason


def _signature(args) -> tuple:
    """What makes dynamo compile anew, approximately: grad mode and each tensor's shape, dtype and
    ``requires_grad`` (also inside lists). A few microseconds; used to treat new inputs with care."""
    sig = [torch.is_grad_enabled()]
    for a in args:
        for t in (a if isinstance(a, (list, tuple)) else (a,)):
            if isinstance(t, torch.Tensor):
                sig.append((tuple(t.shape), t.dtype, t.requires_grad, t.device.type))
    return tuple(sig)


_SEEN: set = set()


def call(fn: Callable, device_type: str, *args):
    """``fn(*args)`` compiled (:func:`compiled`), or eager when compiling is not possible here.

    A call with inputs not seen before (a new shape: dynamo compiles) lowers its backward graph at once
    (module docstring), so a compile error surfaces here. A compile error (:func:`_compile_errors`)
    marks ``device_type`` unusable for the process, warns once and runs ``fn`` eagerly, now and from then on.
    """
    if not usable_or_warn(device_type):
        return fn(*args)
    try:
        sig = (fn, _signature(args))
        if sig in _SEEN:
            return compiled(fn)(*args)
        from torch._functorch import config as functorch_config

        eager_bwd = {"force_non_lazy_backward_lowering": True} if hasattr(functorch_config, "force_non_lazy_backward_lowering") else {}
        with functorch_config.patch(**eager_bwd):
            out = compiled(fn)(*args)
        _STATE[device_type] = ""
        _SEEN.add(sig)
        return out
    except _limit_errors():
        # This function has RECOMPILE_LIMIT graphs already: new shapes run eager; the others stay compiled.
        if ("limit", fn) not in _WARNED:
            _WARNED.add(("limit", fn))
            warnings.warn(f"kernels: backend 'compile' of {fn.__name__} reached {RECOMPILE_LIMIT} compiled shapes "
                          "in this process; new shapes run eager", RuntimeWarning, stacklevel=3)
        return fn(*args)
    except _compile_errors() as exc:
        first = str(exc).strip().splitlines()
        _fall_back(device_type, f"{type(exc).__name__}: {first[0][:300] if first else ''}", stacklevel=3)
        return fn(*args)


def reset() -> None:
    """Forget every compiled graph (``torch._dynamo.reset()``) and wrapper: the next call compiles from scratch.

    The benchmark calls it before timing a cold first call (``compile_seconds``); the usability state is kept.
    """
    _COMPILED.clear()
    _SEEN.clear()
    torch._dynamo.reset()


__all__ = ["ENV_NO_COMPILE", "RECOMPILE_LIMIT", "unusable_reason", "compile_would_work", "usable_or_warn",
           "compiled", "call", "reset"]
