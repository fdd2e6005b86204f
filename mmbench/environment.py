"""What a run ran on: library versions and the machine, recorded in every result and named in the tables."""
from __future__ import annotations

import os
import platform
from typing import Any, Dict

import numpy as np
import torch

import mmbench


def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (Linux), else ``platform.processor()`` or ``""``."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def environment() -> Dict[str, str]:
    """Versions and machine of this process, as strings (the ``env`` of a run result)."""
    info = {
        "mmbench": mmbench.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
    }
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def machine_line(env: Dict[str, Any]) -> str:
    """One line naming the machine of a run ``env`` (keys missing from older results are skipped)."""
    cpu = env.get("cpu") or env.get("platform", "?")
    device = env.get("gpu") or "no GPU"
    return f"{cpu}, {env.get('cpu_count', '?')} cores, {device}; Python {env.get('python', '?')}, torch {env.get('torch', '?')}"
