"""What ``backend="auto"`` means for op 1: the measured fastest correct provider per op, dtype and shape class.

The choice is a small table made by ``python -m mmbench bench`` (:func:`table_from_results`, written to
``<out>/kernels_dispatch.json`` next to ``kernels.csv``). A copy made on the reference CPU ships with the
package (``kernels/dispatch_default.json``); ``MMBENCH_KERNELS_DISPATCH=<path>`` points ``auto`` at a
table measured on this machine instead.

Keys are ``"<device type>/<op>/<mode>/<dtype>/<shape class>"``:

* op and mode: ``modality_stats/fwd`` (statistics, no graph), ``weighted_multimodal_ce/fwd`` (loss
  without a graph) and ``weighted_multimodal_ce/fwd_bwd`` (loss that will be back-propagated);
* dtype: the benchmark times float32; float16/bfloat16 use the float32 entry (every CPU provider upcasts
  to float32 first). **float64 is always eager** (the only provider that computes in float64);
* shape class of the ``[M, B, C]`` logits by element count: ``small`` (<= 2^14: the realistic B = 64,
  C <= 31 heads), ``medium`` (<= 2^17: C = 309 at B = 64, B = 1024 at C = 64), ``large`` (above).

Candidates are the providers ``auto`` may pick: ``eager`` and ``cpp`` on the CPU, ``eager``, ``triton``
and ``cpp`` on CUDA. A provider is a candidate in a cell only if its output in that cell matched the
float64 reference (the ``max_rel_err`` metric the benchmark records, below :data:`CORRECT_RTOL`).
``torch.compile`` is timed by the benchmark but never picked: its first call per shape compiles for
seconds (a training run meets new shapes: the last partial batch, evaluation batches), which per-call
medians do not show. Without an entry (a device the table does not cover, e.g. CUDA when the
shipped table is the CPU one), ``auto`` falls back to the fixed rule: Triton on CUDA, the C++
extension on the CPU. A ``cpp`` choice falls back to eager when the extension does not build.
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Dict, Optional

import torch

#: Shipped table (made by ``bench`` on the reference CPU; see results/KERNELS.md).
DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dispatch_default.json")
#: Environment variable naming a table measured on this machine.
ENV_TABLE = "MMBENCH_KERNELS_DISPATCH"
#: File name of the table written by ``bench`` next to kernels.csv.
TABLE_NAME = "kernels_dispatch.json"
#: The benchmark ops whose measurements decide ``auto``, with their modes.
DISPATCH_OPS = {"modality_stats": ("fwd",), "weighted_multimodal_ce": ("fwd", "fwd_bwd")}
#: Providers ``auto`` may choose, per device type.
CANDIDATES = {"cpu": ("eager", "cpp"), "cuda": ("eager", "triton", "cpp")}
#: A provider is correct in a cell when its largest relative error against float64 is below this.
CORRECT_RTOL = 1e-4
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

    ``{"<op>/<mode>/<shape class>": provider}``; nothing is built (:func:`cpp_would_build`).
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
                out[f"{op}/{mode}/{cls}"] = name
    return out


def table_from_results(df, device_type: str) -> dict:
    """Build the dispatch table from the benchmark's long-format results (``kernels.csv`` rows).

    For each dispatch op, mode, dtype and shape class: the candidate provider with the lowest median
    time summed over the class's shapes, among those correct (``max_rel_err`` < :data:`CORRECT_RTOL`)
    in every shape of the class that they ran. ``eager`` is always a candidate (it is the reference).

    Returns:
        ``{"device", "timestamp", "choices": {key: provider}, "evidence": {key: {provider: ms}}}``.
    """
    choices, evidence = {}, {}
    cands = CANDIDATES.get(device_type, ("eager",))
    for op, modes in DISPATCH_OPS.items():
        d = df[(df.op == op)]
        for mode in modes:
            dm = d[d["mode"] == mode]
            for dtype in sorted(dm.dtype.dropna().unique()):
                dd = dm[dm.dtype == dtype]
                times = dd[dd.metric == "median_ms"]
                errs = dd[dd.metric == "max_rel_err"].set_index(["shape", "provider"]).value
                by_class: Dict[str, Dict[str, list]] = {}
                for _, r in times.iterrows():
                    if r["provider"] not in cands:
                        continue
                    dims = dict(kv.split("=") for kv in str(r["shape"]).split(","))
                    cls = shape_class(int(dims.get("M", 1)), int(dims.get("B", 1)), int(dims.get("C", 1)))
                    err = errs.get((r["shape"], r["provider"]), float("nan"))
                    ok = r["provider"] == "eager" or (err == err and err < CORRECT_RTOL)
                    by_class.setdefault(cls, {}).setdefault(r["provider"], []).append(float(r["value"]) if ok else None)
                for cls, provs in by_class.items():
                    totals = {p: sum(v) for p, v in provs.items() if None not in v}
                    key = f"{device_type}/{op}/{mode}/{dtype}/{cls}"
                    choices[key] = min(totals, key=totals.get)
                    evidence[key] = {p: round(t, 6) for p, t in sorted(totals.items())}
    first = df.iloc[0] if len(df) else {}
    return {"made_by": "python -m mmbench bench (kernels.dispatch.table_from_results)",
            "device": str(first.get("device", "")), "timestamp": str(first.get("timestamp", "")),
            "choices": dict(sorted(choices.items())), "evidence_ms": dict(sorted(evidence.items()))}


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
           "DISPATCH_OPS", "CANDIDATES", "DEFAULT_TABLE", "ENV_TABLE", "TABLE_NAME"]
