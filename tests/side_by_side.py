"""One training step of a method against a transcription of its released code, on tiny inputs.

``method_step`` runs the method's own ``training_step`` through a real :class:`TrainContext` with plain
SGD; ``reference_step`` applies the same SGD to a deep copy of the model with the loss a test's
transcription computes. ``max_param_diff`` is the number quoted in each method's docstring.
"""
from __future__ import annotations

import copy
from typing import Callable

import torch

from mmbench.batching import SplitTensors
from mmbench.engine.context import TrainContext

LR = 0.1


def method_step(method, data, batch, epoch: int = 0) -> None:
    opt = torch.optim.SGD([p for p in method.modules().parameters() if p.requires_grad], lr=LR)
    ctx = TrainContext(method, method.info, opt, SplitTensors(data, "train"), SplitTensors(data, "val"),
                       torch.Generator().manual_seed(0), None, 64, None)
    ctx.epoch = epoch
    method.on_fit_start(ctx)
    method.on_epoch_start(ctx)
    method.training_step(batch, ctx)


def reference_step(model, loss_fn: Callable[[torch.nn.Module], torch.Tensor]):
    """A copy of ``model`` after one SGD step on ``loss_fn(copy)``."""
    ref = copy.deepcopy(model)
    opt = torch.optim.SGD(ref.parameters(), lr=LR)
    opt.zero_grad()
    loss_fn(ref).backward()
    opt.step()
    return ref


def max_param_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    pa, pb = dict(a.named_parameters()), dict(b.named_parameters())
    assert pa.keys() == pb.keys()
    return max(float((pa[k] - pb[k]).detach().abs().max()) for k in pa)
