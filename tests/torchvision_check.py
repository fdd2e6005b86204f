"""torchvision is optional (the ``paper`` extra) and each release pins one torch: tests that need it
skip, with the reason, when it is absent or built for another torch (importing it then fails with a
missing operator or an undefined symbol rather than an ``ImportError``)."""
from __future__ import annotations

import os

import pytest

INSTALL = "pip install -e '.[paper]' (the torchvision build matching your torch)"


def raised_in_torchvision_import(traceback) -> bool:
    """Whether a pytest traceback passes through torchvision's own ``__init__`` (its import failed)."""
    return any(os.path.join("torchvision", "__init__.py") in str(entry.path) for entry in traceback)


def torchvision_or_skip():
    """``torchvision``, or skip the calling test module naming why it cannot be used."""
    import torch

    try:
        import torchvision
    except ImportError as err:
        pytest.skip(f"needs torchvision, not installed ({err}): {INSTALL}", allow_module_level=True)
    except Exception as err:  # noqa: BLE001 - any failure to load is "does not match this torch"
        pytest.skip(f"torchvision does not load with torch {torch.__version__} ({type(err).__name__}: {err}): "
                    f"{INSTALL}", allow_module_level=True)
    return torchvision
