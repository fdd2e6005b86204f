"""Ahead-of-time compilation of every Triton kernel variant the wrappers can launch, without a GPU.

Triton compiles for a ``GPUTarget`` with its own ``ptxas``; no driver is needed. The variants are not
listed by hand: :func:`capture_launches` runs the *real* wrappers (``stats_forward``, ``ce_backward``,
``MADLossFunction``, ``DGLConcatHeadFunction``, ``PMEFunction``) on ``meta`` tensors of every shape of
the benchmark sweeps (:mod:`kernels.benchmark`), intercepting ``JITFunction.run`` so nothing launches.
So the block sizes, ``num_warps``, constexpr flags and argument specialisations (divisibility by 16,
ints equal to 1) are exactly those the wrappers would pass on a GPU, chosen by the wrappers' own
config functions. The one device query, the SM count the MAD split uses, is answered per target
(:data:`TARGET_SMS`).

:func:`compile_variant` then compiles each variant with Triton's binder and ``triton.compile`` for
``sm_80`` and ``sm_90`` and reads its static resources: registers and spill bytes from ``ptxas -v`` on
the emitted PTX (the flags Triton itself uses), shared memory and warps from the kernel metadata.

Entry points: :func:`collect_variants`, :func:`compile_all` (``python -m mmbench bench --compile-only``).
This module must run with ``TRITON_INTERPRET`` unset (the interpreter replaces ``triton.jit``).
"""
from __future__ import annotations

import contextlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

#: Compile targets: (name, compute capability, warp size, SM count used for the MAD column split).
#: sm_80 = A100 (108 SMs); sm_90 = H100 / H200 (132 SMs).
TARGETS: Tuple[Tuple[str, int, int, int], ...] = (("sm_80", 80, 32, 108), ("sm_90", 90, 32, 132))
TARGET_SMS = {name: sms for name, _, _, sms in TARGETS}
DTYPES = (torch.float32, torch.bfloat16, torch.float16)


@dataclass
class Launch:
    """One intercepted kernel launch: the JIT function and the exact arguments the wrapper passed."""

    kernel: Any  # triton.runtime.jit.JITFunction
    args: Tuple[Any, ...]
    kwargs: Dict[str, Any]
    origin: str  # which wrapper call and shape produced it (for reports)


@dataclass
class Variant:
    """A distinct compiled kernel: the launch plus its specialisation key (one row of the static table)."""

    launch: Launch
    key: str
    targets: List[str] = field(default_factory=list)


@contextlib.contextmanager
def capture_launches(sink: List[Launch], origin: str = "") -> Iterator[None]:
    """Record ``kernel[grid](...)`` calls into ``sink`` instead of launching them."""
    from triton.runtime.jit import JITFunction

    real_run = JITFunction.run

    def record(self, *args, grid, warmup, **kwargs):
        sink.append(Launch(self, args, dict(kwargs), origin))
        return None

    JITFunction.run = record
    try:
        yield
    finally:
        JITFunction.run = real_run


# ------------------------------------------------------------------------------------------------
# Driving the real wrappers over the benchmark shapes (meta tensors: no memory, no launch).
# ------------------------------------------------------------------------------------------------
def _benchmark_shapes(op_name: str, sweeps: Optional[Sequence[str]] = None) -> List[Dict[str, Any]]:
    """Every distinct shape of the op's benchmark sweeps (all sweeps by default)."""
    from kernels.benchmark import registry

    registry.discover()
    op = registry.get_op(op_name)
    out: List[Dict[str, Any]] = []
    for name, shapes in op.shapes.items():
        if sweeps and name not in sweeps:
            continue
        out += [s for s in shapes if s not in out]
    return out


def _meta(*shape, dtype=torch.float32, grad=False) -> torch.Tensor:
    return torch.empty(shape, dtype=dtype, device="meta", requires_grad=grad)


def _drive_stats(shape: Dict[str, Any], dtype: torch.dtype) -> None:
    """Forward with and without weights ([M] stride-0 and [M, B]), backward (stats_triton wrappers)."""
    from kernels.stats_triton import ce_backward, stats_forward

    M, B, C = shape["M"], shape["B"], shape["C"]
    x, y = _meta(M, B, C, dtype=dtype), _meta(B, dtype=torch.int64)
    stats_forward(x, y)
    for w2d in (_meta(M, 1).expand(M, B), _meta(M, B)):  # per-modality and per-sample weights
        state = stats_forward(x, y, w2d)[-1]
        ce_backward(x, y, w2d, state, _meta())


def _drive_mad(shape: Dict[str, Any], dtype: torch.dtype) -> None:
    """Forward + backward through MADLossFunction for both variants, split halves, ieee and tf32."""
    from kernels.mad_triton import MADLossFunction

    n, d = shape["N"], shape["D"]
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            for row_weight in (False, True):
                for split_halves in (False, True):
                    s = _meta(n, d, dtype=dtype, grad=True)
                    MADLossFunction.apply(s, _meta(n, d, dtype=dtype), _meta(n), row_weight, split_halves).backward()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old


def _drive_dgl(shape: Dict[str, Any], dtype: torch.dtype) -> None:
    from kernels.dgl_head_triton import DGLConcatHeadFunction

    M, B, D, C = shape["M"], shape["B"], shape["D"], shape["C"]
    DGLConcatHeadFunction.apply(_meta(C, M * D, dtype=dtype), _meta(C, dtype=dtype), *[_meta(B, D, dtype=dtype)] * M)


def _drive_pme(shape: Dict[str, Any], dtype: torch.dtype) -> None:
    """Forward/backward, train/eval, tensor seed (device) and int seed, with and without a z gradient."""
    from kernels.pme import PMEFunction

    feat = (shape["B"],) + tuple(shape["feat"])
    for training in (True, False):
        for seed in (_meta(1, dtype=torch.int64), 12345):
            mu, lv = _meta(*feat, dtype=dtype, grad=True), _meta(*feat, dtype=dtype, grad=True)
            z, kl = PMEFunction.apply(mu, lv, seed, training)
            kl.backward(retain_graph=True)  # KL gradient only
            if training:
                torch.autograd.backward([z, kl], [torch.empty_like(z), torch.empty_like(kl)])


#: op name in the benchmark registry -> driver of its wrappers, and the dtypes the wrappers accept.
DRIVERS: Dict[str, Tuple[Callable[[Dict[str, Any], torch.dtype], None], Tuple[torch.dtype, ...]]] = {
    "weighted_multimodal_ce": (_drive_stats, DTYPES),
    "mad_loss": (_drive_mad, (torch.float32, torch.bfloat16)),
    "dgl_head": (_drive_dgl, DTYPES),
    "pme_sample_kl": (_drive_pme, DTYPES),
}


def _spec_key(launch: Launch, target: Any) -> Tuple[str, Any]:
    """Triton's own specialisation of the captured arguments for ``target``: the cache key it would use."""
    from triton.compiler import make_backend
    from triton.runtime.jit import create_function_from_signature

    fn = launch.kernel
    backend = make_backend(target)
    binder = create_function_from_signature(fn.signature, fn.params, backend)
    kwargs = dict(launch.kwargs, debug=False)
    bound_args, specialization, options = binder(*launch.args, **kwargs)
    packed = fn._pack_args(backend, kwargs, bound_args, specialization, options)
    scalars = sorted((k, v) for k, v in launch.kwargs.items() if not hasattr(v, "shape"))
    key = f"{fn.fn.__name__}{specialization}{scalars}"
    return key, packed


def collect_variants(ops: Optional[Sequence[str]] = None, sweeps: Optional[Sequence[str]] = None,
                     dtypes: Optional[Sequence[torch.dtype]] = None) -> List[Variant]:
    """Distinct kernel variants the wrappers launch for the benchmark shapes, per target.

    Args:
        ops: benchmark op names (default: every op with a Triton path, :data:`DRIVERS`).
        sweeps: restrict to these benchmark sweeps (default: all).
        dtypes: restrict the input dtypes (default: every dtype the wrapper accepts).

    Returns:
        One :class:`Variant` per distinct (kernel, specialisation), with the targets that launch it
        (the MAD split depends on the SM count, so a few variants exist for one target only).
    """
    from kernels import mad_triton
    from triton.backends.compiler import GPUTarget

    if os.environ.get("TRITON_INTERPRET", "0") == "1":
        raise RuntimeError("compile_check needs TRITON_INTERPRET unset: the interpreter replaces triton.jit")
    variants: Dict[str, Variant] = {}
    real_sms = mad_triton._sm_count
    try:
        for tname, cap, warp, sms in TARGETS:
            mad_triton._sm_count = lambda device, _sms=sms: _sms  # what this target's GPU would report
            target = GPUTarget("cuda", cap, warp)
            for op in ops or DRIVERS:
                drive, allowed = DRIVERS[op]
                for shape in _benchmark_shapes(op, sweeps):
                    for dtype in [d for d in allowed if dtypes is None or d in dtypes]:
                        launches: List[Launch] = []
                        with capture_launches(launches, f"{op} {shape} {str(dtype)[6:]}"):
                            drive(shape, dtype)
                        for launch in launches:
                            key, _ = _spec_key(launch, target)
                            v = variants.setdefault(key, Variant(launch, key))
                            if tname not in v.targets:
                                v.targets.append(tname)
    finally:
        mad_triton._sm_count = real_sms
    return list(variants.values())


# ------------------------------------------------------------------------------------------------
# Compilation and static resources.
# ------------------------------------------------------------------------------------------------
_PTXAS_REGS = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_STACK = re.compile(r"(\d+) bytes stack frame")


def ptxas_resources(ptx: str, cap: int) -> Dict[str, int]:
    """``ptxas -v`` on ``ptx`` with Triton's flags: registers, spill store/load bytes, stack frame bytes."""
    from triton.backends.nvidia.compiler import get_ptxas, sm_arch_from_capability

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "k.ptx")
        with open(src, "w") as fh:
            fh.write(ptx)
        cmd = [get_ptxas(cap).path, "-lineinfo", "-v", "--regAllocOptLevel=2",
               f"--gpu-name={sm_arch_from_capability(cap)}", src, "-o", os.path.join(tmp, "k.o")]
        log = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    regs = _PTXAS_REGS.search(log)
    spill = _PTXAS_SPILL.search(log)
    stack = _PTXAS_STACK.search(log)
    return {
        "registers": int(regs.group(1)) if regs else -1,
        "spill_store_bytes": int(spill.group(1)) if spill else 0,
        "spill_load_bytes": int(spill.group(2)) if spill else 0,
        "stack_bytes": int(stack.group(1)) if stack else 0,
    }


def compile_variant(variant: Variant, target_name: str) -> Dict[str, Any]:
    """Compile ``variant`` for ``target_name`` ("sm_80" / "sm_90"); return one row of the static table."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    _, cap, warp, _ = next(t for t in TARGETS if t[0] == target_name)
    target = GPUTarget("cuda", cap, warp)
    _, (options, signature, constexprs, attrs) = _spec_key(variant.launch, target)
    kernel = triton.compile(ASTSource(variant.launch.kernel, signature, constexprs, attrs), target=target,
                            options=options.__dict__)
    res = ptxas_resources(kernel.asm["ptx"], cap)
    consts = {k[0] if isinstance(k, tuple) and len(k) == 1 else k: v for k, v in constexprs.items()}
    names = [p.name for p in variant.launch.kernel.params]
    shown = {names[k] if isinstance(k, int) else k: v for k, v in consts.items()}
    return {
        "kernel": variant.launch.kernel.fn.__name__,
        "target": target_name,
        "constexprs": ", ".join(f"{k}={v}" for k, v in shown.items() if k.isupper() or k.startswith("BLOCK")),
        "num_warps": kernel.metadata.num_warps,
        "shared_bytes": kernel.metadata.shared,
        **res,
        "origin": variant.launch.origin,
    }


def compile_all(ops: Optional[Sequence[str]] = None, sweeps: Optional[Sequence[str]] = None,
                dtypes: Optional[Sequence[torch.dtype]] = None, verbose: bool = False) -> List[Dict[str, Any]]:
    """Collect and compile every variant for every target that launches it; returns the table rows."""
    rows = []
    for v in collect_variants(ops, sweeps, dtypes):
        for t in v.targets:
            rows.append(compile_variant(v, t))
            if verbose:
                r = rows[-1]
                print(f"{r['target']} {r['kernel']:26s} regs {r['registers']:4d} spill {r['spill_store_bytes']:5d} "
                      f"smem {r['shared_bytes']:6d} warps {r['num_warps']} {r['constexprs']}", flush=True)
    return rows


#: The CI subset: the "quick" benchmark sweep in fp32 plus bf16 for op 1 (its 16-bit loads and stores).
CI_SUBSET = {"sweeps": ["quick"], "dtypes": [torch.float32]}


def launched_kernel_names() -> List[str]:
    """Names of every module-level ``@triton.jit`` kernel that a wrapper launches (``*_kernel``), for
    checking that :data:`DRIVERS` reaches all of them (helpers such as ``_gram_tile`` are inlined)."""
    import importlib

    from triton.runtime.jit import JITFunction

    names = []
    for mod in ("kernels.stats_triton", "kernels.mad_triton", "kernels.dgl_head_triton", "kernels.pme"):
        m = importlib.import_module(mod)
        names += [k for k, v in vars(m).items() if isinstance(v, JITFunction) and k.endswith("_kernel")]
    return sorted(names)


def static_markdown(rows: List[Dict[str, Any]]) -> str:
    """The static-resources table of KERNELS.md: one line per kernel variant and target."""
    import pandas as pd

    if not rows:
        return ""
    full = pd.DataFrame(rows)
    full["dtype"] = full.origin.str.split().str[-1]
    # Merge rows that differ only in argument specialisation or dtype, keeping the worst (most registers
    # and spills) of each, and the dtypes that reach it.
    dtypes = full.groupby(["kernel", "target", "constexprs", "num_warps"]).dtype.agg(lambda d: "/".join(sorted(set(d))))
    df = full.sort_values(["spill_store_bytes", "registers"], ascending=False)
    df = df.drop_duplicates(["kernel", "target", "constexprs", "num_warps"]).drop(columns="dtype")
    df = df.join(dtypes, on=["kernel", "target", "constexprs", "num_warps"])
    df = df.sort_values(["kernel", "constexprs", "target"])
    cols = ["kernel", "target", "constexprs", "dtype", "num_warps", "registers", "spill_store_bytes",
            "spill_load_bytes",
            "shared_bytes"]
    spilled = full[full.spill_store_bytes > 0]
    lines = [
        "## Static resources per kernel variant (compiled without a GPU)",
        "",
        f"{len(rows)} compilations ({df.kernel.nunique()} kernels, {len(df)} distinct launch configurations x "
        "target shown) for `sm_80` (A100) and `sm_90` (H100/H200) by `triton.compile` with Triton's `ptxas`, of "
        "every launch the wrappers make for the benchmark's shape sweeps (`kernels/compile_check.py`). "
        "Registers and spill bytes per thread from `ptxas -v` on the emitted PTX; shared memory (bytes per "
        "block) and warps from the compiled kernel's metadata. Rows that differ only in argument "
        "specialisation (divisibility of sizes and strides) are merged.",
        "",
        f"Compilations that spill: {len(spilled)}"
        + (" (" + "; ".join(sorted(set(spilled.kernel + " " + spilled.target + " " + spilled.dtype + " "
                                       + spilled.spill_store_bytes.astype(str) + " B, " + spilled.origin.str.split(
                                           " ", n=1).str[1]))) + ")" if len(spilled) else "") + ".",
        "",
        BLOCK_SIZE_NOTES,
        "",
        df[cols].to_markdown(index=False),
        "",
    ]
    return "\n".join(lines)


#: How each block size was chosen (none is autotuned: ``@triton.autotune`` does not run under the
#: interpreter, and no GPU has been available to tune on). Rendered above the static table.
BLOCK_SIZE_NOTES = """How the block sizes were chosen (heuristics in the wrappers, not autotuned; the table above is
their only check so far, and no timing on a GPU exists yet):

- `_stats_fwd_kernel`, `_ce_bwd_kernel` (`kernels/stats_triton.py: launch_config`): `BLOCK_C` = next power
  of two of C, capped at 2048 (longer rows loop); `BLOCK_B` fills a tile of about 4096 fp32 values (C = 6
  packs 128 rows per program, C = 309 packs 8), at most next_pow2(B); 4 warps up to 1024 tile elements,
  else 8 (at most 8 values per thread). Chosen so realistic C (6-309) needs one pass per row and a
  program's tile stays in registers; the [64, 32] tile of C = 28/31 took 240-246 registers at 4 warps
  (no headroom, half the occupancy), 102-128 at 8.
- `mad_stats_kernel` (forward): 32 x 32 Gram tiles, `BLOCK_K` 32, 8 warps; 64 x 64 tiles spilled on
  sm_80. The column loop is split (`SPLITS`) so that about four programs per SM are in flight (108 SMs
  for sm_80, 132 for sm_90).
- `mad_grad_kernel` (backward): with TF32, 32 x 32 tiles and up to 4 `[32, 128]` accumulators (D = 512
  in one Gram recomputation); with ieee fp32 (the default), 16 x 16 tiles, 2 accumulators and 4 warps,
  the largest setting without spills on both targets (32 x 32 tiles with 4 accumulators spilled 1.5 KB
  per thread on sm_90).
- `dgl_head_epilogue_kernel`: `BLOCK` = next_pow2(B * C) capped at 1024 elements, 4 warps (an
  elementwise epilogue: one program per 1024 logits).
- `pme_fwd_kernel` / `pme_bwd_kernel`: 1024 elements per program; 4 warps forward, 8 backward (4 warps
  spilled 4 B on sm_90 for bf16 in the backward, which regenerates the Philox noise)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m kernels.compile_check [--ci] [--json PATH]``: compile and print the static table."""
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m kernels.compile_check", description=__doc__.splitlines()[0])
    p.add_argument("--ci", action="store_true", help="the CI subset (quick sweep, fp32) instead of every variant")
    p.add_argument("--json", default="", help="write the rows as JSON to this path")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    rows = compile_all(**(CI_SUBSET if args.ci else {}), verbose=args.verbose)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "kernels": launched_kernel_names()}, fh)
    print(static_markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
