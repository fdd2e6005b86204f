"""The ``compile`` backend of op 1 (issue 22 item 6): ``torch.compile`` of the eager specification.

What ``auto`` runs when the dispatch table picks ``compile`` must really be compiled, equal eager within
fp32 rounding (statistics, loss and each modality's gradient), and fall back to eager with a warning
naming the reason where torch.compile cannot run. The compiling tests take seconds each (inductor's C++
compiler on the CPU): marked slow, skipped where torch.compile cannot run.
"""
import json
import warnings

import pytest
import torch

from kernels import compiled, dispatch, modality_stats, weighted_multimodal_ce

TOL = dict(rtol=1e-5, atol=1e-6)
needs_compile = pytest.mark.skipif(not compiled.compile_would_work("cpu"),
                                   reason=f"torch.compile unusable here: {compiled.unusable_reason('cpu')}")


def _inputs(M=2, B=8, C=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, C, generator=g) * 3 for _ in range(M)], torch.randint(0, C, (B,), generator=g)


def _graphs_compiled() -> int:
    """Graphs dynamo has compiled in this process so far."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def _check_against_eager(backend):
    """Statistics, forward loss, loss + gradients under ``backend`` against eager on the same inputs."""
    xs, y = _inputs()
    w = torch.tensor([0.7, 1.3])
    got, ref = modality_stats(xs, y, backend=backend), modality_stats(xs, y, backend="eager")
    for name, a, b in zip(got._fields, got, ref):
        torch.testing.assert_close(a, b, **TOL, msg=name)
    with torch.no_grad():
        torch.testing.assert_close(weighted_multimodal_ce(xs, y, w, backend=backend),
                                   weighted_multimodal_ce(xs, y, w, backend="eager"), **TOL)
    leaves = [x.clone().requires_grad_() for x in xs]
    ref_leaves = [x.clone().requires_grad_() for x in xs]
    loss, stats = weighted_multimodal_ce(leaves, y, w, backend=backend, return_stats=True)
    loss.backward()
    ref_loss = weighted_multimodal_ce(ref_leaves, y, w, backend="eager")
    ref_loss.backward()
    torch.testing.assert_close(loss, ref_loss, **TOL)
    for a, b in zip(leaves, ref_leaves):
        torch.testing.assert_close(a.grad, b.grad, **TOL)
    torch.testing.assert_close(stats.ce, ref.ce, **TOL)


@pytest.mark.slow
@needs_compile
def test_auto_with_a_table_choosing_compile_runs_compiled_and_equals_eager(tmp_path, monkeypatch):
    """Under ``auto`` with every small cell on compile: dynamo compiles frames, no fallback warning, and
    every output equals eager within fp32 rounding."""
    table = tmp_path / "t.json"
    table.write_text(json.dumps({"choices": {f"cpu/{op}/{mode}/float32/small": "compile"
                                             for op, modes in dispatch.DISPATCH_OPS.items() for mode in modes}}))
    monkeypatch.setenv(dispatch.ENV_TABLE, str(table))
    monkeypatch.delenv("MMBENCH_KERNELS_BACKEND", raising=False)
    assert set(dispatch.resolved_providers("auto", "cpu")[f"{op}/{m}/small"]
               for op, modes in dispatch.DISPATCH_OPS.items() for m in modes) == {"compile"}
    before = _graphs_compiled()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback to eager would warn
        _check_against_eager("auto")
    # statistics, the CE without a graph and the CE with one: three graphs at least
    assert _graphs_compiled() - before >= 3, "auto chose compile but not every call was compiled"


@pytest.mark.slow
@needs_compile
def test_compile_backend_propagates_nan_and_keeps_a_stacked_input():
    """A NaN logit gives NaN statistics for its row (as on every provider); a stacked [M, B, C] tensor
    compiles as well as a list."""
    xs, y = _inputs()
    x = torch.stack(xs)
    x[1, 2, 3] = float("nan")
    st = modality_stats(x, y, backend="compile")
    assert torch.isnan(st.ce[1, 2]) and torch.isnan(st.entropy[1, 2]) and torch.isnan(st.ce_mean[1])
    assert torch.isfinite(st.ce[0]).all()
    ok = torch.ones_like(st.ce, dtype=torch.bool)
    ok[1, 2] = False
    torch.testing.assert_close(st.ce[ok], modality_stats(x, y, backend="eager").ce[ok], **TOL)


def test_unusable_compile_falls_back_to_eager_with_the_reason(monkeypatch):
    """``MMBENCH_NO_COMPILE=1``: backend="compile" warns once, naming why, and returns eager's numbers."""
    monkeypatch.setattr(compiled, "_STATE", {})
    monkeypatch.setattr(compiled, "_WARNED", set())
    monkeypatch.setenv(compiled.ENV_NO_COMPILE, "1")
    xs, y = _inputs()
    with pytest.warns(RuntimeWarning, match="MMBENCH_NO_COMPILE=1"):
        got = modality_stats(xs, y, backend="compile")
    torch.testing.assert_close(got.ce, modality_stats(xs, y, backend="eager").ce, rtol=0, atol=0)
    assert set(dispatch.resolved_providers("compile", "cpu").values()) == {"eager"}


def test_a_compile_error_falls_back_to_eager_and_is_remembered(monkeypatch):
    """A compile error at the first call (here: inductor finding no C++ compiler) is caught: eager's result,
    one warning with the reason, and the device is unusable for the rest of the process."""
    from torch._inductor.exc import InvalidCxxCompiler

    monkeypatch.setattr(compiled, "_STATE", {})
    monkeypatch.setattr(compiled, "_WARNED", set())
    monkeypatch.setattr(compiled, "_SEEN", set())
    monkeypatch.delenv(compiled.ENV_NO_COMPILE, raising=False)
    monkeypatch.setattr(compiled, "unusable_reason", lambda dev, real=compiled.unusable_reason:
                        compiled._STATE.get(dev, ""))  # pretend the cheap checks pass

    def broken(fn):
        def run(*args):
            raise InvalidCxxCompiler()
        return run

    monkeypatch.setattr(compiled, "compiled", broken)
    xs, y = _inputs()
    leaves = [x.clone().requires_grad_() for x in xs]
    with pytest.warns(RuntimeWarning, match="InvalidCxxCompiler"):
        loss = weighted_multimodal_ce(leaves, y, torch.ones(2), backend="compile")
    loss.backward()
    torch.testing.assert_close(loss, weighted_multimodal_ce(xs, y, torch.ones(2), backend="eager"), rtol=0, atol=0)
    assert "InvalidCxxCompiler" in compiled._STATE["cpu"]
    assert dispatch.resolved_providers("compile", "cpu")["weighted_multimodal_ce/fwd_bwd/small"] == "eager"


def test_compile_is_a_backend_of_op_1_only():
    """"compile" is a backend name (method settings accept it); like "cpp" it is op 1's alone: the other
    ops refuse it with the names they accept."""
    from kernels import mad_loss
    from kernels._utils import BACKENDS, resolve_backend
    from mmbench.settings_schema import kernel_backends

    assert "compile" in BACKENDS and "compile" in kernel_backends()
    assert resolve_backend("compile", torch.device("cpu")) == "compile"
    with pytest.raises(ValueError, match="'auto', 'eager' or 'triton'; got 'compile'"):
        mad_loss(torch.randn(6, 4), torch.randn(6, 4), torch.rand(6), backend="compile")


def test_a_function_at_its_recompile_limit_runs_new_shapes_eager_and_stays_usable(monkeypatch):
    """Past RECOMPILE_LIMIT shapes (dynamo raises under fullgraph) a new shape runs eager with one warning;
    unlike a compile error, the device stays usable for the shapes already compiled."""
    from torch._dynamo.exc import FailOnRecompileLimitHit

    monkeypatch.setattr(compiled, "_STATE", {"cpu": ""})  # compiled fine so far
    monkeypatch.setattr(compiled, "_WARNED", set())
    monkeypatch.setattr(compiled, "_SEEN", set())

    def at_limit(fn):
        def run(*args):
            raise FailOnRecompileLimitHit("recompile_limit reached")
        return run

    monkeypatch.setattr(compiled, "compiled", at_limit)
    xs, y = _inputs()
    with pytest.warns(RuntimeWarning, match=f"reached {compiled.RECOMPILE_LIMIT} compiled shapes"):
        got = modality_stats(xs, y, backend="compile")
    torch.testing.assert_close(got.ce, modality_stats(xs, y, backend="eager").ce, rtol=0, atol=0)
    assert compiled.compile_would_work("cpu") and compiled._STATE["cpu"] == ""


def test_no_cxx_compiler_is_known_before_compiling(monkeypatch):
    """Without a C++ compiler inductor cannot build CPU code: the cheap check says so (run keys then
    report eager for compile) without trying to compile."""
    monkeypatch.setattr(compiled, "_STATE", {})
    monkeypatch.delenv(compiled.ENV_NO_COMPILE, raising=False)
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    assert "no C++ compiler" in compiled.unusable_reason("cpu")
    assert set(dispatch.resolved_providers("compile", "cpu").values()) == {"eager"}
