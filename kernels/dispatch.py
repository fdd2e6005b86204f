"""What ``backend="auto"`` means for op 1: the measured fastest correct provider per op, dtype and shape class,
eager, fused or compiled, with ``torch.compile``'s compile time counted in its cost (rules 1-3 below).

The choice is a small table made by ``python -m mmbench bench`` (:func:`table_from_results`, written to
``<out>/kernels_dispatch.json`` next to ``kernels.csv``). A copy made on the reference CPU ships with the
package (``kernels/dispatch_default.json``); ``MMBENCH_KERNELS_DISPATCH=<path>`` points ``auto`` at a
table measured on this machine instead.

Keys are ``"<device type>/<op>/<mode>/<dtype>/<shape class>"``:

* op and mode: ``modality_stats/fwd`` (statistics, no graph), ``weighted_multimodal_ce/fwd`` (loss
  without a graph) and ``weighted_multimodal_ce/fwd_bwd`` (loss that will be back-propagated);
* dtype: the benchmark times float32; float16/bfloat16 use the float32 entry (every CPU provider upcasts
  to float32 first). **float64 is always eager** (the reference; the fused providers compute in float32);
* shape class of the ``[M, B, C]`` logits by element count: ``small`` (<= 2^14: the realistic B = 64,
  C <= 31 heads), ``medium`` (<= 2^17: C = 309 at B = 64, B = 1024 at C = 64), ``large`` (above).

Candidates are the providers ``auto`` may pick: ``eager``, ``cpp`` and ``compile`` on the CPU, ``eager``,
``triton``, ``cpp`` and ``compile`` on CUDA (``compile`` is ``torch.compile`` of the eager specification,
one graph per shape: :mod:`kernels.compiled_stats`). The rule, per op, mode, dtype and shape class
(:func:`table_from_results`):

1. A provider is a candidate in a class only if it ran every shape of the class and its output matched
   the float64 reference in each (the ``max_rel_err`` metric the benchmark records, below
   :data:`CORRECT_RTOL`; ``eager`` is the reference). ``compile`` is a candidate only where the
   benchmark also recorded its first-call seconds (``compile_seconds``, :data:`COMPILE_METRIC`: the
   first call at the shape with torch.compile's in-process and on-disk caches out of play, so tracing,
   lowering and the C++ / Triton compiler all count); without them it is never picked.
2. Its cost at a shape is its median time per call; for ``compile`` plus the compile time spread over
   :data:`AMORTISE_CALLS` calls, ``median_ms + 1000 * compile_seconds / AMORTISE_CALLS``
   (:func:`amortised_ms`): a run compiles once per shape and then calls that many times at it.
3. ``auto`` picks the candidate with the lowest cost summed over the class's shapes (a tie goes to the
   provider that does not compile). The table stores the summed costs (``evidence_ms``) and, for
   ``compile``, its summed median, compile seconds and amortised cost, or why it was not a candidate
   (``compile_evidence``).

``compile`` falls back to eager (one warning with the reason) where torch.compile cannot run: no C++
compiler for inductor's CPU code, no Triton on CUDA, ``MMBENCH_NO_COMPILE=1``, a compile error
(:mod:`kernels.compiled`); :func:`resolved_providers` reports ``eager`` for it when that is known
beforehand. Without an entry (a device the table does not cover, e.g. CUDA when the shipped table is
the CPU one), ``auto`` falls back to the fixed rule: Triton on CUDA, the C++ extension on the CPU. A
``cpp`` choice falls back to eager when the extension does not build.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Optional

import torch

from .compiled import compile_would_work

#: Shipped table (made by ``bench`` on the reference CPU; see results/KERNELS.md).
DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dispatch_default.json")
#: Environment variable naming a table measured on this machine.
ENV_TABLE = "MMBENCH_KERNELS_DISPATCH"
#: File name of the table written by ``bench`` next to kernels.csv.
TABLE_NAME = "kernels_dispatch.json"
#: The benchmark ops whose measurements decide ``auto``, with their modes.
DISPATCH_OPS = {"modality_stats": ("fwd",), "weighted_multimodal_ce": ("fwd", "fwd_bwd")}
#: Providers ``auto`` may choose, per device type.
CANDIDATES = {"cpu": ("eager", "cpp", "compile"), "cuda": ("eager", "triton", "cpp", "compile")}
#: Candidates whose first call per shape compiles (``torch.compile``): their cost includes that call.
COMPILED_PROVIDERS = ("compile",)
#: The benchmark's metric for a compiling provider's first call per shape, cold (seconds).
COMPILE_METRIC = "compile_seconds"
#: A provider is correct in a cell when its largest relative error against float64 is below this.
CORRECT_RTOL = 1e-4
#: Calls of one dispatch op at one shape in one run, over which ``compile``'s first-call seconds are
#: amortised (rule 2 of the module docstring): 175, the mean over the default suite's 12 data sets of
#: the training steps of one run, epochs x floor(n_train / batch_size) (the trainer drops the last
#: partial batch, so a run trains at one shape), with one call per step: ARL and DGL call
#: ``weighted_multimodal_ce`` (fwd_bwd) once per step in every epoch. Per data set (``--suite default``,
#: per-data-set epochs and batch sizes of ``mmbench.config``): mfeat-pix-mor and mfeat-fou-zer-mor 360
#: (20 x 18), watch 228, satellite 225, synthetic 220, leaves 160, yeast-ml 110, yeast-cc 105, spam 100,
#: cells 90, alzheimer 90, pd-speech 60. The mean, not the median (135), because it is the break-even of
#: the suite's total time: sum_runs (T_run * median + compile) = (sum T_run) * (median + compile / mean T).
#: Two things make 175 conservative (against compile): a worker process of ``mmbench all`` keeps its
#: compiled graphs for the runs after (10 runs per method and data set share a shape: 5 seeds x 2
#: patterns), and inductor's disk cache makes a later process compile faster than the cold measurement;
#: one makes it generous: OGM-GE calls ``modality_stats`` only in its modulation window (by default the
#: first half of the epochs, about 88 calls). ``tests/mmbench/test_amortise_calls.py`` recomputes it.
AMORTISE_CALLS = 175
#: Upper element counts of the shape classes (the last class is unbounded).
SHAPE_CLASSES = (("small", 1 << 14), ("medium", 1 << 17), ("large", None))

_CACHE: Dict[str, dict] = {}


def shape_class(M: int, B: int, C: int) -> str:
    """``small`` / ``medium`` / ``large`` by the element count ``M * B * C`` (module docstring)."""
    n = int(M) * int(B) * int(C)
    for name, limit in SHAPE_CLASSES:
        if limit is None or n <= limit:
            return name
    raise AssertionError("unreachable")


def _dtype_key(dtype: torch.dtype) -> str:
    return "float32" if dtype in (torch.float16, torch.bfloat16, torch.float32) else str(dtype).replace("torch.", "")


def load_table(path: Optional[str] = None) -> dict:
    """The dispatch table in use: ``path``, else ``$MMBENCH_KERNELS_DISPATCH``, else the shipped default.

    Raises:
        ValueError: the file is not a dispatch table (names the file).
    """
    path = path or os.environ.get(ENV_TABLE) or DEFAULT_TABLE
    if path not in _CACHE:
        try:
            with open(path) as fh:
                table = json.load(fh)
        except FileNotFoundError:
            if path == DEFAULT_TABLE:
                table = {"choices": {}}
            else:
                raise ValueError(f"{ENV_TABLE}={path}: no such dispatch table (make one with `python -m mmbench bench`)")
        except json.JSONDecodeError as exc:
            raise ValueError(f"dispatch table {path} is not valid JSON: {exc}") from None
        if not isinstance(table, dict) or not isinstance(table.get("choices"), dict):
            raise ValueError(f"dispatch table {path} has no 'choices' mapping")
        _CACHE[path] = table
    return _CACHE[path]


def _fallback(device_type: str) -> str:
    return "triton" if device_type == "cuda" else "cpp"


def table_choice(op: str, mode: str, device_type: str, dtype: torch.dtype, M: int, B: int, C: int) -> str:
    """The provider the table (or the fixed rule) names for a cell, before checking the extension builds."""
    if dtype == torch.float64:
        return "eager"
    key = f"{device_type}/{op}/{mode}/{_dtype_key(dtype)}/{shape_class(M, B, C)}"
    return load_table()["choices"].get(key, _fallback(device_type))


def cpp_would_build() -> bool:
    """Whether ``cpp`` is usable, without building it when this process has not tried yet: the real
    state once tried; otherwise not opted out (``MMBENCH_NO_CPP``) and a C++ compiler and ninja exist."""
    from .cpp_ext import _STATE

    if _STATE["tried"]:
        return _STATE["ext"] is not None
    if os.environ.get("MMBENCH_NO_CPP", "") == "1":
        return False
    return shutil.which("ninja") is not None and (shutil.which("c++") or shutil.which("g++")) is not None


def resolved_providers(backend: str, device: str, dtype: torch.dtype = torch.float32) -> Dict[str, str]:
    """What ``backend`` resolves to for every dispatch cell of ``device`` and ``dtype`` (for run keys).

    ``{"<op>/<mode>/<shape class>": provider}``; nothing is built or compiled (:func:`cpp_would_build`,
    :func:`kernels.compiled.compile_would_work`: ``compile`` is ``eager`` where torch.compile cannot run).
    """
    dev_type = torch.device(device).type
    out = {}
    for op, modes in DISPATCH_OPS.items():
        for mode in modes:
            for cls, limit in SHAPE_CLASSES:
                n = limit if limit is not None else (1 << 30)
                name = table_choice(op, mode, dev_type, dtype, 1, 1, n) if backend == "auto" else backend
                if name == "triton" and dev_type != "cuda":
                    name = "eager"  # the interpreter is not a run-time path (see kernels._utils.resolve_backend)
                if name == "cpp" and not cpp_would_build():
                    name = "eager"
                if name == "compile" and not compile_would_work(dev_type):
                    name = "eager"
                out[f"{op}/{mode}/{cls}"] = name
    return out


def _cell_values(dd, metric: str):
    """``{(shape, provider): value}`` of one metric in a results frame (last row wins)."""
    rows = dd[dd.metric == metric]
    return {(r["shape"], r["provider"]): float(r["value"]) for _, r in rows.iterrows()}


def amortised_ms(median_ms: float, compile_seconds: float, calls: int = None) -> float:
    """Cost per call of a compiling provider at one shape: its steady median plus its first-call
    (compile) seconds spread over ``calls`` calls (:data:`AMORTISE_CALLS`) -- in milliseconds."""
    calls = AMORTISE_CALLS if calls is None else int(calls)
    if calls < 1:
        raise ValueError(f"calls must be >= 1; got {calls}")
    return float(median_ms) + 1e3 * float(compile_seconds) / calls


def table_from_results(df, device_type: str, calls: int = None) -> dict:
    """Build the dispatch table from the benchmark's long-format results (``kernels.csv`` rows).

    The rule (module docstring), for each dispatch op, mode, dtype and shape class: among the
    candidates of ``device_type`` (:data:`CANDIDATES`) that ran every shape of the class, were correct
    in each (``max_rel_err`` < :data:`CORRECT_RTOL`; ``eager`` is the reference and always correct),
    and -- for a compiling provider (:data:`COMPILED_PROVIDERS`) -- have a recorded
    :data:`COMPILE_METRIC` in each, the one with the lowest cost summed over the class's shapes, where
    the cost at a shape is the median time per call, plus for a compiling provider its compile seconds
    over ``calls`` (default :data:`AMORTISE_CALLS`; :func:`amortised_ms`). On a tie the
    non-compiling provider wins.

    Returns:
        ``{"made_by", "device", "timestamp", "amortise_calls", "choices": {key: provider},
        "evidence_ms": {key: {provider: summed cost per call, ms}}, "compile_evidence": {key: {...}}}``;
        ``compile_evidence`` holds, per class where a compiling provider was timed, its summed median
        (ms), summed compile seconds, the amortised cost (ms) and, when it was not a candidate, why.
    """
    calls = AMORTISE_CALLS if calls is None else int(calls)
    choices, evidence, compile_evidence = {}, {}, {}
    cands = CANDIDATES.get(device_type, ("eager",))
    for op, modes in DISPATCH_OPS.items():
        d = df[(df.op == op)]
        for mode in modes:
            dm = d[d["mode"] == mode]
            for dtype in sorted(dm.dtype.dropna().unique()):
                dd = dm[dm.dtype == dtype]
                times = dd[dd.metric == "median_ms"]
                errs = _cell_values(dd, "max_rel_err")
                compile_s = _cell_values(dd, COMPILE_METRIC)
                # class -> provider -> shape -> (median ms, compile seconds or None, reason it is out or "")
                by_class: Dict[str, Dict[str, Dict[str, tuple]]] = {}
                for _, r in times.iterrows():
                    prov, shape = r["provider"], r["shape"]
                    if prov not in cands:
                        continue
                    dims = dict(kv.split("=") for kv in str(shape).split(","))
                    cls = shape_class(int(dims.get("M", 1)), int(dims.get("B", 1)), int(dims.get("C", 1)))
                    err = errs.get((shape, prov), float("nan"))
                    missing = [] if prov == "eager" or (err == err and err < CORRECT_RTOL) else \
                        [f"max_rel_err {err:.1e}" if err == err else "no max_rel_err"]
                    cs = compile_s.get((shape, prov)) if prov in COMPILED_PROVIDERS else 0.0
                    if cs is None or cs != cs:
                        missing.append(f"no {COMPILE_METRIC}")
                    why = f"{' and '.join(missing)} at {shape}" if missing else ""
                    by_class.setdefault(cls, {}).setdefault(prov, {})[shape] = (float(r["value"]), cs, why)
                for cls, provs in by_class.items():
                    key = f"{device_type}/{op}/{mode}/{dtype}/{cls}"
                    shapes = set().union(*(set(v) for v in provs.values()))
                    totals, out = {}, {}
                    for prov, cells in provs.items():
                        missing = sorted(shapes - set(cells))
                        why = next((c[2] for c in cells.values() if c[2]), "") or \
                            (f"not timed at {', '.join(missing)}" if missing else "")
                        med = sum(c[0] for c in cells.values())
                        if prov in COMPILED_PROVIDERS:
                            secs = [c[1] for c in cells.values() if c[1] is not None and c[1] == c[1]]
                            ev = {"median_ms": round(med, 6), COMPILE_METRIC: round(sum(secs), 3) if secs else None}
                            if not why:
                                ev["amortised_ms"] = round(sum(amortised_ms(c[0], c[1], calls) for c in cells.values()), 6)
                            else:
                                ev["not_a_candidate"] = why
                            out[prov] = ev
                        if why:
                            continue
                        totals[prov] = sum(amortised_ms(c[0], c[1], calls) if prov in COMPILED_PROVIDERS else c[0]
                                           for c in cells.values())
                    if not totals:
                        continue
                    choices[key] = min(totals, key=lambda p: (totals[p], p in COMPILED_PROVIDERS))
                    evidence[key] = {p: round(t, 6) for p, t in sorted(totals.items())}
                    if out:
                        compile_evidence[key] = out
    first = df.iloc[0] if len(df) else {}
    return {"made_by": "python -m mmbench bench (kernels.dispatch.table_from_results)",
            "device": str(first.get("device", "")), "timestamp": str(first.get("timestamp", "")),
            "amortise_calls": calls,
            "choices": dict(sorted(choices.items())), "evidence_ms": dict(sorted(evidence.items())),
            "compile_evidence": dict(sorted(compile_evidence.items()))}


def write_table(df, device_type: str, path: str) -> dict:
    """Write :func:`table_from_results` to ``path`` (JSON) and return it."""
    table = table_from_results(df, device_type)
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(table, fh, indent=1, sort_keys=False)
        fh.write("\n")
    _CACHE.pop(path, None)
    return table


__all__ = ["shape_class", "load_table", "table_choice", "resolved_providers", "table_from_results", "write_table",
           "amortised_ms", "DISPATCH_OPS", "CANDIDATES", "COMPILED_PROVIDERS", "COMPILE_METRIC", "AMORTISE_CALLS",
           "DEFAULT_TABLE", "ENV_TABLE", "TABLE_NAME"]
