"""``triton`` and ``triton.language``, or stand-ins when triton is not installed.

Triton is an optional dependency (``pip install -e '.[triton]'``): its kernels need a CUDA GPU, or
the CPU interpreter in the tests. Modules that define ``@triton.jit`` kernels next to their eager
paths import ``triton, tl`` from here, so they still import (and run eagerly) without it; launching
a kernel then raises :class:`TritonUnavailable` naming the install.
"""
from __future__ import annotations


class TritonUnavailable(ImportError, ValueError):
    """A Triton kernel or ``backend="triton"`` was asked for without triton installed.

    Both an ``ImportError`` (a package is missing) and a ``ValueError`` (what ``backend=`` raises for a
    backend that cannot run here), so callers catching either see it.
    """


try:
    import triton
    import triton.language as tl

    HAVE_TRITON = True
    MISSING_REASON = ""
except ImportError as _err:  # a CPU install: the eager and C++ paths only
    HAVE_TRITON = False
    MISSING_REASON = f"triton is not installed ({_err}); pip install -e '.[triton]'"

    class _Missing:
        """Any attribute or call of the missing package: an ``ImportError`` naming the install."""

        def __init__(self, name: str):
            self._name = name

        def __getattr__(self, attr: str) -> "_Missing":
            return _Missing(f"{self._name}.{attr}")

        def __call__(self, *args, **kwargs):
            raise TritonUnavailable(f"{self._name} needs triton, which is not installed: pip install -e '.[triton]'")

        __getitem__ = __call__

    class _MissingTriton(_Missing):
        def jit(self, fn=None, **kwargs):
            """``@triton.jit`` (with or without options): a kernel that raises when launched."""
            if fn is None:
                return lambda f: _Missing(f"triton kernel {f.__name__}")
            return _Missing(f"triton kernel {fn.__name__}")

    class _MissingLanguage(_Missing):
        @staticmethod
        def constexpr(value=None):
            """Module-level ``X = tl.constexpr(v)`` constants: the plain value (read only by kernels)."""
            return value

    triton = _MissingTriton("triton")
    tl = _MissingLanguage("triton.language")

__all__ = ["triton", "tl", "HAVE_TRITON", "MISSING_REASON", "TritonUnavailable"]
