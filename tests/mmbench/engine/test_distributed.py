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
import torch.multiprocessing as mp

from distributed_runs import STEP_METHODS as METHODS, STEP_TOLERANCE, one_step, step_worker

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(step_worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("name", METHODS)
def test_gradients_of_two_gloo_processes_equal_one_process(two_ranks, name):
    grads_ref, params_ref = one_step(name)
    rtol, atol = STEP_TOLERANCE.get(name, (1e-5, 1e-6))
    for rank in (0, 1):
        grads, params = two_ranks[rank][name]
        assert grads.keys() == grads_ref.keys(), f"rank {rank}: other parameters got gradients"
        for key, g in grads_ref.items():
            torch.testing.assert_close(grads[key], g, rtol=rtol, atol=atol, msg=f"rank {rank} {name} {key}")
        for key, p in params_ref.items():
            torch.testing.assert_close(params[key], p, rtol=rtol, atol=atol, msg=f"rank {rank} {name} {key}")


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


def test_gathering_the_global_rows_on_one_process_returns_the_tensors_themselves():
    """One process: OSMD's JMMD reads the very tensors it read before the gather existed (the same
    graph, bit for bit; a committed one-process OSMD run was reproduced exactly)."""
    from mmbench.engine.distributed import gather_global_rows

    feats, mask = torch.randn(4, 3, requires_grad=True), torch.ones(4)
    got = gather_global_rows(feats, mask)
    assert got[0] is feats and got[1] is mask
