"""Benchmark harness: registry, discovery, timing, the runner's DataFrame and the report files."""

import pandas as pd
import pytest
import torch

from kernels.benchmark import BenchOp, Provider, discover, get_op, list_ops, needs_cuda, register_op, runner
from kernels.benchmark.report import COLUMNS, markdown
from kernels.benchmark.timing import time_cpu


def _toy_op(name="_toy_op"):
    def make_inputs(shape, device, dtype):
        return {"x": torch.randn(shape["N"], device=device, dtype=dtype, requires_grad=True)}

    def eager(inputs, mode):
        x = inputs["x"]
        if mode == "fwd":
            return lambda: (x * 2).sum()
        return lambda: (x * 2).sum().backward()

    def broken(inputs, mode):
        def run():
            raise RuntimeError("boom")
        return run

    return BenchOp(
        name=name,
        providers=[
            Provider("eager", eager, baseline=True),
            Provider("fast", eager),
            Provider("gpu_only", eager, available=needs_cuda),
            Provider("broken", broken),
            Provider("slow_setup", eager, heavy=True),
        ],
        make_inputs=make_inputs,
        model_bytes=lambda shape, mode: shape["N"] * 4,
        shapes={"quick": [{"N": 16}], "realistic": [{"N": 64}]},
    )


def test_register_and_list_with_wildcards():
    register_op(_toy_op("_toy_a"))

    @register_op
    def _factory():
        return _toy_op("_toy_b")

    assert {"_toy_a", "_toy_b"} <= {op.name for op in list_ops(["_toy_*"])}
    assert get_op("_toy_a").baseline.name == "eager"
    assert get_op("_toy_a").provider("fast").name == "fast"
    with pytest.raises(KeyError):
        get_op("_toy_a").provider("nope")


def test_discover_registers_modality_stats_ops():
    mods = discover()
    assert "kernels.benchmark.ops_modality_stats" in mods
    names = {op.name for op in list_ops(["modality_stats", "weighted_multimodal_ce", "ogm_arl_step"])}
    assert names == {"modality_stats", "weighted_multimodal_ce", "ogm_arl_step"}
    op = get_op("weighted_multimodal_ce")
    assert [p.name for p in op.providers] == ["eager", "released", "compile", "released_compile", "triton", "cpp"]
    # Speedups are against the fastest of the formulations a user would otherwise run.
    assert [p.name for p in op.providers if p.reference] == ["eager", "released", "compile", "released_compile"]
    ok, reason = op.provider("triton").available(torch.device("cpu"))
    assert not ok and "no CUDA" in reason
    inputs = op.make_inputs({"M": 2, "B": 8, "C": 5}, torch.device("cpu"), torch.float32)
    for prov in ("eager", "released"):
        for mode in ("fwd", "fwd_bwd"):
            op.provider(prov).make_fn(inputs, mode)()
    assert op.model_bytes({"M": 2, "B": 8, "C": 5}, "fwd_bwd") > op.model_bytes({"M": 2, "B": 8, "C": 5}, "fwd")


def test_time_cpu_returns_quantiles():
    t = time_cpu(lambda: sum(range(100)), budget_s=0.005, warmup=1)
    assert t["p20_ms"] <= t["median_ms"] <= t["p80_ms"] and t["n"] >= 5


def test_run_reports_unavailable_and_failed_providers():
    register_op(_toy_op("_toy_run"))
    df = runner.run(["_toy_run"], quick=True, device="cpu")
    assert list(df.columns) == COLUMNS
    d = df[df.op == "_toy_run"]
    na = d[d.metric == "not_available"].set_index(["provider", "mode"]).note
    assert na[("gpu_only", "fwd")] == "not available: no CUDA device"
    assert na[("broken", "fwd")].startswith("not available: failed: RuntimeError: boom")
    assert "quick" in na[("slow_setup", "fwd")]
    sp = d[(d.metric == "speedup") & (d.provider == "eager")].value
    assert (sp == 1.0).all() and len(sp) == 2  # fwd and fwd_bwd
    assert set(d[d.provider == "fast"].metric) >= {"median_ms", "speedup", "gbps", "pct_copy_bw"}
    assert (df.metric == "copy_bandwidth").sum() == 1
    md = markdown(d)
    assert "not available: no CUDA device" in md and "_toy_run" in md and "1.00x" in md


def test_main_writes_csv_and_markdown(tmp_path):
    register_op(_toy_op("_toy_main"))
    assert runner.main(["--quick", "--ops", "_toy_main", "--out", str(tmp_path)]) == 0
    df = pd.read_csv(tmp_path / "kernels.csv")
    assert set(df.op) == {"_device", "_toy_main"}
    assert {"op", "provider", "mode", "shape", "metric", "value", "device", "torch", "triton", "timestamp"} <= set(df.columns)
    assert (tmp_path / "KERNELS.md").read_text().startswith("# Kernel benchmarks")


def test_quick_run_of_modality_stats_ops(tmp_path):
    df = runner.run(["modality_stats", "weighted_multimodal_ce"], quick=True, device="cpu", modes=["fwd_bwd", "fwd"])
    t = df[df.metric == "median_ms"]
    assert {"eager", "released"} <= set(t.provider)
    na = df[df.metric == "not_available"]
    assert set(na[na.provider == "triton"].note) == {"not available: no CUDA device"}


def test_a_shape_in_two_sweeps_is_timed_once():
    op = _toy_op("_toy_overlap")
    op.shapes["realistic"] = [{"N": 64}, {"N": 32}]
    op.shapes["cpu_sweep"] = [{"N": 64}]
    register_op(op)
    df = runner.run(["_toy_overlap"], quick=False, device="cpu", sweeps=["realistic", "cpu_sweep"], modes=["fwd"])
    sp = df[(df.metric == "speedup") & (df.provider == "eager")]
    assert sorted(sp["shape"]) == ["N=32", "N=64"]
    markdown(df)  # one speedup per cell: the report builds


def test_time_providers_interleaves_rounds_on_cpu_and_keeps_failures_apart():
    from kernels.benchmark import timing

    order = []

    def make(name):
        def fn():
            order.append(name)
        return fn

    def boom():
        raise RuntimeError("boom")

    t = timing.time_providers({"a": make("a"), "b": make("b"), "bad": boom}, torch.device("cpu"))
    assert isinstance(t["bad"], RuntimeError)
    assert t["a"]["p20_ms"] <= t["a"]["median_ms"] <= t["a"]["p80_ms"]
    # interleaved: b's first calls come before a's last calls (a and b alternate by rounds)
    first_b, last_a = order.index("b"), len(order) - 1 - order[::-1].index("a")
    assert first_b < last_a
    runs = [k for i, k in enumerate(order) if i == 0 or order[i - 1] != k]
    assert runs == ["a", "b"] * timing.CPU_ROUNDS


def test_speedup_is_against_the_fastest_reference_and_roofline_is_reported():
    """Issue 9 items 8-9: a slow eager baseline cannot inflate speedups; bytes and % of limit are recorded."""
    import time as _time

    def slow(inputs, mode):
        return lambda: _time.sleep(2e-3)

    def quick_ref(inputs, mode):
        return lambda: (inputs["x"] * 2).sum()

    op = BenchOp(
        name="_toy_refs",
        providers=[Provider("eager", slow, baseline=True, reference=True),
                   Provider("released", quick_ref, reference=True), Provider("fused", quick_ref)],
        make_inputs=lambda shape, device, dtype: {"x": torch.randn(shape["N"])},
        model_bytes=lambda shape, mode: shape["N"] * 8,
        shapes={"quick": [{"N": 4096}]},
        modes=("fwd",),
    )
    register_op(op)
    df = runner.run(["_toy_refs"], quick=True, device="cpu")
    sp = df[df.metric == "speedup"].set_index("provider")
    assert set(sp.note) == {"vs released"}
    assert float(sp.value["eager"]) < 0.5 and 0.2 < float(sp.value["fused"]) < 5  # fused ~ released, not >> 1
    nb = df[(df.metric == "model_bytes") & (df.provider == "fused")].value
    assert float(nb.iloc[0]) == 4096 * 8
    # Issue 22 item 5: the roofline uses the copy bandwidth measured for the row's own cell, stored in
    # every row (copy_gbs), so rows merged from several runs each keep their own.
    row = df[(df.metric == "roofline_ms") & (df.provider == "fused")].iloc[0]
    bw = float(row.copy_gbs)
    assert bw > 0 and float(row.value) == pytest.approx(4096 * 8 / (bw * 1e9) * 1e3)
    cell = df[df.metric.isin(["median_ms", "gbps", "pct_copy_bw", "roofline_ms"])]
    assert cell.copy_gbs.notna().all() and cell.copy_gbs.nunique() == 1
    gbps = df[df.metric == "gbps"].set_index("provider").value
    pct = df[df.metric == "pct_copy_bw"].set_index("provider")
    for prov in gbps.index:
        assert float(pct.value[prov]) == pytest.approx(100 * float(gbps[prov]) / float(pct.copy_gbs[prov]))
    md = markdown(df)
    assert "Roofline" in md and "released" in md


def test_report_uses_each_rows_own_bandwidth():
    """Two runs merged into one CSV at 10 and 40 GB/s: the report's range names both and each roofline
    row shows its own cell's bandwidth (the audit found one headline bandwidth against rows of others)."""
    import pandas as pd

    from kernels.benchmark.report import COLUMNS, markdown

    rows = []
    for shape, bw in (("M=2,B=64,C=6", 10.0), ("M=2,B=64,C=309", 40.0)):
        for metric, value in (("median_ms", 0.01), ("speedup", 1.0), ("model_bytes", 1e5), ("gbps", 10.0),
                              ("roofline_ms", 1e5 / (bw * 1e9) * 1e3), ("pct_copy_bw", 100 * 10.0 / bw)):
            rows.append(dict(op="x", provider="cpp", mode="fwd", shape=shape, dtype="float32", metric=metric,
                             value=value, unit="", note="vs eager", copy_gbs=bw, device="cpu", torch="t",
                             triton="t", timestamp="now"))
    md = markdown(pd.DataFrame(rows, columns=COLUMNS))
    assert "range 10.0-40.0 GB/s" in md
    roof = [line for line in md.splitlines() if line.startswith("| M=2")]
    cells = [[c.strip() for c in r.split("|")] for r in roof]
    assert any("10" in c and "100.0%" in c for c in cells) and any("40" in c and "25.0%" in c for c in cells)


def test_a_compiling_provider_gets_its_cold_first_call_as_compile_seconds(monkeypatch):
    """A provider marked ``compiles`` has its first call per shape timed on its own (``compile_seconds``),
    after the compile caches were reset, and kept out of its steady-state median; ``providers`` restricts
    the run to the named providers plus the baseline."""
    import time

    from kernels import compiled
    from kernels.benchmark import timing

    resets = []
    monkeypatch.setattr(compiled, "reset", lambda: resets.append(1))

    def jit(inputs, mode):
        first = []

        def run():
            if not first:  # the "compile"
                first.append(1)
                time.sleep(0.05)
            return (inputs["x"] * 2).sum()
        return run

    op = _toy_op("_toy_jit")
    op.providers.append(Provider("jit", jit, compiles=True))
    register_op(op)
    df = runner.run(["_toy_jit"], quick=True, device="cpu", modes=["fwd"], providers=["jit"])
    assert set(df[df.op == "_toy_jit"].provider) == {"eager", "jit"}
    secs = df[(df.metric == "compile_seconds")]
    assert list(secs.provider) == ["jit"] and secs.value.iloc[0] >= 0.05 and secs.unit.iloc[0] == "s"
    assert df[(df.metric == "median_ms") & (df.provider == "jit")].value.iloc[0] < 50
    assert resets == [1]
    assert timing.cold_first_call_seconds(lambda: time.sleep(0.01), torch.device("cpu")) >= 0.01
