"""Methods: the interface, the registry, and the five methods of the papers (ARL, DGL, DMRNet,
MMANet, one-stage modality distillation). Baselines live in the top-level ``baselines`` package and
register into the same registry."""
from __future__ import annotations

import importlib
import pkgutil

from mmbench.methods.base import METHODS, Method, RunInfo, register_method

_LOADED = False


def load_all() -> None:
    """Import every module of ``mmbench.methods`` and ``baselines`` so that all methods register."""
    global _LOADED
    if _LOADED:
        return
    import baselines
    import mmbench.methods as here

    for package in (here, baselines):
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_") and info.name != "base":
                importlib.import_module(f"{package.__name__}.{info.name}")
    _LOADED = True


def get_method(name: str) -> type:
    load_all()
    return METHODS.get(name)


def list_methods(patterns="*"):
    load_all()
    return METHODS.names(patterns)


__all__ = ["METHODS", "Method", "RunInfo", "get_method", "list_methods", "load_all", "register_method"]
