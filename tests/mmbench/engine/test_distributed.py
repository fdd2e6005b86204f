"""One run across processes: the averaged gradients equal one process's on the same global batch.

Two gloo processes on the CPU (``torch.multiprocessing.spawn``) each take half of an 8-sample
batch and run one training step; the gradients they end with must equal those of one process on
all 8 samples (and be identical on both ranks, or their parameters would drift apart).
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from helpers import make_method, run_info, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.config import TRAIN_DEFAULTS
from mmbench.engine.context import TrainContext
from mmbench.engine.trainer import build_optimizer

# joint, ARL and OGM-GE (asked for), and the other methods that read or change gradients.
METHODS = ["joint", "arl", "ogm-ge", "dgl", "agm", "mmpareto", "pmr", "mla", "greedy"]
GLOBAL_BATCH = 8
REPO = Path(__file__).resolve().parents[3]


def one_step(name: str, shard=(0, 1)):
    """Gradients and updated parameters after one training step on the first 8 training samples."""
    data = toy_dataset(n=120)
    method = make_method(name, data, epochs=4)
    cfg = {**TRAIN_DEFAULTS, **method.train_overrides, "epochs": 4, "batch_size": GLOBAL_BATCH}
    tr, va = SplitTensors(data, "train"), SplitTensors(data, "val")
    ctx = TrainContext(method, run_info(data, 4, GLOBAL_BATCH), build_optimizer(method, cfg), tr, va,
                       torch.Generator().manual_seed(0))
    ctx.epoch = 1  # inside OGM-GE's window [0, 2) and past ARL's warm-up (epoch 0)
    ctx.train_mask = torch.ones(len(tr), data_modalities(data))
    method.on_fit_start(ctx)
    method.modules().train()
    method.on_epoch_start(ctx)
    batch = next(tr.iterate(GLOBAL_BATCH, ctx.train_mask, shard=shard))
    assert len(batch) == GLOBAL_BATCH // shard[1]
    method.training_step(batch, ctx)
    named = list(method.modules().named_parameters())
    return ({n: p.grad.clone() for n, p in named if p.grad is not None},
            {n: p.detach().clone() for n, p in named})


def data_modalities(data) -> int:
    return len(data.modalities)


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        torch.save({name: one_step(name, (rank, world)) for name in METHODS}, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("name", METHODS)
def test_gradients_of_two_gloo_processes_equal_one_process(two_ranks, name):
    grads_ref, params_ref = one_step(name)
    for rank in (0, 1):
        grads, params = two_ranks[rank][name]
        assert grads.keys() == grads_ref.keys(), f"rank {rank}: other parameters got gradients"
        for key, g in grads_ref.items():
            torch.testing.assert_close(grads[key], g, rtol=1e-5, atol=1e-6, msg=f"rank {rank} {name} {key}")
        for key, p in params_ref.items():
            torch.testing.assert_close(params[key], p, rtol=1e-5, atol=1e-6, msg=f"rank {rank} {name} {key}")


def test_torchrun_trains_one_run_and_only_rank_0_writes(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "mmbench", "run", "--method", "ogm-ge", "--dataset", "synthetic", "--set", "epochs=1",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ogm-ge/synthetic/complete/seed0[epochs=1]: ok") == 1  # rank 0 prints, rank 1 is quiet
    results = list((tmp_path / "runs").rglob("*.json"))
    assert len(results) == 1
    result = json.loads(results[0].read_text())
    assert result["status"] == "ok" and result["throughput"]["world_size"] == 2
