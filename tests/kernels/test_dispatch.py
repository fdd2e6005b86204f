"""Issue 22 item 6: ``auto`` is the measured fastest correct provider per op, mode, dtype and shape class.

The table is made by ``bench`` from its own results (:func:`kernels.dispatch.table_from_results`); the
shipped default must be exactly what the committed ``results/kernels.csv`` implies.
"""
import json
import os

import pandas as pd
import pytest
import torch

from kernels import dispatch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _rows(cells):
    """Long-format rows: ``cells`` = [(op, mode, shape, provider, median_ms, max_rel_err or None)]."""
    out = []
    for op, mode, shape, prov, ms, err in cells:
        base = dict(op=op, provider=prov, mode=mode, shape=shape, dtype="float32", device="cpu", timestamp="t")
        out.append({**base, "metric": "median_ms", "value": ms})
        if err is not None:
            out.append({**base, "metric": "max_rel_err", "value": err})
    return pd.DataFrame(out)


def test_shape_classes():
    assert dispatch.shape_class(3, 64, 31) == "small"  # the realistic heads
    assert dispatch.shape_class(2, 64, 309) == "medium" and dispatch.shape_class(2, 1024, 64) == "medium"
    assert dispatch.shape_class(2, 4096, 1000) == "large"


def test_table_picks_fastest_correct_candidate_summed_over_the_class():
    """Fastest by total time over the class's shapes; a provider wrong anywhere in the class (error above
    1e-4 or not measured) is out; non-candidates (compile, released) are never picked even when faster."""
    S1, S2, L = "M=2,B=64,C=6", "M=3,B=64,C=31", "M=2,B=4096,C=1000"
    df = _rows([
        ("modality_stats", "fwd", S1, "eager", 0.050, 0.0), ("modality_stats", "fwd", S1, "cpp", 0.010, 1e-7),
        ("modality_stats", "fwd", S2, "eager", 0.060, 0.0), ("modality_stats", "fwd", S2, "cpp", 0.020, 1e-7),
        ("modality_stats", "fwd", S1, "compile", 0.001, None),
        ("weighted_multimodal_ce", "fwd", S1, "eager", 0.010, 0.0),
        ("weighted_multimodal_ce", "fwd", S1, "cpp", 0.012, 1e-7),  # slower: eager wins
        ("weighted_multimodal_ce", "fwd_bwd", L, "eager", 9.0, 0.0),
        ("weighted_multimodal_ce", "fwd_bwd", L, "cpp", 1.0, 3e-3),  # fast but wrong: eager wins
    ])
    t = dispatch.table_from_results(df, "cpu")["choices"]
    assert t["cpu/modality_stats/fwd/float32/small"] == "cpp"
    assert t["cpu/weighted_multimodal_ce/fwd/float32/small"] == "eager"
    assert t["cpu/weighted_multimodal_ce/fwd_bwd/float32/large"] == "eager"


def test_calls_follow_the_table(tmp_path, monkeypatch):
    """A table read from ``$MMBENCH_KERNELS_DISPATCH`` decides what an ``auto`` call runs."""
    from kernels import modality_stats, weighted_multimodal_ce
    from kernels import stats_reference

    table = tmp_path / "t.json"
    table.write_text(json.dumps({"choices": {"cpu/modality_stats/fwd/float32/small": "eager",
                                             "cpu/weighted_multimodal_ce/fwd_bwd/float32/small": "eager"}}))
    monkeypatch.setenv(dispatch.ENV_TABLE, str(table))
    monkeypatch.delenv("MMBENCH_KERNELS_BACKEND", raising=False)
    calls = []
    real = stats_reference.modality_stats_reference
    import importlib

    module = importlib.import_module("kernels.modality_stats")  # the package attribute is the function
    monkeypatch.setattr(module, "modality_stats_reference", lambda *a: calls.append(1) or real(*a))
    x, y = torch.randn(2, 8, 5), torch.randint(0, 5, (8,))
    modality_stats(x, y)
    assert calls == [1]
    loss = weighted_multimodal_ce(x.clone().requires_grad_(), y, torch.ones(2))
    assert loss.grad_fn is not None and "CECpp" not in type(loss.grad_fn).__name__


def test_bad_table_is_named(tmp_path, monkeypatch):
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        dispatch.load_table(str(bad))
    with pytest.raises(ValueError, match="no such dispatch table"):
        dispatch.load_table(str(tmp_path / "missing.json"))


def test_shipped_default_is_what_the_committed_benchmark_measured():
    """``kernels/dispatch_default.json`` equals the table derived from ``results/kernels.csv`` (so the
    shipped ``auto`` is the committed measurement, not a hand-written choice)."""
    csv = os.path.join(ROOT, "results", "kernels.csv")
    df = pd.read_csv(csv)
    if "max_rel_err" not in set(df.metric):
        pytest.skip("results/kernels.csv predates the per-provider error column")
    with open(dispatch.DEFAULT_TABLE) as fh:
        shipped = json.load(fh)
    assert shipped["choices"] == dispatch.table_from_results(df, "cpu")["choices"]
    assert shipped["choices"], "the shipped table is empty"
