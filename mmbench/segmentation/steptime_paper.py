"""Step time of every segmentation method at NYUv2 paper scale: ``python -m mmbench steps --scale paper --task segmentation``.

The network the released segmentation code trains on NYUv2 (ESANet: two ResNet-34 branches with
NonBottleneck1D blocks, decoder widths 512 / 256 / 128, 40 classes) on 480 x 640 RGB-D images, random
tensors, the engine's optimiser (SGD, momentum 0.9). As the classification paper-scale timing
(:mod:`mmbench.steptime_paper`), methods are interleaved in rounds (odd rounds in reverse order, joint
last) and a method's cost is the median over rounds of its step time over joint's *in the same round*;
on a CPU a step is timed by the process's CPU time (one thread; a shared machine's load moves wall
time), on a GPU by CUDA events.

A step is what :func:`mmbench.segmentation.train.fit_and_test` does per batch: the method's ``loss`` on
a batch with every modality present, backward, the method's gradient clipping if it has one, optimiser
step. Methods with epoch-dependent parts (DMRNet's HCR, ShaSpec's warm-up) see the last epoch of
ESANet's 500 through ``on_epoch_start``: past every warm-up.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pandas as pd
import torch
from tabulate import tabulate

from mmbench.engine.accel import resolve_device
from mmbench.environment import environment, machine_line
from mmbench.segmentation.methods import SEGMENTATION_METHODS, get_segmentation_method
from mmbench.segmentation.settings import SEGMENTATION_DEFAULTS
from mmbench.steptime import write_table_files

NYUV2_CLASSES = 40
BASELINE = "joint"
COLUMNS = ["method", "round", "batch", "step_ms", "joint_step_ms", "ratio", "samples_per_s", "device"]


@dataclasses.dataclass
class SegmentationPaperScale:
    """What one timing uses (defaults: ESANet's NYUv2 batch 8 on a GPU; :func:`cpu_defaults` on a CPU)."""

    height: int = 480
    width: int = 640
    batch: int = 8
    rounds: int = 3
    warmup: int = 1
    steps: int = 3
    device: str = "cuda"
    threads: int = 1


def cpu_defaults() -> SegmentationPaperScale:
    """A CPU budget: batch 2, one warm-up and one timed step, two rounds, one thread (a step is seconds)."""
    return SegmentationPaperScale(batch=2, rounds=2, warmup=1, steps=1, device="cpu")


def build(method: str, device: torch.device):
    """The method at paper size (the released NYUv2 network), class weights all 1 (their cost is the same)."""
    cls = get_segmentation_method(method)
    train = dict(SEGMENTATION_DEFAULTS)
    m = cls(NYUV2_CLASSES, train, dict(cls.hparams), torch.ones(NYUV2_CLASSES))
    if cls.teacher_method is not None and m.needs_teacher():
        # an untrained teacher of the same size: its forward pass costs what a trained one's does
        t_cls = get_segmentation_method(cls.teacher_method)
        m.set_teacher(t_cls(NYUV2_CLASSES, train, dict(t_cls.hparams), None))
    if hasattr(m, "select_weak"):  # MMANet's MAR needs its mined combination; any one costs the same
        m.select_weak()
    return m.to(device), train


def time_steps(method: str, scale: SegmentationPaperScale) -> Dict[str, float]:
    """``{"step_ms", "samples_per_s"}``: the median of ``scale.steps`` timed steps after ``scale.warmup``."""
    device = resolve_device(scale.device)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(scale.threads)
    try:
        torch.manual_seed(0)
        m, train = build(method, device)
        m.on_epoch_start(train["epochs"] - 1, train["epochs"])  # the last epoch: past every warm-up
        clip = m.max_grad_norm()
        params = m.modules().parameters()
        opt = torch.optim.SGD(params, lr=train["lr"], momentum=train["momentum"], weight_decay=train["weight_decay"])
        g = torch.Generator().manual_seed(0)
        B, H, W = scale.batch, scale.height, scale.width
        rgb = torch.randn(B, 3, H, W, generator=g).to(device)
        depth = torch.randn(B, 1, H, W, generator=g).to(device)
        labels = torch.randint(0, NYUV2_CLASSES, (B, H, W), generator=g).to(device)
        present = torch.ones(B, 2, device=device)
        m.modules().train()
        times = []
        for i in range(scale.warmup + scale.steps):
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
            else:
                t0 = time.process_time()
            opt.zero_grad(set_to_none=True)
            m.loss(rgb, depth, labels, present, g).backward()
            if clip is not None:
                torch.nn.utils.clip_grad_norm_(m.modules().parameters(), clip)
            opt.step()
            if device.type == "cuda":
                end.record()
                torch.cuda.synchronize()
                ms = start.elapsed_time(end)
            else:
                ms = (time.process_time() - t0) * 1e3
            if i >= scale.warmup:
                times.append(ms)
        step = statistics.median(times)
        return {"step_ms": step, "samples_per_s": B / (step / 1e3)}
    finally:
        torch.set_num_threads(previous_threads)


def measure(methods: Sequence[str], scale: SegmentationPaperScale,
            progress: Optional[Callable[[str], None]] = None) -> pd.DataFrame:
    """One row per (method, round): median step ms, joint's in that round, their ratio, samples/s."""
    order = [BASELINE] + [m for m in methods if m != BASELINE]
    device = resolve_device(scale.device)
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows: List[Dict] = []
    for r in range(scale.rounds):
        round_rows = []
        for method in order if r % 2 == 0 else order[::-1]:
            out = time_steps(method, scale)
            round_rows.append({"method": method, "round": r, "batch": scale.batch, **out, "device": device_name})
            if progress:
                progress(f"round {r + 1}/{scale.rounds} {method}: {out['step_ms']:.0f} ms")
        base = next(row["step_ms"] for row in round_rows if row["method"] == BASELINE)
        rows += [{**row, "joint_step_ms": base, "ratio": row["step_ms"] / base} for row in round_rows]
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(df: pd.DataFrame, scale: SegmentationPaperScale, machine: str) -> str:
    device = df["device"].iloc[0] if not df.empty else scale.device
    clock = ("CUDA events" if device != "cpu" else
             "process CPU time (one thread: the step's own work, not the scheduler of a shared machine)")
    lines = [
        "# Step time of each segmentation method at paper scale (NYUv2 shapes)",
        "",
        f"`python -m mmbench steps --scale paper --task segmentation`: the released NYUv2 network (two ResNet-34 "
        f"branches with NonBottleneck1D blocks, decoder 512/256/128, {NYUV2_CLASSES} classes), RGB 3x{scale.height}x"
        f"{scale.width} and depth 1x{scale.height}x{scale.width}, random tensors, both modalities present, SGD with "
        f"momentum; batch {scale.batch}, {scale.threads} thread(s), step clock: {clock}. {scale.rounds} rounds; in each, "
        f"joint and every method (odd rounds in reverse order): {scale.warmup} untimed and {scale.steps} timed "
        f"step(s) (median). Ratio = the method's step over joint's in the same round: median over rounds and range. "
        f"Device: **{device}**. Machine: {machine}.",
        "",
    ]
    rows = []
    for method, g in df.groupby("method", sort=False):
        rows.append([method, f"{statistics.median(g.step_ms):.0f}", f"{statistics.median(g.ratio):.2f}x",
                     f"{g.ratio.min():.2f}-{g.ratio.max():.2f}", f"{statistics.median(g.samples_per_s):.2f}"])
    rows.sort(key=lambda r: float(r[2][:-1]))
    lines += [tabulate(rows, headers=["method", "step ms", "vs joint", "range over rounds", "samples/s"],
                       tablefmt="github"), ""]
    return "\n".join(lines)


def write(df: pd.DataFrame, out: str, scale: SegmentationPaperScale) -> Dict[str, Path]:
    """Write ``STEPTIME-segmentation-paper.md`` and ``steptime-segmentation-paper.csv`` into ``out``."""
    return write_table_files(out, "STEPTIME-segmentation-paper", "steptime-segmentation-paper",
                             markdown(df, scale, machine_line(environment())), df)


def all_methods() -> List[str]:
    return list(SEGMENTATION_METHODS.names())
