"""Interleaved step-time benchmark of the methods: ``python -m mmbench steps``.

The throughput columns of the leaderboard come from runs timed at different moments, two at a time
on a shared machine, so their ratios to joint training move by about 10% (up to 50%) between
repeats. This benchmark times the methods against each other instead: in one process, one thread,
for each data set and each of ``rounds`` rounds, every method is trained for ``epochs`` epochs in
turn (the same seed, the same batches), and its median training step is recorded. A method's cost
is the median over rounds of its step time divided by joint training's step time *in the same
round*, so slow phases of the machine hit both sides of each ratio.

Teachers (UMT, MMANet) are built untrained: a teacher's forward pass costs the same whatever its
weights, and training them would time the teachers, not the method.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import pandas as pd
import torch
from tabulate import tabulate

from mmbench.config import RunSpec
from mmbench.engine.trainer import build_method, fit_and_test
from mmbench.environment import environment, machine_line
from mmbench.patterns import MaskStore
from mmbench.report.tables import BASELINE_METHOD
from mmbench.results_store import write_text_atomic
from mmbench.runner import Runner, seed_everything

COLUMNS = ["dataset", "method", "round", "step_ms", "joint_step_ms", "ratio"]


def _untrained_teacher(runner: Runner, parent: RunSpec) -> Callable:
    def build(name: str, hp: Dict) -> torch.nn.Module:
        spec = RunSpec(name, parent.dataset, "complete", parent.seed, {**parent.overrides, **hp})
        cls, _, cfg, t_hp, data, info = runner.prepare(spec)
        return build_method(cls, data, cfg, t_hp, info)

    return build


def time_method(runner: Runner, method: str, dataset: str, epochs: int, seed: int) -> float:
    """Median training-step milliseconds of ``method`` trained ``epochs`` epochs on ``dataset`` (complete)."""
    spec = RunSpec(method, dataset, "complete", seed, {"epochs": epochs})
    cls, pattern, cfg, hp, data, info = runner.prepare(spec)
    threads = torch.get_num_threads()
    torch.set_num_threads(int(cfg["threads"]))
    try:
        seed_everything(seed)
        model = build_method(cls, data, cfg, hp, info)
        masks = MaskStore(runner.store.mask_dir).masks(
            dataset, pattern, data.modalities, len(data.split["train"]), len(data.split["test"]), seed)
        out = fit_and_test(model, data, pattern, cfg, info, masks, _untrained_teacher(runner, spec))
    finally:
        torch.set_num_threads(threads)
    return float(out["throughput"]["step_ms"])


def measure(methods: Sequence[str], datasets: Sequence[str], epochs: int = 3, rounds: int = 5, seed: int = 0,
            out: str = "results", progress: Optional[Callable[[str], None]] = None) -> pd.DataFrame:
    """One row per (data set, method, round): its median step ms, joint's in that round, and the ratio."""
    runner = Runner(out)
    order = [BASELINE_METHOD] + [m for m in methods if m != BASELINE_METHOD]
    rows: List[Dict] = []
    for dataset in datasets:
        for r in range(rounds):
            base = None
            for method in order:
                ms = time_method(runner, method, dataset, epochs, seed)
                base = ms if method == BASELINE_METHOD else base
                rows.append({"dataset": dataset, "method": method, "round": r, "step_ms": ms,
                             "joint_step_ms": base, "ratio": ms / base})
                if progress:
                    progress(f"{dataset} round {r + 1}/{rounds} {method}: {ms:.2f} ms")
    return pd.DataFrame(rows, columns=COLUMNS)


def markdown(df: pd.DataFrame, epochs: int, machine: str) -> str:
    """``STEPTIME.md``: per data set, each method's median step and its ratio to joint (median and range over rounds)."""
    rounds = int(df["round"].max()) + 1 if not df.empty else 0
    lines = [
        "# Step time of each method relative to joint training",
        "",
        f"`python -m mmbench steps`: one process, one thread; per data set, {rounds} rounds, each training "
        f"every method for {epochs} epochs in turn (complete pattern, seed 0, same batches). Ratio = the "
        "method's median step over joint's median step in the same round; the table gives the median "
        "over rounds and the range. Teachers are untrained (same cost). Machine: " + machine + ".",
        "",
    ]
    for dataset, d in df.groupby("dataset", sort=False):
        rows = []
        for method, g in d.groupby("method", sort=False):
            rows.append([method, f"{statistics.median(g.step_ms):.2f}", f"{statistics.median(g.ratio):.2f}x",
                         f"{g.ratio.min():.2f}-{g.ratio.max():.2f}"])
        rows.sort(key=lambda r: float(r[2][:-1]))
        lines += [f"## {dataset}", "", tabulate(rows, headers=["method", "step ms", "vs joint", "range over rounds"],
                                                 tablefmt="github"), ""]
    return "\n".join(lines)


def write(df: pd.DataFrame, out: str, epochs: int) -> Dict[str, Path]:
    """Write ``STEPTIME.md`` and ``steptime.csv`` into ``out`` (atomically)."""
    return write_table_files(out, "STEPTIME", "steptime", markdown(df, epochs, machine_line(environment())), df)


def write_table_files(out: str, md_stem: str, csv_stem: str, md_text: str, df: pd.DataFrame) -> Dict[str, Path]:
    """``out/<md_stem>.md`` holding ``md_text`` and ``out/<csv_stem>.csv`` holding ``df``, each written atomically."""
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    paths = {"md": root / f"{md_stem}.md", "csv": root / f"{csv_stem}.csv"}
    write_text_atomic(paths["md"], md_text)
    write_text_atomic(paths["csv"], df.to_csv(index=False))
    return paths
