"""Step time of every method at paper scale: ``python -m mmbench steps --scale paper``.

CREMA-D's shapes as the audio-visual papers train them: two from-scratch ResNet-18s (a 1-channel
spectrogram ``[1, 257, 188]`` and ONE RGB frame ``[1, 3, 224, 224]``, CREMA-D's ``fps=1``), concat
fusion, 6 classes, batch 64 on a GPU (a smaller, stated batch on a CPU), random tensors. As in
``python -m mmbench steps`` the methods are interleaved in rounds: in each round joint training
and every method are timed in turn (odd rounds in reverse order, joint last), and a method's cost
is the median over rounds of its step time over joint's *in the same round*.

A method is timed directly, without the engine's epochs and evaluations (which at these shapes
would cost far more than the steps): it is built, its ``on_fit_start`` / ``on_epoch_start`` hooks
run (past every warm-up: the last epoch of a 100-epoch run, where ARL, AGM ... are active), then
``warmup`` untimed steps and ``steps`` timed ones on fixed batches. Time: CUDA events on a GPU;
on a CPU the process's CPU time by default (``clock``: a shared machine's load moves wall time). Memory: the CUDA allocator's peak on a GPU; on a CPU the bytes autograd
saves during one step (as the leaderboard). Methods with a ``backend`` hyper-parameter are timed on
the kernel path (``backend="auto"``: what :mod:`kernels.dispatch` resolves it to on the device -- the
C++ extension on this project's reference CPU, Triton on CUDA) and on the eager path, whenever the two
differ. Teachers are untrained.
"""
from __future__ import annotations

import dataclasses
import statistics
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd
import torch
from tabulate import tabulate

from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.data.synthetic_av import make_synthetic_av
from mmbench.engine.accel import StepTimer, autocast, peak_memory_mb, reset_peak_memory, resolve_device
from mmbench.engine.context import TrainContext
from mmbench.engine.memory import SavedTensorMeter
from mmbench.engine.trainer import build_method, build_optimizer
from mmbench.environment import environment, machine_line
from mmbench.methods import get_method
from mmbench.methods.base import RunInfo
from mmbench.report.tables import BASELINE_METHOD
from mmbench.steptime import write_table_files
from mmbench.runner import seed_everything

COLUMNS = ["method", "path", "round", "batch", "step_ms", "joint_step_ms", "ratio", "samples_per_s", "peak_mb",
           "mem_kind", "device"]
PAPER_EPOCHS = 100  # the papers' schedule: hooks see the last epoch, past every warm-up window


@dataclasses.dataclass
class PaperScale:
    """What one paper-scale timing uses (defaults: the papers on a GPU)."""

    batch: int = 64
    frames: int = 1
    rounds: int = 3
    warmup: int = 1
    steps: int = 3
    device: str = "cuda"
    amp: str = "off"
    channels_last: bool = False
    threads: int = 1
    # CPU only: "cpu" times a step by the process's CPU time, "wall" by the wall clock. On a shared
    # machine the wall time of a one-thread step measures the scheduler (it moved 2-3x between
    # rounds here); the CPU time measures the step's own work.
    clock: str = "wall"


def cpu_defaults() -> PaperScale:
    """A CPU budget: batch 4, one warm-up and two timed steps, four rounds, one thread, CPU-time clock."""
    return PaperScale(batch=4, rounds=4, warmup=1, steps=2, device="cpu", clock="cpu")


def _setup(method: str, scale: PaperScale, backend: Optional[str]):
    """``(method, ctx, batches)`` for one timing: the model on ``scale.device``, fixed batches."""
    data = make_synthetic_av(n=max(18, 2 * scale.batch + 6), frames=scale.frames)
    n_train = scale.batch * 2
    order = np.arange(len(data.labels))
    # Train: 2 batches (steps alternate between them); val / test: the rest (MSLR, MMANet read val).
    data = dataclasses.replace(data, split={"train": order[:n_train], "val": order[n_train:], "test": order[n_train:]})
    cls = get_method(method)
    cfg = {**TRAIN_DEFAULTS, **cls.train_overrides, "encoder": "resnet18", "feature_dim": 512,
           "device": scale.device, "batch_size": scale.batch, "eval_batch_size": scale.batch, "epochs": PAPER_EPOCHS,
           "lr": 1e-3, "amp": scale.amp, "channels_last": scale.channels_last}
    hp = dict(cls.hparams)
    if backend is not None:
        hp["backend"] = backend
    info = RunInfo(data.name, tuple(data.specs), data.num_classes, n_train, 0, PAPER_EPOCHS, scale.batch)
    device = resolve_device(scale.device)
    seed_everything(0)
    built = build_method(cls, data, cfg, hp, info)

    def teacher(name: str, t_hp: Dict) -> torch.nn.Module:  # untrained: same cost as a trained one
        t_cls = get_method(name)
        return build_method(t_cls, data, {**cfg, **t_cls.train_overrides}, {**t_cls.hparams, **t_hp}, info)

    tr, va = SplitTensors(data, "train", device), SplitTensors(data, "val", device)
    ctx = TrainContext(built, info, build_optimizer(built, cfg), tr, va, torch.Generator().manual_seed(0),
                       None, scale.batch, teacher)
    ctx.scaler = torch.amp.GradScaler(device.type) if scale.amp == "fp16" else None
    ctx.epoch = PAPER_EPOCHS - 1
    ctx.train_mask = torch.ones(len(tr), info.num_modalities, device=device)
    built.on_fit_start(ctx)
    built.modules().train()
    built.on_epoch_start(ctx)
    batches = list(tr.iterate(scale.batch, ctx.train_mask))
    return built, ctx, batches, device


def time_steps(method: str, scale: PaperScale, backend: Optional[str] = None) -> Dict[str, float]:
    """Median step ms, samples/s and peak memory of ``method`` at paper scale."""
    threads = torch.get_num_threads()
    torch.set_num_threads(scale.threads)
    try:
        built, ctx, batches, device = _setup(method, scale, backend)
        timer, meter = StepTimer(device, clock=scale.clock if device.type == "cpu" else "wall"), SavedTensorMeter()
        for i in range(scale.warmup + scale.steps):
            batch = batches[i % len(batches)]
            if i == scale.warmup:
                reset_peak_memory(device)
            timed = i >= scale.warmup
            if timed:
                timer.start()
            with autocast(device, scale.amp):
                if device.type == "cpu" and i == 0:
                    with meter.measure():  # memory from an untimed step (the hooks cost time)
                        built.training_step(batch, ctx)
                else:
                    built.training_step(batch, ctx)
            if timed:
                timer.stop()
            ctx.step_count += 1
        timer.flush()
        ms = 1000 * statistics.median(timer.seconds["plain"])
        cuda = device.type == "cuda"
        peak = peak_memory_mb(device) if cuda else meter.peak_bytes / 2**20
        return {"step_ms": ms, "samples_per_s": 1000 * scale.batch / ms, "peak_mb": peak,
                "mem_kind": "cuda_max_allocated" if cuda else "autograd_saved_per_step"}
    finally:
        torch.set_num_threads(threads)


def profile_step(method: str, scale: PaperScale, backend: Optional[str] = None, rows: int = 12) -> str:
    """``torch.profiler`` table (top ``rows`` ops by self time) of one step after a warm-up step:
    where a method's extra time over joint training goes."""
    from torch.profiler import ProfilerActivity, profile

    threads = torch.get_num_threads()
    torch.set_num_threads(scale.threads)
    try:
        built, ctx, batches, device = _setup(method, scale, backend)
        with autocast(device, scale.amp):
            built.training_step(batches[0], ctx)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof, autocast(device, scale.amp):
            built.training_step(batches[1 % len(batches)], ctx)
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        return prof.key_averages().table(sort_by=key, row_limit=rows)
    finally:
        torch.set_num_threads(threads)


def _auto_providers(device: str) -> List[str]:
    """The providers ``backend="auto"`` resolves to on ``device`` (float32), without building anything."""
    from kernels.dispatch import resolved_providers

    return sorted(set(resolved_providers("auto", device).values()))


def paths_of(method: str, device: str) -> List[Optional[str]]:
    """Backends to time: kernel (auto) and eager for methods with kernels, when auto is not eager; else one."""
    if "backend" not in get_method(method).hparams:
        return [None]
    return ["auto", "eager"] if _auto_providers(device) != ["eager"] else ["eager"]


def path_name(backend: Optional[str], device: str) -> str:
    if backend is None:
        return "-"
    if backend == "auto":
        return "auto (" + "+".join(_auto_providers(device)) + ")"
    return backend


def measure(methods: Sequence[str], scale: PaperScale,
            progress: Optional[Callable[[str], None]] = None) -> pd.DataFrame:
    """One row per (method, path, round): median step ms, joint's in that round, ratio, samples/s, peak memory."""
    order = [BASELINE_METHOD] + [m for m in methods if m != BASELINE_METHOD]
    device_name = torch.cuda.get_device_name(resolve_device(scale.device)) if scale.device.startswith("cuda") else "cpu"
    rows: List[Dict] = []
    time_steps(BASELINE_METHOD, scale)  # process warm-up (allocator, oneDNN / cuDNN plans): discarded
    for r in range(scale.rounds):
        # Odd rounds run the order backwards (joint last): a drift of the machine, or a cost of a
        # position in the round, then hits joint from both ends instead of always from the start.
        round_rows = []
        for method in order if r % 2 == 0 else order[::-1]:
            for backend in paths_of(method, scale.device):
                out = time_steps(method, scale, backend)
                round_rows.append({"method": method, "path": path_name(backend, scale.device), "round": r,
                                   "batch": scale.batch, **out, "device": device_name})
                if progress:
                    progress(f"round {r + 1}/{scale.rounds} {method} [{path_name(backend, scale.device)}]: "
                             f"{out['step_ms']:.1f} ms")
        base = next(row["step_ms"] for row in round_rows if row["method"] == BASELINE_METHOD)
        rows += [{**row, "joint_step_ms": base, "ratio": row["step_ms"] / base} for row in round_rows]
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(df: pd.DataFrame, scale: PaperScale, machine: str) -> str:
    """``STEPTIME-paper.md``: per method and path, median step, ratio to joint (median, range), samples/s, peak."""
    device = df["device"].iloc[0] if not df.empty else scale.device
    lines = [
        "# Step time of each method at paper scale (CREMA-D shapes)",
        "",
        f"`python -m mmbench steps --scale paper`: two from-scratch ResNet-18s, spectrogram 1x257x188 and "
        f"{scale.frames} RGB frame(s) 3x224x224 (CREMA-D: fps=1, one frame), concat fusion, 6 classes, random "
        f"tensors; batch {scale.batch}, {scale.threads} thread(s), amp={scale.amp}, "
        f"channels_last={scale.channels_last}, "
        f"step clock: {clock_text(scale, device)}. "
        f"{scale.rounds} rounds; in each, joint training and every method (odd rounds in reverse order): "
        f"{scale.warmup} untimed and "
        f"{scale.steps} timed steps (median). Ratio = the method's step over joint's in the same round: median "
        f"over rounds and range. Methods' epoch hooks see epoch {PAPER_EPOCHS} of {PAPER_EPOCHS} (past every warm-up). "
        f"Device: **{device}**. Machine: {machine}.",
        "",
    ]
    rows = []
    for (method, path), g in df.groupby(["method", "path"], sort=False):
        rows.append([method, path, f"{statistics.median(g.step_ms):.1f}", f"{statistics.median(g.ratio):.2f}x",
                     f"{g.ratio.min():.2f}-{g.ratio.max():.2f}", f"{statistics.median(g.samples_per_s):.1f}",
                     f"{g.peak_mb.max():.0f} ({g.mem_kind.iloc[0]})"])
    rows.sort(key=lambda r: float(r[3][:-1]))
    lines += [tabulate(rows, headers=["method", "path", "step ms", "vs joint", "range over rounds", "samples/s",
                                      "peak MB"], tablefmt="github"), ""]
    return "\n".join(lines)


def clock_text(scale: PaperScale, device: str) -> str:
    if device != "cpu":
        return "CUDA events"
    if scale.clock == "cpu":
        return ("process CPU time (the machine is shared by other jobs, so wall time would measure the scheduler; "
                "with one thread the CPU time is the step's own work)")
    return "wall clock"


def write(df: pd.DataFrame, out: str, scale: PaperScale) -> Dict[str, Path]:
    """Write ``STEPTIME-paper.md`` and ``steptime-paper.csv`` into ``out`` (atomically)."""
    return write_table_files(out, "STEPTIME-paper", "steptime-paper", markdown(df, scale, machine_line(environment())), df)
