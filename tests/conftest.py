"""Test-wide set-up.

``TRITON_INTERPRET`` must be in the environment before ``triton`` is first imported, so it is set
here, at the top of the root conftest, before any test module imports ``kernels`` or ``mmbench``.
On a machine without CUDA the Triton kernels then run on the CPU through the interpreter.
"""
import os
import sys

# Test modules import shared helpers as ``from helpers import ...``.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

try:  # torch is a hard dependency, but keep conftest importable for a clear error later
    import torch

    _HAS_CUDA = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _HAS_CUDA = False

if not _HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA GPU (compiled Triton kernels); skipped on CPU")
    config.addinivalue_line("markers", "slow: longer end-to-end tests")
    config.addinivalue_line("markers", "faults: fault injection from the command line (issue 21)")


def pytest_collection_modifyitems(config, items):
    if _HAS_CUDA:
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


# Optional packages: triton (the ``triton`` extra: Triton kernels, on a CPU through the interpreter)
# and torchvision (the ``paper`` extra, pinned to one torch). A test that reaches for one that is not
# installed is reported as skipped with the install that brings it, never as a failure.
_OPTIONAL = {"triton": "pip install -e '.[triton]'",
             "torchvision": "pip install -e '.[paper]' (the build matching torch)"}


def _missing_optional(excinfo):
    """The skip reason if ``excinfo`` is an optional package being absent, else None."""
    import importlib.util

    from kernels._triton import HAVE_TRITON, TritonUnavailable

    if excinfo.errisinstance(TritonUnavailable):
        return f"needs triton: {excinfo.value}"
    if excinfo.errisinstance(ImportError):
        missing = (getattr(excinfo.value, "name", None) or "").split(".")[0]
        # only when the package is really absent: an ImportError inside an installed one is a failure
        absent = not HAVE_TRITON if missing == "triton" else importlib.util.find_spec(missing) is None \
            if missing in _OPTIONAL else False
        if absent:
            return f"needs {missing}, not installed: {_OPTIONAL[missing]}"
    if _torchvision_mismatch(excinfo):
        return (f"torchvision does not load with torch {torch.__version__} ({excinfo.typename}: {excinfo.value}); "
                f"{_OPTIONAL['torchvision']}")
    return None


def _torchvision_mismatch(excinfo) -> bool:
    """An error raised while importing torchvision itself (a build for another torch: missing operators,
    undefined symbols)."""
    import torchvision_check

    return torchvision_check.raised_in_torchvision_import(excinfo.traceback)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if call.excinfo is not None and report.failed:
        reason = _missing_optional(call.excinfo)
        if reason:
            report.outcome = "skipped"
            report.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {reason}")


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest, deterministic, and avoids oversubscribing a 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
