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


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models: one intra-op thread is fastest, deterministic, and avoids oversubscribing a 2-core box."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
