"""One run across several processes (``torchrun --nproc-per-node N -m mmbench run ...``).

Data parallel by explicit gradient averaging, not by wrapping the model in
``torch.nn.parallel.DistributedDataParallel``: DDP's reducer is armed by the *wrapper's* forward and
fires its bucketed all-reduce during ``backward``, while the methods call encoders and heads
directly, run several backward passes per step (MLA, ReconBoost, Greedy) or take gradients with
``torch.autograd.grad`` (MMPareto). Here every rank runs the same step on its shard of the global
batch and :func:`average_gradients` all-reduces the ``.grad`` fields at the end of each
``ctx.backward`` (one flattened collective), so the methods' ``after_backward`` edits (OGM-GE, AGM's
clip, Greedy, MLA's projection) see the all-reduced gradient of the global batch. Batch statistics
that steer a method (OGM-GE's and PMR's scores, AGM's responses, through ``masked_mean``; ARL's
entropies and logit magnitudes) are averaged over ranks with :func:`global_mean` before use. The
price against DDP: the all-reduce does not overlap the backward pass.

Exactness: with equal shards (``batch_size`` divisible by the world size, the last partial batch
dropped) and complete modalities, the averaged gradient is the single-process gradient of the global
batch (tested with gloo on CPU). BatchNorm statistics stay per rank (as DDP without SyncBatchNorm).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """``rank`` of ``world_size`` processes; ``local_rank`` picks the GPU on a node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_distributed() -> bool:
    """Whether torchrun (or another launcher setting ``WORLD_SIZE``) started more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def info() -> DistInfo:
    if not active():
        return DistInfo()
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def init_from_env(device: str = "cpu") -> DistInfo:
    """Join the process group torchrun describes (NCCL for CUDA runs, gloo on CPU); no-op for one process."""
    if launched_distributed() and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if str(device).startswith("cuda") else "gloo")
    return info()


def shard_device(device: str) -> str:
    """``cuda`` -> ``cuda:<local rank>`` under torchrun; any other device unchanged."""
    return f"cuda:{info().local_rank}" if active() and device == "cuda" else device


def check_batch_size(batch_size: int) -> None:
    """Each rank takes ``batch_size / world`` samples of every global batch: it must divide."""
    world = info().world_size
    if batch_size % world:
        raise ValueError(f"batch_size={batch_size} is not divisible by the {world} processes of this run; "
                         f"choose a multiple of {world}")


def global_mean(value: torch.Tensor) -> torch.Tensor:
    """Mean of a (detached) statistic over ranks; ``value`` itself on one process."""
    if not active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()


def global_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum of a (detached) statistic over ranks; ``value`` itself on one process."""
    if not active():
        return value
    out = value.detach().clone()
    dist.all_reduce(out)
    return out


def global_logsumexp(value: torch.Tensor) -> torch.Tensor:
    """``log(sum over ranks of exp(value))`` element-wise, without overflow or underflow (shift by the
    global max); ``value`` itself on one process. ``-inf`` entries contribute nothing."""
    if not active():
        return value
    peak = value.detach().clone()
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    shift = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = (value.detach() - shift).exp()
    dist.all_reduce(total)
    return total.log() + shift


@torch.no_grad()
def average_gradients(params: Iterable[torch.nn.Parameter]) -> None:
    """All-reduce (mean) the ``.grad`` of ``params`` in one flattened collective.

    A parameter whose gradient is ``None`` on every rank stays ``None`` (the optimizer then skips it,
    as in one process); one with a gradient on some rank only gets zeros on the others first.
    """
    if not active():
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    has = torch.tensor([p.grad is not None for p in params], dtype=torch.float32, device=device)
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    live = [p for p, h in zip(params, has.tolist()) if h > 0]
    for p in live:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    if not live:
        return
    flat = torch.cat([p.grad.reshape(-1).float() for p in live])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in live:
        n = p.grad.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


@torch.no_grad()
def average_tensors(tensors):
    """Mean over ranks of each tensor of a list (``None`` entries stay ``None``; the same on every
    rank, e.g. ``torch.autograd.grad(..., allow_unused=True)``), in one flattened collective."""
    tensors = list(tensors)
    if not active():
        return tensors
    live = [t for t in tensors if t is not None]
    if not live:
        return tensors
    flat = torch.cat([t.reshape(-1).float() for t in live])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    out, offset = [], 0
    for t in tensors:
        if t is None:
            out.append(None)
            continue
        out.append(flat[offset : offset + t.numel()].view_as(t).to(t.dtype))
        offset += t.numel()
    return out


def broadcast_flag(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (so all ranks take the same branch)."""
    if not active():
        return flag
    box = [bool(flag)]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


def barrier() -> None:
    if active():
        dist.barrier()


def shutdown() -> None:
    """Leave the process group (end of a torchrun run)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
