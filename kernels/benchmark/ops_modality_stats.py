"""Benchmark registrations for op 1 (modality statistics and weighted multimodal CE).

Ops:

* ``modality_stats`` -- statistics only (no grad; "fwd").
* ``weighted_multimodal_ce`` -- the re-weighted CE, "fwd" and "fwd_bwd".
* ``ogm_arl_step`` -- a whole modulation step: statistics, OGM-GE and ARL coefficients, the
  weighted CE and its backward (the released code does this with per-modality softmaxes, a Python
  loop over the batch and ``.cpu().numpy()`` host syncs).

Providers: eager reference, released composition (for the CE: the released per-modality
``F.cross_entropy`` loop), ``torch.compile`` of each, Triton (CUDA only: the interpreter is not a
performance path), C++ extension. The first four are the references: every speedup is against the
fastest of them in the same cell (named in the report).

``compile`` of the statistics and of the CE is the library's own ``backend="compile"`` (``torch.compile``
of the eager specification, what ``auto`` runs when the dispatch table picks it), with its error against
float64 recorded like the other candidates' and its first call per shape timed cold
(``compile_seconds``); for the whole step it is ``torch.compile`` of the eager step.
"""
from __future__ import annotations

from typing import Callable, Dict

import torch

from kernels import arl_coefficients, modality_stats, ogm_ge_coefficients, weighted_multimodal_ce
from kernels.stats_reference import (
    modality_stats_reference,
    released_arl_weights,
    released_stats,
    released_weighted_ce,
    weighted_ce_reference,
)

from .registry import BenchOp, Provider, needs_cuda, register_op

REALISTIC = [{"M": m, "B": 64, "C": c} for m in (2, 3) for c in (6, 28, 31, 309)]
SWEEP = [{"M": 2, "B": b, "C": c} for b in (4096, 65536) for c in (64, 512, 4096)] + [{"M": 3, "B": 16384, "C": 1000}]
CPU_SWEEP = [{"M": 2, "B": 1024, "C": 64}, {"M": 2, "B": 4096, "C": 1000}]
QUICK = [{"M": 2, "B": 64, "C": 6}, {"M": 3, "B": 64, "C": 309}]
SHAPES = {"realistic": REALISTIC, "sweep": SWEEP, "cpu_sweep": CPU_SWEEP, "quick": QUICK}


def make_inputs(shape: Dict, device, dtype) -> Dict:
    """Per-modality logits (a list of M leaf tensors [B, C], as methods pass them), labels, weights."""
    M, B, C = shape["M"], shape["B"], shape["C"]
    g = torch.Generator().manual_seed(0)
    logits = [(torch.randn(B, C, generator=g) * 2).to(device=device, dtype=dtype).requires_grad_() for _ in range(M)]
    labels = torch.randint(0, C, (B,), generator=g).to(device)
    weights = (torch.rand(M, generator=g) + 0.5).to(device)
    return {"logits": logits, "labels": labels, "weights": weights}


def _elem(dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def stats_bytes(shape: Dict, mode: str, dtype=torch.float32) -> int:
    """Read logits once + labels + write 4 fp32 per-row stats and 4 per-modality sums."""
    M, B, C = shape["M"], shape["B"], shape["C"]
    return M * B * C * _elem(dtype) + B * 8 + 4 * M * B * 4 + 16 * M


def ce_bytes(shape: Dict, mode: str, dtype=torch.float32) -> int:
    """fwd: read logits + labels + write lse. fwd_bwd adds read logits + lse + write dlogits."""
    M, B, C = shape["M"], shape["B"], shape["C"]
    s = _elem(dtype)
    fwd = M * B * C * s + B * 8 + M * B * 4
    return fwd if mode == "fwd" else fwd + 2 * M * B * C * s + M * B * 4 + B * 8


def _zero_grads(inputs):
    for t in inputs["logits"]:
        t.grad = None


def _cpp_ok(device):
    from kernels.cpp_ext import cpp_available, cpp_unavailable_reason

    if not cpp_available():
        return False, f"extension build failed ({cpp_unavailable_reason()})"
    if torch.device(device).type == "cuda":
        from kernels.cpp_ext import _STATE

        if not _STATE.get("with_cuda"):
            return False, "extension built without CUDA"
    return True, ""


def _compile_ok(device):
    """Whether torch.compile runs here (cheap checks; the real outcome once a compiled call was tried)."""
    from kernels.compiled import unusable_reason

    reason = unusable_reason(torch.device(device).type)
    return (False, reason) if reason else (True, "")


def _fused(backend: str) -> Callable:
    """Provider factories that go through the public API with a fixed backend."""

    def stats(inputs, mode):
        return lambda: modality_stats(inputs["logits"], inputs["labels"], backend=backend)

    def ce(inputs, mode):
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    return weighted_multimodal_ce(inputs["logits"], inputs["labels"], inputs["weights"], backend=backend)
            return run

        def run_bwd():
            _zero_grads(inputs)
            weighted_multimodal_ce(inputs["logits"], inputs["labels"], inputs["weights"], backend=backend).backward()
        return run_bwd

    def step(inputs, mode):
        def run():
            _zero_grads(inputs)
            st = modality_stats(inputs["logits"], inputs["labels"], backend=backend)
            k = ogm_ge_coefficients(st.p_true_sum, 0.8, rule="min" if len(inputs["logits"]) > 2 else "pair")
            w = arl_coefficients(st.entropy_mean, st.abs_logit_mean, 4.0)
            # Weighted loss with the OGM-GE coefficients as per-modality weights (the ARL weights
            # would scale encoder gradients; computing them is what is measured).
            weighted_multimodal_ce(inputs["logits"], inputs["labels"], k, backend=backend).backward()
            return w
        return run

    return {"stats": stats, "ce": ce, "step": step}


def _eager_stats(inputs, mode):
    return lambda: modality_stats_reference(torch.stack([t.detach() for t in inputs["logits"]]), inputs["labels"])


def _eager_ce_fn(logits, labels, weights):
    x = torch.stack(logits)
    return weighted_ce_reference(x, labels, weights[:, None].expand(x.shape[0], x.shape[1]))


def _ce_provider(fn):
    def make(inputs, mode):
        if mode == "fwd":
            def run():
                with torch.no_grad():
                    return fn(inputs["logits"], inputs["labels"], inputs["weights"])
            return run

        def run_bwd():
            _zero_grads(inputs)
            fn(inputs["logits"], inputs["labels"], inputs["weights"]).backward()
        return run_bwd
    return make


def _released_stats(inputs, mode):
    return lambda: released_stats(inputs["logits"], inputs["labels"])


def _released_step(inputs, mode):
    logits, labels = inputs["logits"], inputs["labels"]

    def run():
        _zero_grads(inputs)
        ce_means, scores, ents, deps = released_stats(logits, labels)
        w = released_arl_weights(ents[:2], deps[:2], 4.0)
        s = [float(v.detach()) for v in scores]  # OGM-GE's python-side ratio (host syncs)
        k = [1 - torch.tanh(torch.tensor(0.8 * v / min(s))).item() if v / min(s) > 1 else 1.0 for v in s]
        released_weighted_ce(logits, labels, k).backward()
        return w
    return run


def _eager_step(inputs, mode):
    logits, labels = inputs["logits"], inputs["labels"]

    def run():
        _zero_grads(inputs)
        x = torch.stack(logits)
        st = modality_stats_reference(x.detach(), labels)
        k = ogm_ge_coefficients(st.p_true_sum, 0.8, rule="min" if len(logits) > 2 else "pair")
        w = arl_coefficients(st.entropy_mean, st.abs_logit_mean, 4.0)
        weighted_ce_reference(x, labels, k[:, None].expand(x.shape[0], x.shape[1])).backward()
        return w
    return run


def _compiled(make_eager):
    """``torch.compile`` of the eager provider's callable (compiled lazily on the warm-up call)."""

    def make(inputs, mode):
        return torch.compile(make_eager(inputs, mode))
    return make


def _providers(kind: str, eager, released, modes):
    fused = {b: _fused(b)[kind] for b in ("triton", "cpp", "compile")}
    # The dispatch ops' compile is the library's backend="compile" (what auto would run); the step's is
    # torch.compile of the whole eager step (a user's alternative, not a dispatch choice).
    compiled_eager = _compiled(eager) if kind == "step" else fused["compile"]
    return [
        Provider("eager", eager, baseline=True, reference=True, modes=modes),
        Provider("released", released, reference=True, modes=modes),
        Provider("compile", compiled_eager, available=_compile_ok, reference=True, modes=modes, heavy=True,
                 compiles=True),
        Provider("released_compile", _compiled(released), available=_compile_ok, reference=True, modes=modes,
                 heavy=True),
        Provider("triton", fused["triton"], available=needs_cuda, modes=modes),
        Provider("cpp", fused["cpp"], available=_cpp_ok, modes=modes),
    ]


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    """Largest ``|a - ref|`` over the reference's scale (at least 1): a relative error robust to zeros."""
    return float((a.double() - ref).abs().max() / ref.abs().max().clamp_min(1.0))


def _error(kind: str):
    """``error(inputs, provider, mode)``: the library call with ``backend=provider`` against float64 eager
    on the same inputs (statistics: every per-row output and batch sum; CE: the loss and, for
    "fwd_bwd", each modality's gradient)."""

    def error(inputs, provider, mode):
        xs = [t.detach() for t in inputs["logits"]]
        labels, w = inputs["labels"], inputs["weights"]
        x64 = torch.stack(xs).double()
        if kind == "stats":
            got = modality_stats(xs, labels, backend=provider)
            ref = modality_stats_reference(x64, labels)
            return max(_rel(g, r) for g, r in zip(got, ref))
        ref_x = [t.double().requires_grad_() for t in xs]
        ref_loss = weighted_ce_reference(torch.stack(ref_x), labels, w.double()[:, None].expand(len(xs), xs[0].shape[0]))
        if mode == "fwd":
            with torch.no_grad():
                return _rel(weighted_multimodal_ce(xs, labels, w, backend=provider), ref_loss.detach())
        leaves = [t.clone().requires_grad_() for t in xs]
        loss = weighted_multimodal_ce(leaves, labels, w, backend=provider)
        loss.backward()
        ref_loss.backward()
        return max([_rel(loss.detach(), ref_loss.detach())] + [_rel(a.grad, b.grad) for a, b in zip(leaves, ref_x)])

    return error


def _released_ce(inputs, mode):
    return _ce_provider(released_weighted_ce)(inputs, mode)


register_op(BenchOp(
    name="modality_stats",
    providers=_providers("stats", _eager_stats, _released_stats, ("fwd",)),
    make_inputs=make_inputs,
    model_bytes=stats_bytes,
    shapes=SHAPES,
    modes=("fwd",),
    description="per-modality lse/CE/entropy/p_true and batch sums (OGM-GE score, ARL H and D)",
    error=_error("stats"),
))

register_op(BenchOp(
    name="weighted_multimodal_ce",
    providers=_providers("ce", _ce_provider(_eager_ce_fn), _released_ce, ("fwd", "fwd_bwd")),
    make_inputs=make_inputs,
    model_bytes=ce_bytes,
    shapes=SHAPES,
    modes=("fwd", "fwd_bwd"),
    description="sum_m mean_b w_m CE(z_m, y); fwd_bwd includes the backward into new gradient buffers",
    error=_error("ce"),
))

register_op(BenchOp(
    name="ogm_arl_step",
    providers=_providers("step", _eager_step, _released_step, ("fwd_bwd",)),
    make_inputs=make_inputs,
    model_bytes=None,
    shapes={k: v for k, v in SHAPES.items() if k in ("realistic", "quick")},
    modes=("fwd_bwd",),
    description="stats + OGM-GE + ARL coefficients + weighted CE + backward (released: python loop + host syncs)",
))

