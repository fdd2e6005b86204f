"""Result writing: the long-format CSV and the markdown report (pandas + tabulate)."""
from __future__ import annotations

import os

import pandas as pd

#: Static resources of the compiled kernels (``python -m mmbench bench --compile-only``), next to kernels.csv.
STATIC_CSV = "kernels_static.csv"

#: Columns of ``results/kernels.csv`` (one row per measured metric, long format).
#: ``copy_gbs`` is the copy bandwidth measured right before the row's cell was timed: each row's "% of
#: copy" and roofline use its own, so rows from different runs (or from a busy and a quiet minute) stay honest.
COLUMNS = ["op", "provider", "mode", "shape", "dtype", "metric", "value", "unit", "note", "copy_gbs", "device",
           "torch", "triton", "timestamp"]


def write_csv(df: pd.DataFrame, path: str) -> str:
    """Write the long-format results to ``path`` (parent folders created)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    df.reindex(columns=COLUMNS).to_csv(path, index=False)
    return path


def _fmt_time(ms: float) -> str:
    return f"{ms * 1e3:.1f} µs" if ms < 1 else f"{ms:.3f} ms"


def markdown(df: pd.DataFrame) -> str:
    """Markdown report: per op, a latency table (median per call and speedup over the baseline), a
    bandwidth table where model bytes are defined, and the providers that could not run (with reasons)."""
    if df.empty:
        return "# Kernel benchmarks\n\nNo results.\n"
    first = df.iloc[0]
    lines = [
        "# Kernel benchmarks",
        "",
        f"Device: **{first['device']}** · torch {first['torch']} · triton {first['triton']} · {first['timestamp']}",
        "",
    ]
    for text in df[df.metric == "run_note"].note.dropna().unique():
        lines += [f"Note on this run: {text}", ""]
    cells = df[df.metric == "median_ms"]
    bw = cells.copy_gbs.dropna() if "copy_gbs" in cells else pd.Series(dtype=float)
    if not bw.empty:
        lines += [f"Copy bandwidth, measured right before each cell was timed (`copy_gbs`, stored in every row of "
                  f"kernels.csv): median {bw.median():.1f} GB/s, range {bw.min():.1f}-{bw.max():.1f} GB/s over "
                  f"{len(cells.groupby(['op', 'shape', 'dtype', 'mode']))} cells. Each row's % of copy and "
                  "roofline limit use its own cell's bandwidth (shown in the roofline table).", ""]
    lines += [
        "Times are medians per call (CPU: wall clock; CUDA: `triton.testing.do_bench`). Every speedup is",
        "against the **fastest eager formulation** a user would otherwise run, in the same cell of the same",
        "run: our eager reference (`eager`), the released code (`released`: for the CE the per-modality",
        "`F.cross_entropy` loop), or `torch.compile` of either (`compile`, `released_compile`); the",
        "*vs* column names which one it was. Roofline: the minimal bytes each op must move (each tensor",
        "read or written once) and the time that takes at the copy bandwidth measured for that cell; `% of",
        "limit` is that time over the measured time (100% = bandwidth-bound at copy speed). Small shapes",
        "are launch-bound, so their percentages are small by construction. The copy test streams 128 MB",
        "(64 MB read, 64 MB written) through DRAM, while a cell's inputs of a few MB or less stay in cache",
        "between timed calls: above 100% means the op ran faster than DRAM copy speed, from cache.",
        "",
    ]
    lines += _dispatch_lines(df)
    for op in [o for o in df.op.unique() if o != "_device"]:
        d = df[df.op == op]
        lines += [f"## {op}", ""]
        t = d[d.metric == "median_ms"]
        if not t.empty:
            sp = d[d.metric == "speedup"].set_index(["shape", "dtype", "mode", "provider"]).value
            t = t.assign(cell=[
                f"{_fmt_time(r['value'])} ({sp.get((r['shape'], r['dtype'], r['mode'], r['provider']), float('nan')):.2f}x)"
                for _, r in t.iterrows()
            ])
            table = t.pivot_table(index=["shape", "dtype", "mode"], columns="provider", values="cell", aggfunc="first", sort=False)
            vs = d[d.metric == "speedup"].groupby(["shape", "dtype", "mode"], sort=False).note.first()
            vs = vs.str.replace("vs ", "")
            table = table.join(vs.rename("vs"))
            lines += ["Median time per call (speedup over the fastest eager formulation, named in *vs*):", "",
                      table.reset_index().to_markdown(index=False), ""]
        g = d[d.metric == "gbps"]
        if not g.empty:
            pct = d[d.metric == "pct_copy_bw"].set_index(["shape", "dtype", "mode", "provider"]).value
            g = g.assign(cell=[
                f"{r['value']:.1f} ({pct.get((r['shape'], r['dtype'], r['mode'], r['provider']), float('nan')):.0f}%)" for _, r in g.iterrows()
            ])
            table = g.pivot_table(index=["shape", "dtype", "mode"], columns="provider", values="cell", aggfunc="first", sort=False)
            lines += ["Model GB/s (% of measured copy bandwidth):", "", table.reset_index().to_markdown(index=False), ""]
            nb = d[d.metric == "model_bytes"].groupby(["shape", "dtype", "mode"], sort=False).value.first()
            lim = d[d.metric == "roofline_ms"].groupby(["shape", "dtype", "mode"], sort=False).value.first()
            pct_t = d[d.metric == "pct_copy_bw"].pivot_table(index=["shape", "dtype", "mode"], columns="provider",
                                                              values="value", aggfunc="first", sort=False)
            cbw = d[d.metric == "roofline_ms"].groupby(["shape", "dtype", "mode"], sort=False).copy_gbs.first()
            roof = pd.DataFrame({"bytes": nb.map(lambda v: f"{v / 1e6:.3f} MB"),
                                 "copy GB/s": cbw.map(lambda v: f"{v:.1f}"),
                                 "limit at copy BW": lim.map(_fmt_time)}).join(pct_t.map(lambda v: f"{v:.1f}%"))
            lines += ["Roofline (bytes the op must move, the cell's measured copy bandwidth, the time the bytes "
                      "take at it, measured time as % of that limit):", "", roof.reset_index().to_markdown(index=False), ""]
            for gpu in ("h100", "h200"):
                sp = d[d.metric == f"pct_{gpu}_spec_bw"]
                if not sp.empty:
                    tb = sp.pivot_table(index=["shape", "dtype", "mode"], columns="provider", values="value",
                                        aggfunc="first", sort=False)
                    lines += [f"% of {gpu.upper()} spec bandwidth:", "",
                              tb.reset_index().to_markdown(index=False, floatfmt=".1f"), ""]
        err = d[d.metric == "max_rel_err"]
        if not err.empty:
            tb = err.pivot_table(index=["shape", "dtype", "mode"], columns="provider", values="value",
                                 aggfunc="first", sort=False)
            lines += ["Largest error relative to float64 (`auto` only picks providers below 1e-4; "
                      "`kernels_dispatch.json`):", "", tb.reset_index().to_markdown(index=False, floatfmt=".1e"), ""]
        mem = d[d.metric == "peak_mem_mb"]
        if not mem.empty:
            table = mem.pivot_table(index=["shape", "dtype", "mode"], columns="provider", values="value", aggfunc="first", sort=False)
            lines += ["Peak memory (MB above the inputs):", "", table.reset_index().to_markdown(index=False, floatfmt=".2f"), ""]
        elif not t.empty:
            lines += ["Peak memory: n/a (CPU).", ""]
        na = d[d.metric == "not_available"].drop_duplicates(["provider", "note"])
        if not na.empty:
            lines += ["Providers that did not run:", ""]
            lines += [f"- `{r['provider']}` ({r['mode']}): {r['note']}" for _, r in na.iterrows()]
            lines += [""]
    return "\n".join(lines) + "\n"


def _dispatch_lines(df: pd.DataFrame):
    """The ``auto`` table these results imply (:func:`kernels.dispatch.table_from_results`), with the summed
    cost per call of each candidate it was decided on and what ``compile`` cost or why it was out."""
    from kernels.dispatch import COMPILE_METRIC, CORRECT_RTOL, DISPATCH_OPS, table_from_results

    if not set(DISPATCH_OPS) & set(df.op.unique()) or "max_rel_err" not in set(df.metric):
        return []
    dev = str(df.iloc[0]["device"])
    table = table_from_results(df, "cuda" if not dev.startswith("CPU") else "cpu")
    n = table["amortise_calls"]

    def compile_cell(key):
        ev = table["compile_evidence"].get(key, {}).get("compile")
        if not ev:
            return "not timed"
        head = f"median {_fmt_time(ev['median_ms'])}"
        if ev.get(COMPILE_METRIC) is not None:
            head += f", compile {ev[COMPILE_METRIC]:.1f} s"
        if "not_a_candidate" in ev:
            return f"{head}; not a candidate: {ev['not_a_candidate']}"
        return f"{head}, amortised {_fmt_time(ev['amortised_ms'])}"

    rows = [{"op/mode/dtype/shape class": k.split("/", 1)[1], "auto": v,
             "summed cost per call per candidate": ", ".join(f"{p} {_fmt_time(t)}" for p, t in table["evidence_ms"][k].items()),
             "compile": compile_cell(k)}
            for k, v in table["choices"].items()]
    if not rows:
        return []
    return ["## What `backend=\"auto\"` picks", "",
            "The cheapest correct candidate per op, mode, dtype and shape class (small: M·B·C <= 2^14, medium: "
            "<= 2^17, large: above), by cost per call summed over the class's shapes, among the providers that ran "
            f"every shape with a largest error relative to float64 below {CORRECT_RTOL:g} (`kernels/dispatch.py`). "
            "The cost is the median time per call; for `compile` (`torch.compile` of our eager reference, one graph "
            f"per shape) it is the median plus its first call at the shape, timed cold (`{COMPILE_METRIC}`), spread "
            f"over {n} calls (`AMORTISE_CALLS`: the mean training steps of a default-suite run, each at one shape), and "
            f"`compile` is never picked where `{COMPILE_METRIC}` was not measured. `bench` writes the table to "
            "`kernels_dispatch.json`; the copy made here ships as `kernels/dispatch_default.json`. Candidates are "
            "our eager reference, the fused providers and `compile`; the released per-modality loop and "
            "`torch.compile` of it are timed but not candidates, so where they are faster (see the *vs* columns "
            "below) `auto` is not the fastest formulation overall; fp64 is always eager.", "",
            pd.DataFrame(rows).to_markdown(index=False), ""]


def write_markdown(df: pd.DataFrame, path: str) -> str:
    """Write :func:`markdown` to ``path``."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    text = markdown(df) if not df.empty else "# Kernel benchmarks\n\nNo timings in this folder yet.\n"
    static = os.path.join(os.path.dirname(os.path.abspath(path)), STATIC_CSV)
    if os.path.exists(static):  # the compile-only table survives timing reruns, and vice versa
        from kernels.compile_check import static_markdown

        text += "\n" + static_markdown(pd.read_csv(static).to_dict("records"))
    with open(path, "w") as fh:
        fh.write(text)
    return path
