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
dropped) the averaged gradient is the single-process gradient of the global batch, also with missing
modalities: a loss that averages over the samples that *have* something (a modality, a pair) divides
its rank's sum by :func:`count_share` (the global count over the world size), not by its own count, so
the mean over ranks of the rank losses is the global masked mean (:func:`masked_batch_mean`).
Per-sample random draws of a method (combination sampling, PME noise) are drawn for the global batch
and sliced (:func:`rank_rows`), so the run generator advances as in one process. The logged loss and
coefficient traces are means over ranks. Tested with gloo on CPU over whole epochs
(``tests/mmbench/engine/test_distributed_epochs.py``). BatchNorm statistics of the encoders stay per
rank (as DDP without SyncBatchNorm): the process count enters the run key of a model with BatchNorm
encoders (:func:`key_world_size`); DMRNet's own PME BatchNorm uses :func:`global_batch_norm`.
A statistic over all pairs of a batch (OSMD's joint MMD) is computed on the global batch's rows,
gathered with a gradient (:func:`gather_global_rows`). The Triton PME kernel's noise (CUDA) cannot be
sliced, so DMRNet draws eager noise for the global batch under torchrun (one host read of the seed
per step).
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


def count_share(count: torch.Tensor) -> torch.Tensor:
    """The global count (summed over ranks, at least 1) divided by the world size; ``count.clamp_min(1)``
    on one process.

    A rank that divides its *sum* over its samples by this gives a loss whose mean over ranks is the
    global sum over the global count: averaging the rank gradients (:func:`average_gradients`) then
    gives the gradient of the masked mean over the global batch, whatever each rank's own count.
    """
    count = count.detach()
    if not active():
        return count.clamp_min(1.0)
    return global_sum(count).clamp_min(1.0) / dist.get_world_size()


def masked_batch_mean(values: torch.Tensor, weights: torch.Tensor, dim=None) -> torch.Tensor:
    """``sum(values * weights) / sum(weights)`` over the batch (along ``dim``, all of it when None),
    the denominator counted over the global batch (:func:`count_share`); 0 where nothing is present."""
    if dim is None:
        return (values * weights).sum() / count_share(weights.sum())
    return (values * weights).sum(dim) / count_share(weights.sum(dim))


def rank_rows(global_tensor: torch.Tensor) -> torch.Tensor:
    """This rank's rows of a tensor drawn for the whole global batch (dim 0 = ``world * B_rank``):
    the same contiguous part ``SplitTensors.iterate(shard=...)`` gives the rank; itself on one process."""
    if not active():
        return global_tensor
    return global_tensor.tensor_split(dist.get_world_size())[dist.get_rank()]


def global_rows(local_rows: int) -> int:
    """Rows of the global batch of which this rank holds ``local_rows`` (equal shards)."""
    return local_rows * (dist.get_world_size() if active() else 1)


def global_rand(shape, generator: torch.Generator) -> torch.Tensor:
    """``torch.rand(shape, generator=generator)`` for a rank's ``shape = (B_rank, ...)``, drawn for the
    whole global batch and sliced to this rank's rows: every rank's generator advances as one
    process's does, and the rows are the ones one process would give these samples."""
    shape = tuple(shape)
    return rank_rows(torch.rand((global_rows(shape[0]),) + shape[1:], generator=generator))


class _SumOverRanks(torch.autograd.Function):
    """``all_reduce(sum)`` with a gradient: the forward sums over ranks, the backward too (every rank's
    loss depends on every rank's input), as in ``torch.nn.SyncBatchNorm``."""

    @staticmethod
    def forward(ctx, x):
        out = x.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class _GatherRows(torch.autograd.Function):
    """``all_gather`` along dim 0 with a gradient: ``[B_rank, F]`` -> ``[world * B_rank, F]`` in rank order.

    Backward: the gradient of the gathered tensor is summed over ranks (``all_reduce``) and this
    rank's rows are kept, i.e. a reduce-scatter (sum) -- what ``torch.distributed.nn.functional.
    all_gather`` does. Not that function itself: it is deprecated in torch 2.14 (a FutureWarning on
    every call) and its successor lives in the private ``torch.distributed._functional_collectives``;
    an ``all_reduce`` works on gloo and NCCL alike. Every rank must call this with the same shape
    (the engine's shards are equal) and, in backward, in the same order (one call per loss here).
    """

    @staticmethod
    def forward(ctx, x):
        x = x.contiguous()
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts, 0)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad.tensor_split(dist.get_world_size())[dist.get_rank()]


def gather_global_rows(*tensors: torch.Tensor):
    """The global batch's rows of each rank tensor ``[B_rank, ...]`` -> ``[world * B_rank, ...]``, in the
    global batch's order (rank 0's rows first: the shards are contiguous, ``SplitTensors.iterate``),
    in one collective and with a gradient to this rank's rows; the tensors themselves on one process.

    For a statistic ``J`` that couples every pair of samples of a batch (a kernel MMD): each rank
    computes ``J`` of the gathered rows, the same value on every rank, and adds it to its loss once.
    Why the averaged gradient is then one process's gradient of ``J`` on the global batch: write
    ``X = [x_0; ...; x_{W-1}]`` for the gathered rows, ``x_r`` computed on rank r from its replica of
    the parameters ``theta`` (equal on every rank). One process's gradient is
    ``sum_r dJ/dx_r . dx_r/dtheta``. Rank r's autograd reaches ``theta`` only through its own ``x_r``;
    the backward of the gather hands it ``sum_s dJ_s/dx_r = W dJ/dx_r`` (every rank s computed the
    same ``J_s = J`` and sends its gradient for rank r's rows to rank r), so rank r's parameter
    gradient is ``W dJ/dx_r . dx_r/dtheta``, and :func:`average_gradients` divides the sum over ranks by
    ``W``: ``sum_r dJ/dx_r . dx_r/dtheta``, exactly one process's. Said generally: the gradients of
    the rank losses summed by the gather's backward and averaged by :func:`average_gradients` are the
    gradient of the mean over ranks of the rank losses, and ``J`` enters that mean once, as it enters
    one process's loss once. (Dividing ``J`` by ``W`` instead would give ``J / W`` in the mean.)

    The tensors are flattened to ``[B_rank, -1]``, gathered as one ``[B_rank, sum F]`` tensor of their
    widest floating dtype and split back (each to its own shape and dtype).
    """
    if not active():
        return list(tensors)
    rows, dtype = tensors[0].shape[0], torch.float32
    for t in tensors:
        if t.is_floating_point():
            dtype = torch.promote_types(dtype, t.dtype)
    flat = [t.reshape(rows, -1).to(dtype) for t in tensors]
    gathered = _GatherRows.apply(torch.cat(flat, 1))
    out, col = [], 0
    for t, f in zip(tensors, flat):
        width = f.shape[1]
        out.append(gathered[:, col : col + width].reshape((-1,) + tuple(t.shape[1:])).to(t.dtype))
        col += width
    return out


def global_batch_norm(x: torch.Tensor, bn: torch.nn.BatchNorm1d) -> torch.Tensor:
    """``bn(x)`` for ``x`` ``[B, F]`` with the statistics of the global batch in training (the
    running statistics updated as one process would); plain ``bn(x)`` on one process or in eval mode.

    ``torch.nn.SyncBatchNorm`` does the same on GPUs only; this works on gloo (CPU) too.
    """
    if not active() or not bn.training:
        return bn(x)
    n = float(x.shape[0] * dist.get_world_size())
    mean = _SumOverRanks.apply(x.sum(0)) / n
    var = _SumOverRanks.apply(((x - mean) ** 2).sum(0)) / n  # biased, what the normalisation uses
    if bn.track_running_stats:
        with torch.no_grad():
            m = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked + 1)
            bn.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            bn.running_var.mul_(1 - m).add_(var.detach() * (n / max(n - 1.0, 1.0)), alpha=m)
            bn.num_batches_tracked += 1
    out = (x - mean) / torch.sqrt(var + bn.eps)
    return out * bn.weight + bn.bias if bn.affine else out


def key_world_size(train: dict) -> int:
    """The process count to put in a run's identity: the torchrun world size when it can change the
    result (encoders with per-rank BatchNorm statistics: ``encoder=resnet18``), else 1 (left out)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world if world > 1 and train.get("encoder") == "resnet18" else 1


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
