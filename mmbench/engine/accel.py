"""The GPU path of a run: device check, mixed precision, channels-last, step timing, peak memory.

Everything here also works on a CPU (bf16 autocast, wall-clock timing), so it is tested there.
"""
from __future__ import annotations

import contextlib
import time
from typing import List, Optional

import torch
from torch import nn

AMP_MODES = ("off", "bf16", "fp16")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """``torch.device(name)``, with a clear error for a CUDA device this machine does not have."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r} is not a torch device (cpu, cuda, cuda:<i>): {err}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device={name!r} but no CUDA GPU is visible to torch "
                             "(torch.cuda.is_available() is False); use device=cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device={name!r} but only {torch.cuda.device_count()} CUDA device(s) are visible")
    return device


def check_amp(amp: str) -> str:
    if amp not in AMP_MODES:
        raise ValueError(f"amp={amp!r}: expected one of {', '.join(AMP_MODES)}")
    return amp


def autocast(device: torch.device, amp: str):
    """The autocast context of a training step (``amp="off"``: none)."""
    if check_amp(amp) == "off":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AMP_DTYPES[amp])


def grad_scaler(device: torch.device, amp: str) -> Optional[torch.amp.GradScaler]:
    """A gradient scaler for fp16 (its 5-bit exponent underflows small gradients); ``None`` otherwise."""
    return torch.amp.GradScaler(device.type) if check_amp(amp) == "fp16" else None


def use_channels_last(module: nn.Module) -> nn.Module:
    """Convert 4-D weights to channels-last and make image encoders feed channels-last inputs.

    On tensor-core GPUs cuDNN's convolutions run in NHWC; a NCHW input would be transposed at every
    layer. Encoders read the flag ``channels_last`` (see ``mmbench.models.resnet``).
    """
    for m in module.modules():
        if hasattr(m, "channels_last"):
            m.channels_last = True
    return module.to(memory_format=torch.channels_last)


class StepTimer:
    """Durations of training steps: CUDA events on a GPU (read once per epoch: no per-step host
    sync), ``time.perf_counter`` (or the process's CPU time, ``clock="cpu"``) on a CPU. Steps are
    kept in two groups, ``plain`` and ``hooked`` (the CPU memory-measured steps, slowed by the
    saved-tensor hooks)."""

    def __init__(self, device: torch.device, clock: str = "wall"):
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock={clock!r}: expected wall or cpu")
        self.cuda = device.type == "cuda"
        # "cpu": the process's CPU time (on a CPU device only), robust to other jobs on a shared machine.
        self._now = time.process_time if clock == "cpu" else time.perf_counter
        self.device = device
        self._pending: List[tuple] = []
        self.seconds = {"plain": [], "hooked": []}
        self._start = None

    def start(self) -> None:
        if self.cuda:
            self._start = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._start = self._now()

    def stop(self, group: str = "plain") -> None:
        if self.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._pending.append((group, self._start, end))
        else:
            self.seconds[group].append(self._now() - self._start)

    def flush(self) -> None:
        """Read the recorded CUDA events (one synchronisation for all pending steps)."""
        if self._pending:
            torch.cuda.synchronize(self.device)
            for group, start, end in self._pending:
                self.seconds[group].append(start.elapsed_time(end) / 1000.0)
            self._pending.clear()


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """The CUDA caching allocator's peak of allocated bytes since the last reset, in MiB."""
    return torch.cuda.max_memory_allocated(device) / 2**20
