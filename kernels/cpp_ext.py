"""C++/CUDA extension of op 1, built just in time with ``torch.utils.cpp_extension.load`` (ninja).

* CPU: ``csrc/modality_stats.cpp`` -- rows split with ``at::parallel_for``, contiguous class loops
  vectorised by the compiler (:data:`CPU_FLAGS`, plus ``-mavx2 -mfma`` when the CPU has them). No
  ``-ffast-math``: it implies ``-ffinite-math-only``, under which the compiler may assume no NaN or
  inf and a NaN logit could vanish from the statistics; the flags used only allow reassociating the
  sums (NaN still propagates through any order of additions) and drop ``errno``. glibc's vector
  ``expf`` is declared only under ``__FAST_MATH__``, so the class loops use ``exp_nonpos`` (Cephes
  ``expf`` in plain arithmetic, about 1 ulp, NaN in -> NaN out), which the compiler vectorises.
* CUDA: ``csrc/modality_stats_cuda.cu``, compiled in only when ``torch.cuda.is_available()`` and a
  CUDA toolkit is found.

The build goes to a folder of its own per environment, :func:`build_directory`:
``$MMBENCH_CACHE/ext/<python>-<torch>-<compiler>`` (``~/.cache/mmbench`` without ``MMBENCH_CACHE``;
``MMBENCH_EXT_DIR`` overrides it), so two virtual environments with different torch builds never
rebuild over each other, nor wait on each other's lock. The first build takes about a minute;
:func:`build_announced` (``python -m mmbench build-ext``, and the first ``run`` or ``all``) does it
with a message, before anything is timed. If the compiler or ninja is
missing or the build fails, :func:`load_extension_or_warn` emits **one** warning and returns None,
and ``backend="cpp"`` falls back to eager. :func:`cpp_available` tells whether the build works.
Setting ``MMBENCH_NO_CPP=1`` disables the extension (no build attempted).
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import subprocess
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Callable, Optional

import torch

_CSRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "csrc")
_LOCK = threading.Lock()
_STATE = {"ext": None, "tried": False, "error": "", "warned": False}


#: Host compiler flags of the CPU code: reassociation for vectorised sums, no errno, no finite-math.
CPU_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fno-signed-zeros", "-fassociative-math"]


def _simd_flags():
    """``-mavx2 -mfma`` when this CPU has them (8-wide loops and vector expf); nothing otherwise.

    The flags are part of torch's build hash, so a machine without AVX2 builds its own variant
    instead of loading one it cannot run.
    """
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line.split(":", 1)[1].split() for line in fh if line.startswith("flags")), [])
    except OSError:
        return []
    return ["-mavx2", "-mfma"] if "avx2" in flags and "fma" in flags else []


def _compiler_id() -> str:
    """The first line of the C++ compiler's ``--version`` (torch builds with ``$CXX`` or ``c++``)."""
    cxx = os.environ.get("CXX", "c++")
    try:
        out = subprocess.run([cxx, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return f"{cxx}-unknown"
    return (out.splitlines() or [f"{cxx}-unknown"])[0]


def build_directory() -> str:
    """This environment's build folder: keyed by Python, torch (version and CUDA) and the compiler."""
    if os.environ.get("MMBENCH_EXT_DIR"):
        return os.environ["MMBENCH_EXT_DIR"]
    root = os.environ.get("MMBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "mmbench")
    compiler = hashlib.sha256(_compiler_id().encode()).hexdigest()[:10]
    tag = (f"py{sys.version_info[0]}{sys.version_info[1]}-torch{torch.__version__}-"
           f"cuda{torch.version.cuda or 'none'}-{platform.machine()}-cxx{compiler}")
    return os.path.join(os.path.expanduser(root), "ext", tag.replace("+", "_"))


@contextmanager
def _no_cuda_home_notice():
    """Silence torch's "No CUDA runtime is found, using CUDA_HOME=..." (logged when a CUDA build of
    torch finds a toolkit but no GPU): on a CPU machine it is no problem, the CPU variant is built."""
    log = logging.getLogger("torch.utils.cpp_extension")
    level = log.level
    if not torch.cuda.is_available():
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _extension_name(with_cuda: bool) -> str:
    return "mmbench_modality_stats" + ("_cuda" if with_cuda else "_cpu")


def _build():
    with _no_cuda_home_notice():
        from torch.utils.cpp_extension import CUDA_HOME, load

    sources = [os.path.join(_CSRC, "modality_stats.cpp")]
    flags = CPU_FLAGS + _simd_flags()
    cuda_flags = []
    with_cuda = torch.cuda.is_available() and CUDA_HOME is not None
    _STATE["with_cuda"] = with_cuda
    if with_cuda:
        sources.append(os.path.join(_CSRC, "modality_stats_cuda.cu"))
        flags.append("-DWITH_CUDA")
        cuda_flags = ["-O3", "-DWITH_CUDA"]
    folder = build_directory()
    os.makedirs(folder, exist_ok=True)
    return load(
        name=_extension_name(with_cuda),
        sources=sources,
        build_directory=folder,
        extra_cflags=flags,
        extra_cuda_cflags=cuda_flags or None,
        extra_include_paths=wheel_cuda_include_dirs() if with_cuda else None,  # cusparse.h for torch's headers
        verbose=False,
    )


def wheel_cuda_include_dirs():
    """Include folders of the pip ``nvidia`` wheels holding ``cusparse.h`` (torch's CUDA headers include it;
    a bare nvcc toolkit such as /usr/local/cuda-13.0 may lack the library headers). Empty if none."""
    import glob
    import importlib.util

    spec = importlib.util.find_spec("nvidia")
    roots = list(spec.submodule_search_locations) if spec and spec.submodule_search_locations else []
    return sorted({os.path.dirname(h) for r in roots for h in glob.glob(os.path.join(r, "*", "include", "cusparse.h"))})


def build_cuda_extension(build_directory: str, archs: str = "8.0;9.0", verbose: bool = False):
    """Compile the CPU and CUDA sources (``-DWITH_CUDA``) for ``archs`` whether or not a GPU is present.

    This is the compile check of ``csrc/modality_stats_cuda.cu`` (tests, ``scripts/gpu_check.sh``):
    without a GPU torch cannot pick the architectures itself, so ``TORCH_CUDA_ARCH_LIST`` is set for
    the build; ``CUDA_HOME`` must name the nvcc toolkit matching ``torch.version.cuda``. The build is
    incremental in ``build_directory`` (ninja): a rebuild with unchanged sources takes seconds.

    Returns:
        The path of the built shared library (it is not imported: loading needs a CUDA driver).
    """
    from torch.utils.cpp_extension import load

    os.makedirs(build_directory, exist_ok=True)
    old = os.environ.get("TORCH_CUDA_ARCH_LIST")
    os.environ["TORCH_CUDA_ARCH_LIST"] = archs
    name = "mmbench_modality_stats_cuda_check"
    try:
        load(
            name=name,
            sources=[os.path.join(_CSRC, "modality_stats.cpp"), os.path.join(_CSRC, "modality_stats_cuda.cu")],
            extra_cflags=CPU_FLAGS + ["-DWITH_CUDA"] + _simd_flags(),
            extra_cuda_cflags=["-O3", "-DWITH_CUDA"],
            extra_include_paths=wheel_cuda_include_dirs(),
            build_directory=build_directory,
            with_cuda=True,
            is_python_module=False,  # build only: importing would need libcuda
            verbose=verbose,
        )
    finally:
        if old is None:
            os.environ.pop("TORCH_CUDA_ARCH_LIST", None)
        else:
            os.environ["TORCH_CUDA_ARCH_LIST"] = old
    return os.path.join(build_directory, f"{name}.so")


def get_extension():
    """Build (once per process) and return the extension module, or None if the build fails."""
    with _LOCK:
        if not _STATE["tried"]:
            _STATE["tried"] = True
            if os.environ.get("MMBENCH_NO_CPP", "") == "1":
                _STATE["error"] = "disabled by MMBENCH_NO_CPP=1"
                return None
            try:
                _STATE["ext"] = _build()
            except Exception as exc:  # noqa: BLE001 - any toolchain failure means "not available"
                _STATE["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
        return _STATE["ext"]


def build_announced(say: Callable[[str], None]) -> bool:
    """Build (or load) the extension now, telling ``say`` when a build happens and how long it took.

    Called before anything is timed (``build-ext``, the first ``run``, ``all`` before its workers
    start), so a build never lands in a run's stored throughput. Returns whether it is available.
    """
    if _STATE["tried"] or os.environ.get("MMBENCH_NO_CPP", "") == "1":
        return get_extension() is not None
    folder = build_directory()
    with_cuda = torch.cuda.is_available()
    built = any(f.startswith(_extension_name(with_cuda)) and f.endswith(".so")
                for f in (os.listdir(folder) if os.path.isdir(folder) else []))
    if not built:
        say(f"C++ extension: building it for this environment in {folder} (once; about a minute)...")
    start = time.perf_counter()
    ok = get_extension() is not None
    took = time.perf_counter() - start
    if not built or took > 5:  # a first build, or sources changed since the last one
        say(f"C++ extension: {'built' if ok else 'not available'} in {took:.0f} s"
            + ("" if ok else f" ({_STATE['error']}); the eager path is used"))
    return ok


def cpp_available() -> bool:
    """True if the extension builds/loads on this machine (builds it on first call)."""
    return get_extension() is not None


def cpp_unavailable_reason() -> str:
    """Why the extension is unavailable ('' if it is available)."""
    get_extension()
    return _STATE["error"]


def load_extension_or_warn(device: Optional[torch.device] = None):
    """The extension, or None after one ``warnings.warn`` (then callers fall back to eager).

    Also None (with the warning) when ``device`` is CUDA and the extension was built CPU-only.
    """
    ext = get_extension()
    reason = _STATE["error"]
    if ext is not None and device is not None and torch.device(device).type == "cuda" and not _STATE.get("with_cuda"):
        ext, reason = None, "extension built without CUDA support"
    if ext is None and not _STATE["warned"]:
        _STATE["warned"] = True
        warnings.warn(f"kernels: backend='cpp' unavailable ({reason}); falling back to eager", RuntimeWarning, stacklevel=3)
    return ext


class WeightedCECpp(torch.autograd.Function):
    """Autograd wrapper around the extension.

    ``apply(holder, labels, weights, *xs)`` with ``xs`` either one stacked ``[M, B, C]`` tensor or
    the ``M`` list elements ``[B, C]`` (passed through without stacking; each gets its own gradient
    buffer), and ``weights`` the detached ``[M]`` or ``[M, B]`` tensor. Returns the scalar loss; the
    statistics of the same pass ``(lse, ce, entropy, p_true, sums)`` are appended to the list
    ``holder`` (a single differentiable output keeps autograd's per-call overhead low).
    """

    @staticmethod
    def forward(ctx, holder, labels, weights, *xs):
        lse, ce, ent, pt, sums, state = get_extension().stats_forward(list(xs), labels, weights)
        holder.append((lse, ce, ent, pt, sums))
        ctx.save_for_backward(labels, weights, state, *xs)  # state: [2, M, B] row max and log-sum
        return sums[-1]

    @staticmethod
    def backward(ctx, grad_loss):
        labels, weights, state, *xs = ctx.saved_tensors
        return (None, None, None, *get_extension().ce_backward(xs, labels, weights, state, grad_loss))
