"""Issue 9 item 11: a full training step of every method that uses the kernels makes no host sync on CUDA.

Each method trains one epoch on the toy data on the GPU; from the third step on, ``training_step``
(forward, kernels, coefficients, backward, optimizer step) runs under
``torch.cuda.set_sync_debug_mode("error")``, which raises on any device-to-host copy or synchronising
call. Runs in ``scripts/gpu_check.sh``; skipped without a GPU.
"""
import pytest
import torch
from helpers import quick_fit, toy_dataset

from mmbench.methods import get_method

#: Methods whose training step calls the fused kernels (modality stats / weighted CE / coefficients,
#: DGL head, MAD, PME).
KERNEL_METHODS = ["arl", "dgl", "dmrnet", "mmanet", "ogm-ge", "agm", "pmr", "mla"]


@pytest.mark.gpu
@pytest.mark.parametrize("name", KERNEL_METHODS)
def test_gpu_training_step_has_no_host_sync(name, monkeypatch):
    cls = get_method(name)
    real_step = cls.training_step
    checked = []

    def guarded(self, batch, ctx):
        if ctx.step_count < 2:  # warm-up: compilation, extension load, lazy buffers
            return real_step(self, batch, ctx)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            return real_step(self, batch, ctx)
        finally:
            torch.cuda.set_sync_debug_mode(0)
            checked.append(ctx.step_count)

    monkeypatch.setattr(cls, "training_step", guarded)
    quick_fit(name, toy_dataset(three=name == "mmanet"), epochs=1, device="cuda")
    assert checked, "no guarded step ran"
