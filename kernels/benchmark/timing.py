"""Timing primitives.

* CUDA: ``triton.testing.do_bench`` (L2 flushed, CUDA events) with quantiles, and
  ``do_bench_cudagraph`` for launch-bound shapes (replays a captured graph: GPU time without the
  host launch overhead).
* CPU: wall-clock per call with ``time.perf_counter`` after a warm-up; median and 20/80 quantiles.
  The number of timed calls adapts to the call's cost so each measurement takes about ``budget_s``.
  The providers of one benchmark cell are timed in interleaved rounds (:func:`time_providers`): a
  shared CPU has slow phases lasting seconds, and timing providers one after the other turned them
  into spurious 2x "speedups" either way.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable, Dict, List, Optional, Union

import torch


def _quantiles(samples_ms) -> Dict[str, float]:
    s = sorted(samples_ms)
    q = lambda f: s[min(len(s) - 1, int(round(f * (len(s) - 1))))]  # noqa: E731
    return {"median_ms": statistics.median(s), "p20_ms": q(0.2), "p80_ms": q(0.8), "n": len(s)}


def time_cpu(fn: Callable[[], object], budget_s: float = 0.25, warmup: int = 3, max_calls: int = 2000) -> Dict[str, float]:
    """Median wall-clock milliseconds per call of ``fn`` on the CPU.

    Args:
        fn: zero-argument callable (one op call).
        budget_s: target total timed wall time.
        warmup: untimed calls first (JIT builds, allocator warm-up, ``torch.compile``).
        max_calls: cap on timed calls.
    """
    for _ in range(warmup):
        fn()
    t0 = time.perf_counter()
    fn()
    est = max(time.perf_counter() - t0, 1e-7)
    n = int(min(max_calls, max(5, budget_s / est)))
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(samples)


def time_cuda(fn: Callable[[], object], cudagraph: bool = False, quick: bool = False) -> Dict[str, float]:
    """``triton.testing.do_bench`` (or ``do_bench_cudagraph``) quantiles in milliseconds."""
    import triton.testing as tt

    rep = 20 if quick else 100
    if cudagraph:
        res = tt.do_bench_cudagraph(fn, rep=rep, quantiles=[0.5, 0.2, 0.8])
    else:
        res = tt.do_bench(fn, warmup=5 if quick else 25, rep=rep, quantiles=[0.5, 0.2, 0.8])
    med, p20, p80 = res
    return {"median_ms": med, "p20_ms": p20, "p80_ms": p80, "n": float("nan")}


def time_fn(fn: Callable[[], object], device: torch.device, quick: bool = False, cudagraph: bool = False) -> Dict[str, float]:
    """Dispatch to :func:`time_cuda` or :func:`time_cpu` by device type."""
    if torch.device(device).type == "cuda":
        return time_cuda(fn, cudagraph=cudagraph, quick=quick)
    return time_cpu(fn, budget_s=0.02 if quick else 0.25, warmup=2 if quick else 5)


#: CPU rounds per benchmark cell, and the per-call cost above which a provider is timed in one round only.
CPU_ROUNDS = 3
CPU_SLOW_CALL_MS = 50.0


def time_providers(fns: Dict[str, Callable[[], object]], device: torch.device,
                   quick: bool = False) -> Dict[str, Union[Dict[str, float], Exception]]:
    """Time several providers of one cell; a provider that raises gets its exception instead.

    CUDA (or ``quick``): one :func:`time_fn` per provider. CPU: ``CPU_ROUNDS`` rounds, each timing
    every provider once in turn (``budget_s`` split between rounds); the result is the median of the
    round medians, with the lowest p20 and highest p80. Providers slower than ``CPU_SLOW_CALL_MS``
    per call are timed in the first round only (their own noise is small against their cost).
    """
    out: Dict[str, Union[Dict[str, float], Exception]] = {}
    rounds: Dict[str, List[Dict[str, float]]] = {}
    cpu = torch.device(device).type != "cuda"
    n_rounds = CPU_ROUNDS if cpu and not quick else 1
    for r in range(n_rounds):
        for name, fn in fns.items():
            if isinstance(out.get(name), Exception) or (r > 0 and rounds[name][0]["median_ms"] > CPU_SLOW_CALL_MS):
                continue
            try:
                if cpu and n_rounds > 1:
                    t = time_cpu(fn, budget_s=0.25 / n_rounds, warmup=5 if r == 0 else 1)
                else:
                    t = time_fn(fn, device, quick=quick)
            except Exception as exc:  # noqa: BLE001 - reported per provider by the caller
                out[name] = exc
                continue
            rounds.setdefault(name, []).append(t)
    for name, ts in rounds.items():
        if name in out:
            continue
        out[name] = {
            "median_ms": statistics.median(t["median_ms"] for t in ts),
            "p20_ms": min(t["p20_ms"] for t in ts),
            "p80_ms": max(t["p80_ms"] for t in ts),
            "n": sum(t["n"] for t in ts),
        }
    return out


_COMPILE_STACK_STARTED = set()


def _start_compile_stack(device: torch.device) -> None:
    """Compile and run a tiny function (forward and backward) once per process and device type, untimed:
    the compile stack's one-time start (importing dynamo and inductor, probing the compiler) is paid once
    per process -- once per worker of ``mmbench all``, whatever the shapes -- not per shape."""
    if device.type in _COMPILE_STACK_STARTED:
        return
    _COMPILE_STACK_STARTED.add(device.type)
    x = torch.ones(3, device=device, requires_grad=True)
    torch.compile(lambda t: (t.exp() * 2).sum(), dynamic=False)(x).backward()


def cold_first_call_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of ``fn``'s first call with nothing compiled before it: the compile time of a
    ``torch.compile`` provider at this shape, plus one execution (microseconds beside seconds).

    Cold means: every graph compiled so far in the process is forgotten (:func:`kernels.compiled.reset`,
    ``torch._dynamo.reset()``) and torch.compile's on-disk caches (FX graph, AOTAutograd, inductor's
    code cache) are off for the call (``torch.compiler.config.force_disable_caches``), so dynamo traces,
    AOTAutograd and inductor lower and the C++ (CPU) or Triton (CUDA) compiler runs, as in the first run
    on a fresh machine. A later process finds inductor's disk cache and compiles faster, so this is the
    upper end of what a run pays per shape. The process's one-time start of the compile stack is
    excluded (:func:`_start_compile_stack`, before the first measurement).
    """
    import warnings

    from kernels.compiled import reset

    dev = torch.device(device)
    with torch.compiler.config.patch(force_disable_caches=True), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")  # once per call, expected here
        _start_compile_stack(dev)
        reset()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        return time.perf_counter() - t0


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> Optional[float]:
    """Peak allocated CUDA memory (MB) during one call, measured from the pre-call level; None on CPU."""
    if torch.device(device).type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


_COPY_BUFFERS: Dict[str, tuple] = {}


def copy_bandwidth_gbs(device: torch.device, quick: bool = False, budget_s: float = 0.25) -> float:
    """Measured device copy bandwidth in GB/s: ``y.copy_(x)`` of a large fp32 tensor (read + write).

    ``budget_s`` is the CPU timing budget (the per-cell measurement uses a short one); the buffers are
    kept between calls so a per-cell measurement does not allocate 128 MB each time.
    """
    dev = torch.device(device)
    nbytes = (256 if dev.type == "cuda" else 64) * 2**20
    if quick:
        nbytes //= 8
    key = f"{dev}/{nbytes}"
    if key not in _COPY_BUFFERS:
        x = torch.empty(nbytes // 4, dtype=torch.float32, device=dev).uniform_()
        _COPY_BUFFERS.clear()
        _COPY_BUFFERS[key] = (x, torch.empty_like(x))
    x, y = _COPY_BUFFERS[key]
    if dev.type == "cuda":
        t = time_fn(lambda: y.copy_(x), dev, quick=quick)
    else:
        t = time_cpu(lambda: y.copy_(x), budget_s=0.02 if quick else budget_s, warmup=1 if quick else 2)
    return 2 * nbytes / (t["median_ms"] * 1e-3) / 1e9


def device_name(device: torch.device) -> str:
    """Human-readable device name for result rows."""
    dev = torch.device(device)
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    import platform

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU {name} ({torch.get_num_threads()} threads)"
