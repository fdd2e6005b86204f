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
    1e-4 or not measured) is out; non-candidates (released) are never picked even when faster, nor is compile
    without its error and compile seconds (tests below)."""
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


# ---------------------------------------------------------------------------------------------------
# compile as a candidate: its first-call seconds amortised over AMORTISE_CALLS calls per shape.
# ---------------------------------------------------------------------------------------------------
S_SMALL, S_SMALL2 = "M=2,B=64,C=6", "M=3,B=64,C=31"
KEY = "cpu/modality_stats/fwd/float32/small"


def _with_compile(cells, compile_cells):
    """``_rows(cells)`` plus ``compile_seconds`` rows: ``compile_cells`` = [(op, mode, shape, seconds)]."""
    df = _rows(cells)
    extra = [dict(op=op, provider="compile", mode=mode, shape=shape, dtype="float32", device="cpu", timestamp="t",
                  metric=dispatch.COMPILE_METRIC, value=secs) for op, mode, shape, secs in compile_cells]
    return pd.concat([df, pd.DataFrame(extra)], ignore_index=True)


def _small_class(compile_ms, compile_s, cpp_ms=0.030, compile_err=1e-7, with_seconds=True):
    cells = [("modality_stats", "fwd", S_SMALL, "eager", 0.050, 0.0),
             ("modality_stats", "fwd", S_SMALL, "cpp", cpp_ms, 1e-7),
             ("modality_stats", "fwd", S_SMALL, "compile", compile_ms, compile_err)]
    return _with_compile(cells, [("modality_stats", "fwd", S_SMALL, compile_s)] if with_seconds else [])


@pytest.mark.parametrize("calls", [dispatch.AMORTISE_CALLS, 7])
def test_compile_is_picked_exactly_when_its_amortised_cost_is_lowest(calls):
    """Compile's cost is median + 1000 * compile_seconds / calls: just under cpp's median it wins, just over
    it loses; with compile seconds of zero it is compared on its median alone."""
    compile_ms, cpp_ms = 0.010, 0.030
    breakeven_s = (cpp_ms - compile_ms) * calls / 1e3  # compile seconds at which the two cost the same
    below = dispatch.table_from_results(_small_class(compile_ms, 0.9 * breakeven_s), "cpu", calls=calls)
    above = dispatch.table_from_results(_small_class(compile_ms, 1.1 * breakeven_s), "cpu", calls=calls)
    tie = dispatch.table_from_results(_small_class(compile_ms, breakeven_s), "cpu", calls=calls)
    assert below["choices"][KEY] == "compile"
    assert above["choices"][KEY] == "cpp"
    assert tie["choices"][KEY] == "cpp"  # a tie goes to the provider that does not compile
    assert below["evidence_ms"][KEY]["compile"] == pytest.approx(compile_ms + 0.9 * (cpp_ms - compile_ms))
    assert below["amortise_calls"] == calls


def test_compile_is_never_picked_without_compile_seconds_or_a_correct_error():
    """Fastest by far per call, but without its first-call seconds (or with no / a large error) compile is
    no candidate; the table says why."""
    for df, why in [(_small_class(0.001, 0.0, with_seconds=False), "no compile_seconds"),
                    (_small_class(0.001, 0.0, compile_err=None), "no max_rel_err"),
                    (_small_class(0.001, 0.0, compile_err=3e-3), "max_rel_err 3.0e-03")]:
        t = dispatch.table_from_results(df, "cpu")
        assert t["choices"][KEY] == "cpp"
        assert "compile" not in t["evidence_ms"][KEY]
        assert t["compile_evidence"][KEY]["compile"]["not_a_candidate"].startswith(why)


def test_compile_evidence_is_stored_summed_over_the_class():
    """The table keeps compile's summed median, summed compile seconds and amortised cost per class."""
    n = dispatch.AMORTISE_CALLS
    cells = [("modality_stats", "fwd", s, p, ms, err) for s in (S_SMALL, S_SMALL2)
             for p, ms, err in (("eager", 0.05, 0.0), ("cpp", 0.03, 1e-7), ("compile", 0.02, 1e-7))]
    df = _with_compile(cells, [("modality_stats", "fwd", S_SMALL, 4.0), ("modality_stats", "fwd", S_SMALL2, 6.0)])
    t = dispatch.table_from_results(df, "cpu")
    ev = t["compile_evidence"][KEY]["compile"]
    assert ev["median_ms"] == pytest.approx(0.04) and ev[dispatch.COMPILE_METRIC] == pytest.approx(10.0)
    assert ev["amortised_ms"] == pytest.approx(0.04 + 1e3 * 10.0 / n)
    assert t["evidence_ms"][KEY]["compile"] == pytest.approx(ev["amortised_ms"], abs=1e-6)
    assert t["evidence_ms"][KEY]["cpp"] == pytest.approx(0.06)
    json.dumps(t)  # the table is JSON


def test_a_provider_missing_a_shape_of_the_class_is_no_candidate():
    """Compared on a partial sum, a provider timed at one of two shapes would look twice as fast."""
    cells = [("modality_stats", "fwd", S_SMALL, "eager", 0.05, 0.0), ("modality_stats", "fwd", S_SMALL2, "eager", 0.05, 0.0),
             ("modality_stats", "fwd", S_SMALL, "cpp", 0.04, 1e-7)]
    t = dispatch.table_from_results(_rows(cells), "cpu")
    assert t["choices"][KEY] == "eager" and set(t["evidence_ms"][KEY]) == {"eager"}


def test_amortised_ms_formula_and_bad_calls():
    assert dispatch.amortised_ms(0.5, 2.0, calls=1000) == pytest.approx(2.5)
    with pytest.raises(ValueError, match="calls must be >= 1"):
        dispatch.amortised_ms(0.5, 2.0, calls=0)


def test_committed_results_cannot_pick_compile():
    """results/kernels.csv predates compile_seconds (and compile's error): by rule 1, compile is no
    candidate anywhere, so the shipped choices stay those of eager and cpp."""
    df = pd.read_csv(os.path.join(ROOT, "results", "kernels.csv"))
    t = dispatch.table_from_results(df, "cpu")
    assert "compile" not in set(t["choices"].values())
    if dispatch.COMPILE_METRIC not in set(df.metric):
        for key, ev in t["compile_evidence"].items():
            assert "not_a_candidate" in ev["compile"], key


def test_resolved_providers_report_compile_only_where_it_runs(tmp_path, monkeypatch):
    """A table choosing compile resolves to compile (run keys) where torch.compile can run, else eager."""
    from kernels import compiled

    table = tmp_path / "t.json"
    table.write_text(json.dumps({"choices": {"cpu/weighted_multimodal_ce/fwd_bwd/float32/small": "compile"}}))
    monkeypatch.setenv(dispatch.ENV_TABLE, str(table))
    monkeypatch.setattr(dispatch, "compile_would_work", lambda dev: True)
    assert dispatch.resolved_providers("auto", "cpu")["weighted_multimodal_ce/fwd_bwd/small"] == "compile"
    assert dispatch.resolved_providers("compile", "cpu")["modality_stats/fwd/large"] == "compile"
    monkeypatch.setattr(dispatch, "compile_would_work", lambda dev: False)
    assert dispatch.resolved_providers("auto", "cpu")["weighted_multimodal_ce/fwd_bwd/small"] == "eager"
    assert set(dispatch.resolved_providers("compile", "cpu").values()) == {"eager"}
    monkeypatch.setenv(compiled.ENV_NO_COMPILE, "1")
    monkeypatch.setattr(compiled, "_STATE", {})
    assert not compiled.compile_would_work("cpu") and "MMBENCH_NO_COMPILE=1" in compiled.unusable_reason("cpu")
