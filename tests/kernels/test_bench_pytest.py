"""pytest-benchmark suite: op 1 on the CPU, eager vs the C++ extension at realistic shapes.

Collected with the normal tests but kept short (few rounds). pytest-benchmark times with
``time.perf_counter`` and no device sync, so it is for CPU-side costs only; GPU timing lives in
``kernels.benchmark`` (``triton.testing.do_bench``).
"""
import pytest
import torch

import kernels.cpp_ext as cpp_ext
from kernels import modality_stats, weighted_multimodal_ce

SHAPES = [(2, 64, 6), (3, 64, 309)]
BACKENDS = ["eager", "cpp"]


def _inputs(M, B, C):
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(B, C, generator=g).requires_grad_() for _ in range(M)]
    return xs, torch.randint(0, C, (B,), generator=g), torch.rand(M, generator=g)


def _skip_cpp(backend):
    if backend == "cpp" and not cpp_ext.cpp_available():
        pytest.skip("C++ extension unavailable")


def _pedantic(benchmark, fn):
    return benchmark.pedantic(fn, rounds=20, iterations=5, warmup_rounds=2)


@pytest.mark.benchmark(group="modality_stats")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("M,B,C", SHAPES)
def test_bench_modality_stats(benchmark, backend, M, B, C):
    _skip_cpp(backend)
    xs, y, _ = _inputs(M, B, C)
    out = _pedantic(benchmark, lambda: modality_stats(xs, y, backend=backend))
    assert out.ce.shape == (M, B)


@pytest.mark.benchmark(group="weighted_ce_fwd_bwd")
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("M,B,C", SHAPES)
def test_bench_weighted_ce_fwd_bwd(benchmark, backend, M, B, C):
    _skip_cpp(backend)
    xs, y, w = _inputs(M, B, C)

    def step():
        for t in xs:
            t.grad = None
        weighted_multimodal_ce(xs, y, w, backend=backend).backward()

    _pedantic(benchmark, step)
    assert xs[0].grad is not None
