"""Benchmark harness for ``kernels`` (registry, timing, runner, report).

Entry points: ``python -m kernels.benchmark [--quick] [--ops a,b*] [--out results] [--device cpu]``
or :func:`kernels.benchmark.runner.main`. Ops register themselves in ``ops_*.py`` modules, see
:mod:`kernels.benchmark.registry`.
"""
from .registry import BenchOp, Provider, always_available, discover, get_op, list_ops, needs_cuda, register_op

__all__ = ["BenchOp", "Provider", "always_available", "discover", "get_op", "list_ops", "needs_cuda", "register_op"]
