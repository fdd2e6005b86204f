"""What a run ran on: library versions and the machine, recorded in every result and named in the tables.

Beyond the seed, a run's numbers depend on the CPU's instruction set (which SIMD kernels torch and the
BLAS pick: AVX2 and AVX-512 paths sum in different orders), the BLAS/LAPACK library, the number of
threads, and the deterministic-algorithm settings. :func:`environment` records all of them so two
results that differ can be traced to what differed. None of it enters the run key (see
:mod:`mmbench.run_key`): the committed results must stay cache hits on other machines.
"""
from __future__ import annotations

import functools
import json
import os
import platform
import re
from typing import Any, Dict, List

import numpy as np

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


# The /proc/cpuinfo flags that select numeric kernels (SIMD width, FMA): the ones that change results.
_NUMERIC_FLAGS = re.compile(r"^(sse4_1|sse4_2|avx|avx2|fma|f16c|avx512.*|amx.*|avx_vnni.*)$")


@functools.lru_cache(maxsize=1)
def cpu_flags() -> List[str]:
    """The CPU's numeric-kernel flags (AVX, AVX2, FMA, AVX-512*, AMX*) from ``/proc/cpuinfo``, sorted."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return sorted(x for x in line.split(":", 1)[1].split() if _NUMERIC_FLAGS.match(x))
    except OSError:
        pass
    return []


@functools.lru_cache(maxsize=1)
def numeric_libraries() -> Dict[str, str]:
    """torch's BLAS / LAPACK and CPU capability, and numpy's BLAS, from their build configurations."""
    import torch

    config = torch.__config__.show()
    out = {}
    for key in ("BLAS_INFO", "LAPACK_INFO", "USE_MKLDNN", "USE_OPENMP"):
        found = re.search(rf"{key}=([^,\s]+)", config)
        out[f"torch_{key.lower()}"] = found.group(1) if found else "?"
    out["torch_cpu_capability"] = _safe(lambda: torch.backends.cpu.get_cpu_capability())
    mkl = (line.strip("- ").strip() for line in config.splitlines() if "Math Kernel" in line)
    out["torch_mkl"] = next(mkl, "none")
    out["numpy_blas"] = _safe(lambda: _numpy_blas())
    return out


def _numpy_blas() -> str:
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()


def _safe(fn) -> str:
    try:
        return str(fn())
    except Exception:  # a library without the introspection call: record that, never fail a run
        return "?"


def environment() -> Dict[str, str]:
    """Versions, machine and numeric settings of this process, as strings (the ``env`` of a run result).

    ``threads``: torch intra-op threads at the time of the call (the runner records it again once a
    run set its own); ``deterministic``: ``torch.are_deterministic_algorithms_enabled()``.
    """
    import torch

    info = {
        "mmbench": mmbench.__version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": str(os.cpu_count()),
        "cpu_flags": " ".join(cpu_flags()),
        **numeric_libraries(),
        "threads": str(torch.get_num_threads()),
        "interop_threads": str(torch.get_num_interop_threads()),
        "deterministic": str(torch.are_deterministic_algorithms_enabled()),
        "thread_env": json.dumps({k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "MKL_CBWR",
                                                            "OPENBLAS_NUM_THREADS") if k in os.environ}),
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
    line = (f"{cpu}, {env.get('cpu_count', '?')} cores, {device}; "
            f"Python {env.get('python', '?')}, torch {env.get('torch', '?')}")
    if env.get("torch_cpu_capability"):  # recorded since the numeric details were: they decide the last bits
        line += f" ({env['torch_cpu_capability']} kernels, BLAS {env.get('torch_blas_info', '?')})"
    return line
