"""A device-independent memory measure of a training step.

On CUDA the engine reports ``torch.cuda.max_memory_allocated``. On CPU there is no allocator
counter, so it reports the bytes of tensors that autograd saved for backward during the step
(activations kept alive for the gradient), counted once per storage. This is the part of a step's
memory that methods change (extra forward passes, retained graphs, teacher activations).
"""
from __future__ import annotations

import contextlib

import torch


class SavedTensorMeter:
    """Counts unique bytes saved by autograd inside ``with meter.measure():`` blocks; keeps the max."""

    def __init__(self):
        self.peak_bytes = 0

    @contextlib.contextmanager
    def measure(self):
        seen = {}

        def pack(t: torch.Tensor):
            try:
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
            except RuntimeError:  # tensors without storage (e.g. some views of wrapped tensors)
                pass
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            yield
        self.peak_bytes = max(self.peak_bytes, sum(seen.values()))
