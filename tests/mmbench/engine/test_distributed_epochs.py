"""torchrun equals one process over whole runs, missing modalities included.

Two gloo processes (``torch.multiprocessing.spawn``, CPU) each train on half of every global batch of
16 for two epochs with the engine's own ``fit_and_test``; one process trains on the whole batches.
Loss history, coefficient traces, validation scores, final (selected) parameters, test metrics and
per-sample outcomes must agree within fp32 rounding, for the methods that normalise by the samples
that have a modality (ARL, MLA), draw per-sample randomness (DMRNet), steer by batch statistics
(OGM-GE) or compute a statistic over all pairs of the global batch (OSMD's joint MMD, gathered with a
gradient), under ``complete`` and under ``dropout`` (a random subset of modalities per sample).
"""
import math

import pytest
import torch
import torch.multiprocessing as mp

from distributed_runs import EPOCHS, GLOBAL_BATCH, METHODS, PATTERNS, train, worker

@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp_epochs")
    mp.spawn(worker, args=(2, str(out / "init"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


def assert_close_tree(got, want, where: str) -> None:
    """Nested dicts / lists of floats and tensors equal within fp32 rounding (strings exactly)."""
    if isinstance(want, dict):
        assert got.keys() == want.keys(), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            assert_close_tree(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, (list, tuple)):
        assert len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            assert_close_tree(g, w, f"{where}[{i}]")
    elif torch.is_tensor(want):
        if want.is_floating_point():
            torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5, msg=where)
        else:
            assert torch.equal(got, want), where
    elif isinstance(want, float):
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, rel=1e-4, abs=2e-5), \
            f"{where}: {got} != {want}"
    elif hasattr(want, "shape"):  # numpy arrays of the outcome record
        torch.testing.assert_close(torch.as_tensor(got), torch.as_tensor(want), rtol=1e-4, atol=2e-5, msg=where)
    else:
        assert got == want, f"{where}: {got!r} != {want!r}"


@pytest.mark.parametrize("pattern", PATTERNS)
@pytest.mark.parametrize("name", METHODS)
def test_two_gloo_processes_train_as_one_process(two_ranks, name, pattern):
    ref = train(name, pattern)
    assert ref["steps"] == EPOCHS * (72 // GLOBAL_BATCH)
    for rank in (0, 1):
        got = two_ranks[rank][(name, pattern)]
        assert got["steps"] == ref["steps"]
        for part in ("history", "params", "metrics", "outcomes"):
            assert_close_tree(got[part], ref[part], f"rank {rank} {name}/{pattern} {part}")
