"""Benchmark: DMRNet PME reparameterised sample + KL (``docs/methods.md`` §3, §6.4).

Providers:

* ``eager`` (baseline): ``torch.randn`` (global generator, as in the released code) + the formula;
  autograd stores eps and several temporaries.
* ``compile``: ``torch.compile`` of the same (CUDA only).
* ``triton``: :func:`kernels.pme.pme_sample_kl`, one forward launch, one backward launch that
  regenerates eps from the device-side seed (nothing of size ``[B, ...]`` saved besides mu, logvar).

Memory-bound elementwise op: GB/s from :func:`model_bytes`. Providers return the KL in both modes:
``z`` differs between providers by design (different random generators), the KL does not.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Dict

import torch

from kernels.benchmark.registry import BenchOp, Provider, lazily_compiled, needs_cuda, register_op
from kernels.pme import pme_reference, pme_sample_kl


def make_inputs(shape: Dict[str, Any], device, dtype) -> Dict[str, Any]:
    """``shape = {"B", "feat": (...)}``: ``mu, logvar [B, *feat]``, upstream gradient of z, device seed."""
    g = torch.Generator().manual_seed(0)
    full = (shape["B"], *shape["feat"])
    mu = torch.randn(full, generator=g)
    logvar = 0.1 * torch.randn(full, generator=g)
    return {
        "mu": mu.to(device, dtype).requires_grad_(),
        "logvar": logvar.to(device, dtype).requires_grad_(),
        "grad_z": torch.randn(full, generator=g).to(device, dtype),
        "seed": torch.tensor([1234], device=device),
    }


def _eager(mu, logvar, seed):
    return pme_reference(mu, logvar, torch.randn_like(mu))




def _triton(mu, logvar, seed):
    return pme_sample_kl(mu, logvar, seed, training=True, backend="triton")


def _provider(fn: Callable) -> Callable[[Dict[str, Any], str], Callable[[], Any]]:
    def make(inputs: Dict[str, Any], mode: str) -> Callable[[], Any]:
        mu, logvar, grad_z, seed = inputs["mu"], inputs["logvar"], inputs["grad_z"], inputs["seed"]
        one = torch.ones((), device=mu.device, dtype=mu.dtype)
        if mode == "fwd":
            def fwd():
                with torch.no_grad():
                    return fn(mu, logvar, seed)[1]
            return fwd

        def fwd_bwd():
            mu.grad = logvar.grad = None
            z, kl = fn(mu, logvar, seed)
            torch.autograd.backward([z, kl], [grad_z, one])
            return kl
        return fwd_bwd

    return make


def model_bytes(shape: Dict[str, Any], mode: str) -> int:
    """fp32 minimum: forward reads mu, logvar and writes z; backward reads mu, logvar, dz, writes dmu, dlogvar."""
    n = shape["B"] * math.prod(shape["feat"])
    return 4 * n * (3 if mode == "fwd" else 8)


register_op(BenchOp(
    name="pme_sample_kl",
    providers=[
        Provider("eager", _provider(_eager), baseline=True, reference=True),
        Provider("compile", _provider(lazily_compiled(_eager)), available=needs_cuda, reference=True),
        Provider("triton", _provider(_triton), available=needs_cuda),
    ],
    make_inputs=make_inputs,
    model_bytes=model_bytes,
    shapes={
        # AV head [64, 1024]; CASIA-SURF layer4 [64, 512, 4, 4]; NYUv2 context [8, 512, 15, 20]
        "realistic": [{"B": 64, "feat": (1024,)}, {"B": 64, "feat": (512, 4, 4)}, {"B": 8, "feat": (512, 15, 20)}],
        "sweep": [{"B": b, "feat": (512, 16, 16)} for b in (16, 64, 256)],
        "cpu_sweep": [{"B": 64, "feat": (1024,)}, {"B": 64, "feat": (512, 4, 4)}],
        "quick": [{"B": 64, "feat": (512, 4, 4)}],
    },
    grad_to_none=("mu", "logvar"),
    description="DMRNet PME: z = mu + eps * exp(logvar / 2) and KL, eps regenerated in backward",
))
