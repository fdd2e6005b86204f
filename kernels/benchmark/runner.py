"""Benchmark runner: ``python -m kernels.benchmark`` / :func:`main` / :func:`run`.

For each registered op (filtered by ``--ops``), each shape of the selected sweeps, each dtype, each
mode and each provider: check availability, build inputs, warm up, time, and record metrics in a
long-format DataFrame (median/p20/p80 time, speedup over the op's baseline, model GB/s and % of the
measured copy bandwidth, CUDA peak memory, and for a ``torch.compile`` provider the seconds of its
first call at the shape, cold: ``compile_seconds``). Providers that cannot run are recorded with a
``not_available`` row and the reason, never dropped.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import os
import sys
import traceback
from typing import Dict, List, Optional, Sequence

import pandas as pd
import torch

from kernels.dispatch import COMPILE_METRIC

from . import registry
from .report import COLUMNS, STATIC_CSV, write_csv, write_markdown
from .timing import cold_first_call_seconds, copy_bandwidth_gbs, device_name, peak_memory_mb, time_fn, time_providers

#: Spec HBM bandwidth (GB/s) the GPU percentages are also given against: H100 SXM5 3.35 TB/s, H200 4.8 TB/s.
SPEC_BANDWIDTH_GBS = {"h100": 3350.0, "h200": 4800.0}

#: Providers whose output is compared with a float64 reference in every cell (the ``auto`` candidates).
ERROR_CHECKED = ("eager", "cpp", "triton", "compile")

#: Shapes at or below this many logits elements are launch-bound: also timed with CUDA graphs.
LAUNCH_BOUND_ELEMS = 1 << 16


def _shape_str(shape: Dict) -> str:
    return ",".join(f"{k}={v}" for k, v in shape.items())


def _dtype_str(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def default_sweeps(device: torch.device, quick: bool) -> List[str]:
    """quick -> ["quick"]; CUDA -> realistic + sweep; CPU -> realistic + cpu_sweep."""
    if quick:
        return ["quick"]
    return ["realistic", "sweep" if torch.device(device).type == "cuda" else "cpu_sweep"]


def _versions() -> Dict[str, str]:
    try:
        import triton

        tv = triton.__version__
    except Exception:  # noqa: BLE001
        tv = "n/a"
    return {"torch": torch.__version__, "triton": tv}


def _short(exc: BaseException) -> str:
    msg = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {msg[0][:200] if msg else ''}"


def run(
    ops: Optional[Sequence[str]] = None,
    quick: bool = False,
    device: Optional[str] = None,
    sweeps: Optional[Sequence[str]] = None,
    modes: Optional[Sequence[str]] = None,
    verbose: bool = False,
    providers: Optional[Sequence[str]] = None,
) -> pd.DataFrame:
    """Run the benchmarks and return the long-format results.

    Args:
        ops: op-name patterns (fnmatch wildcards); None = all registered ops.
        quick: tiny sweep and short timings (CI smoke run, seconds); skips heavy providers.
        device: "cuda" / "cpu" / ...; default CUDA if available.
        sweeps: shape-sweep names; default from :func:`default_sweeps`.
        modes: restrict to these modes ("fwd", "fwd_bwd").
        verbose: print one line per measurement.
        providers: provider-name patterns (fnmatch); None = all. The op's baseline always runs (the
            reference of speedups and of ``auto``'s table).

    Returns:
        DataFrame with columns :data:`kernels.benchmark.report.COLUMNS`.
    """
    registry.discover()
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    meta = {"device": device_name(dev), **_versions(), "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    rows: List[Dict] = []
    cell_bw = {"gbs": float("nan")}  # the copy bandwidth of the cell being timed (stored in each of its rows)

    def add(op, provider, mode, shape, dtype, metric, value, unit="", note=""):
        rows.append(dict(op=op, provider=provider, mode=mode, shape=shape, dtype=dtype, metric=metric,
                         value=value, unit=unit, note=note, copy_gbs=cell_bw["gbs"], **meta))

    cell_bw["gbs"] = copy_bandwidth_gbs(dev, quick=quick)
    add("_device", "copy", "", "", "float32", "copy_bandwidth", cell_bw["gbs"], "GB/s")
    sweeps = list(sweeps or default_sweeps(dev, quick))
    for op in registry.list_ops(ops):
        # A shape listed by several sweeps (e.g. realistic and cpu_sweep) is timed once.
        shapes = list({_shape_str(s): s for sw in sweeps for s in op.shapes_for(sw)}.values())
        op_modes = [m for m in op.modes if not modes or m in modes]
        for shape in shapes:
            for dtype in op.dtypes:
                for mode in op_modes:
                    ordered = sorted(op.providers, key=lambda p: not p.baseline)  # baseline first
                    if providers:
                        ordered = [p for p in ordered if p.baseline
                                   or any(fnmatch.fnmatch(p.name, pat.strip()) for pat in providers)]
                    fns, keys = {}, {}
                    for prov in ordered:
                        key = (op.name, prov.name, mode, _shape_str(shape), _dtype_str(dtype))
                        if mode not in prov.modes:
                            continue
                        ok, reason = prov.available(dev)
                        if ok and quick and prov.heavy:
                            ok, reason = False, "skipped in --quick (slow to set up)"
                        if not ok:
                            add(*key, "not_available", float("nan"), note=f"not available: {reason}")
                            continue
                        try:
                            fns[prov.name] = prov.make_fn(op.make_inputs(shape, dev, dtype), mode)
                            keys[prov.name] = key
                        except Exception as exc:  # noqa: BLE001 - a provider failing must not stop the run
                            if verbose:
                                traceback.print_exc()
                            add(*key, "not_available", float("nan"), note=f"not available: failed: {_short(exc)}")
                    # A compiling provider's first call, cold, on its own (compile seconds; before the cell's
                    # bandwidth measurement and timings, whose warm-up would otherwise compile).
                    compile_s = {}
                    for prov in ordered:
                        if prov.compiles and prov.name in fns:
                            try:
                                compile_s[prov.name] = cold_first_call_seconds(fns[prov.name], dev)
                                ok, reason = prov.available(dev)  # a compile error found only now
                            except Exception as exc:  # noqa: BLE001 - a provider failing must not stop the run
                                ok, reason = False, f"failed: {_short(exc)}"
                            if not ok:
                                add(*keys[prov.name], "not_available", float("nan"), note=f"not available: {reason}")
                                del fns[prov.name]
                    # All providers of this cell timed together (interleaved rounds on CPU), right after
                    # the cell's own copy-bandwidth measurement: on a shared machine the bandwidth moves
                    # by minutes, and a roofline against another minute's bandwidth is not honest.
                    if fns:
                        cell_bw["gbs"] = copy_bandwidth_gbs(dev, quick=quick, budget_s=0.08)
                    times = time_providers(fns, dev, quick=quick)
                    copy_bw = cell_bw["gbs"]
                    # Speedups are against the fastest eager formulation a user would otherwise run
                    # (providers marked reference: our eager reference, the released code, torch.compile).
                    refs = {p.name: times[p.name]["median_ms"] for p in ordered
                            if (p.reference or p.baseline) and isinstance(times.get(p.name), dict)}
                    base_name = min(refs, key=refs.get) if refs else None
                    base_ms = refs.get(base_name)
                    nbytes = None
                    if op.model_bytes is not None:
                        try:
                            nbytes = op.model_bytes(shape, mode, dtype)
                        except TypeError:
                            nbytes = op.model_bytes(shape, mode)
                    for prov in ordered:
                        if prov.name not in fns:
                            continue
                        key, fn, t = keys[prov.name], fns[prov.name], times[prov.name]
                        if isinstance(t, Exception):
                            add(*key, "not_available", float("nan"), note=f"not available: failed: {_short(t)}")
                            continue
                        for q in ("median_ms", "p20_ms", "p80_ms"):
                            add(*key, q, t[q], "ms")
                        if prov.name in compile_s:
                            add(*key, COMPILE_METRIC, compile_s[prov.name], "s",
                                note="first call at this shape, cold: torch.compile caches off")
                        if base_ms:
                            add(*key, "speedup", base_ms / t["median_ms"], "x", note=f"vs {base_name}")
                        if op.error is not None and prov.name in ERROR_CHECKED:
                            try:
                                add(*key, "max_rel_err", op.error(op.make_inputs(shape, dev, dtype), prov.name, mode))
                            except Exception as exc:  # noqa: BLE001 - recorded, the provider is then not "correct"
                                add(*key, "max_rel_err", float("nan"), note=f"failed: {_short(exc)}")
                        if nbytes is not None:
                            # Roofline: the time the op's minimal bytes take at the copy bandwidth measured
                            # in this run (and, on a GPU, at the H100/H200 spec bandwidth); the measured
                            # time as a percentage of that limit.
                            gbps = nbytes / (t["median_ms"] * 1e-3) / 1e9
                            add(*key, "model_bytes", nbytes, "B")
                            add(*key, "gbps", gbps, "GB/s")
                            add(*key, "roofline_ms", nbytes / (copy_bw * 1e9) * 1e3, "ms")
                            add(*key, "pct_copy_bw", 100.0 * gbps / copy_bw, "%")
                            if dev.type == "cuda":
                                for gpu, spec in SPEC_BANDWIDTH_GBS.items():
                                    add(*key, f"pct_{gpu}_spec_bw", 100.0 * gbps / spec, "%")
                        if dev.type == "cuda":
                            add(*key, "peak_mem_mb", peak_memory_mb(fn, dev), "MB")
                            numel = shape.get("M", 1) * shape.get("B", 1) * shape.get("C", 1)
                            if numel <= LAUNCH_BOUND_ELEMS:
                                try:
                                    tg = time_fn(fn, dev, quick=quick, cudagraph=True)
                                    add(*key, "cudagraph_median_ms", tg["median_ms"], "ms")
                                except Exception as exc:  # noqa: BLE001
                                    add(*key, "cudagraph_median_ms", float("nan"), "ms", note=f"failed: {_short(exc)}")
                        if verbose:
                            print(f"{op.name:24s} {prov.name:9s} {mode:8s} {_shape_str(shape):18s} {t['median_ms'] * 1e3:10.1f} us")
    return pd.DataFrame(rows, columns=COLUMNS)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m kernels.benchmark``."""
    p = argparse.ArgumentParser(prog="python -m kernels.benchmark", description="Benchmark mmbench kernels vs eager.")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The benchmark's options, shared by ``python -m kernels.benchmark`` and ``python -m mmbench bench``."""
    p.add_argument("--quick", action="store_true", help="tiny sweep, short timings (CI smoke run)")
    p.add_argument("--ops", default="", help="comma-separated op names, fnmatch wildcards allowed (default: all)")
    p.add_argument("--out", default="results", help="output folder for kernels.csv and KERNELS.md")
    p.add_argument("--device", default=None, help="cuda / cpu (default: cuda if available)")
    p.add_argument("--sweeps", default="", help="comma-separated sweep names (default: realistic + sweep/cpu_sweep)")
    p.add_argument("--modes", default="", help="comma-separated modes: fwd,fwd_bwd (default: all)")
    p.add_argument("--providers", default="",
                   help="comma-separated provider names, fnmatch wildcards allowed (default: all; each op's "
                        "baseline always runs)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (torch.set_num_threads); 1 avoids OpenMP stalls on a busy CPU. Default: torch's")
    p.add_argument("--list", action="store_true", help="list registered ops and exit")
    p.add_argument("--compile-only", action="store_true",
                   help="no timing: compile every Triton kernel variant for sm_80 and sm_90 (no GPU needed) and "
                        "write <out>/kernels_static.csv plus the static table of <out>/KERNELS.md")
    p.add_argument("--note", default="", help="one line for the report's header (e.g. what else loaded the machine)")
    p.add_argument("-v", "--verbose", action="store_true", help="print every timing as it is measured")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry point; writes ``<out>/kernels.csv`` and ``<out>/KERNELS.md``. Returns 0."""
    return execute(build_parser().parse_args(argv))


def _compile_only(out: str, csv: str, md: str, verbose: bool = False) -> int:
    """Compile every kernel variant (:func:`kernels.compile_check.compile_all`), write the static CSV and
    re-render KERNELS.md from the timing CSV already in ``out`` (if any) plus the static table."""
    from kernels.compile_check import compile_all

    rows = compile_all(verbose=verbose)
    static = os.path.join(out, STATIC_CSV)
    os.makedirs(out, exist_ok=True)
    pd.DataFrame(rows).to_csv(static, index=False)
    timings = pd.read_csv(csv) if os.path.exists(csv) else pd.DataFrame(columns=COLUMNS)
    write_markdown(timings, md)
    print(f"wrote {static} ({len(rows)} compiled variants) and {md}")
    return 0


def _write_dispatch(full: pd.DataFrame, args: argparse.Namespace) -> None:
    """Write ``<out>/kernels_dispatch.json`` (the table ``auto`` uses, :mod:`kernels.dispatch`) when the
    run measured the op-1 dispatch ops; ``--quick`` runs are too short to decide anything."""
    from kernels.dispatch import DISPATCH_OPS, TABLE_NAME, write_table

    if args.quick or not set(DISPATCH_OPS) & set(full.op.unique()):
        return
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    path = os.path.join(args.out, TABLE_NAME)
    table = write_table(full, dev.type, path)
    print(f"wrote {path} ({len(table['choices'])} choices); use it with MMBENCH_KERNELS_DISPATCH={path}",
          file=sys.stderr)


def execute(args: argparse.Namespace) -> int:
    """Run the benchmark for parsed :func:`add_arguments` options. Returns 0."""
    split = lambda s: [x for x in s.split(",") if x.strip()] or None  # noqa: E731
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.list:
        registry.discover()
        for op in registry.list_ops(split(args.ops)):
            print(f"{op.name}: {', '.join(p.name for p in op.providers)} -- {op.description}")
        return 0
    registry.discover()
    csv, md = os.path.join(args.out, "kernels.csv"), os.path.join(args.out, "KERNELS.md")
    if args.compile_only:
        return _compile_only(args.out, csv, md, verbose=args.verbose)
    frames = []
    # One op at a time, rewriting both files after each, so a run cut short still leaves results.
    ops = registry.list_ops(split(args.ops))
    for i, op in enumerate(ops):
        print(f"[{i + 1}/{len(ops)}] {op.name}", file=sys.stderr, flush=True)  # progress; stdout stays the report
        df = run([op.name], quick=args.quick, device=args.device, sweeps=split(args.sweeps),
                 modes=split(args.modes), verbose=args.verbose, providers=split(getattr(args, "providers", "")))
        if frames:  # one copy-bandwidth row per file
            df = df[df.op != "_device"]
        elif getattr(args, "note", ""):
            note = df.iloc[[0]].assign(metric="run_note", value=float("nan"), unit="", note=args.note)
            df = pd.concat([df, note], ignore_index=True)
        frames.append(df)
        full = pd.concat(frames, ignore_index=True)
        write_csv(full, csv)
        write_markdown(full, md)
    _write_dispatch(full, args)
    print(f"wrote {csv} and {md} ({sum(len(f) for f in frames)} rows)")
    return 0
