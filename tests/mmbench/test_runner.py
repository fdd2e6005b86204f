"""The result cache: keyed by config, atomic, resumable; failures recorded, names checked."""
import json

import numpy as np
import pytest

from mmbench.config import RunSpec
from mmbench.data import register_arrays
from mmbench.grid import parse_shard, run_grid, select_shard
from mmbench.results_store import ResultsStore
from mmbench.runner import Runner


@pytest.fixture(scope="module")
def dataset_name():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 150)
    a = (rng.normal(size=(150, 6)) + y[:, None]).astype(np.float32)
    b = rng.normal(size=(150, 2, 8)).astype(np.float32)
    register_arrays("runner-toy", {"a": a, "b": b}, y, split="random")
    return "runner-toy"


def spec(ds, **kw):
    base = dict(method="joint", dataset=ds, pattern="complete", seed=0, overrides={"epochs": 2})
    base.update(kw)
    return RunSpec(**base)


def test_run_is_cached_and_not_recomputed(tmp_path, dataset_name, monkeypatch):
    runner = Runner(tmp_path)
    first = runner.run(spec(dataset_name))
    assert first["status"] == "ok"
    assert (tmp_path / "runs" / f"{first['key']}.json").exists()
    monkeypatch.setattr(Runner, "_execute", lambda *a, **k: pytest.fail("recomputed a cached run"))
    again = Runner(tmp_path).run(spec(dataset_name))
    assert again["metrics"] == first["metrics"]


def test_failed_run_is_recorded_and_does_not_stop_the_grid(tmp_path, dataset_name):
    good, bad = spec(dataset_name), spec(dataset_name, overrides={"epochs": 2, "optimizer": "lbfgs-typo"})
    counts = run_grid([bad, good], str(tmp_path), workers=1, show_progress=False)
    assert counts["failed"] == 1 and counts["ok"] == 1
    stored = ResultsStore(tmp_path).load(bad.key())
    assert stored["status"] == "failed" and "lbfgs-typo" in stored["error"]
    # failed runs are retried on the next call; finished ones are not
    counts = run_grid([bad, good], str(tmp_path), workers=1, show_progress=False)
    assert counts["cached"] == 1 and counts["failed"] == 1


def test_interrupted_grid_resumes_without_losing_results(tmp_path, dataset_name, monkeypatch):
    specs = [spec(dataset_name, seed=s) for s in range(3)]
    import mmbench.grid as grid

    real = grid._work
    calls = []

    def flaky(s, root):
        calls.append(s.seed)
        if len(calls) == 2:
            raise KeyboardInterrupt  # the user presses Ctrl-C during the second run
        return real(s, root)

    monkeypatch.setattr(grid, "_work", flaky)
    with pytest.raises(KeyboardInterrupt):
        run_grid(specs, str(tmp_path), workers=1, show_progress=False)
    assert ResultsStore(tmp_path).is_done(specs[0].key())  # the finished run survived
    assert not list((tmp_path / "runs").glob("*.tmp"))  # no half-written file
    monkeypatch.setattr(grid, "_work", real)
    counts = run_grid(specs, str(tmp_path), workers=1, show_progress=False)
    assert counts == {"cached": 1, "ok": 2, "failed": 0, "diverged": 0}


def test_parallel_workers_write_every_result(tmp_path, dataset_name):
    specs = [spec(dataset_name, seed=s) for s in range(2)]
    counts = run_grid(specs, str(tmp_path), workers=2, show_progress=False)
    assert counts["ok"] == 2
    # spawned workers key the in-memory data set as the parent does, so the parent sees them done
    assert all(ResultsStore(tmp_path).is_done(s.key()) for s in specs)
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2


def test_same_spec_same_numbers_across_processes(tmp_path, dataset_name):
    a = Runner(tmp_path / "a").run(spec(dataset_name, seed=5))
    run_grid([spec(dataset_name, seed=5)], str(tmp_path / "b"), workers=2, show_progress=False)
    b = json.loads((tmp_path / "b" / "runs" / f"{a['key']}.json").read_text())
    assert a["metrics"] == b["metrics"]


def test_shards_partition_the_grid(dataset_name):
    specs = [spec(dataset_name, seed=s) for s in range(20)]
    parts = [select_shard(specs, parse_shard(f"{i}/3")) for i in range(3)]
    assert sorted(s.seed for p in parts for s in p) == list(range(20))
    with pytest.raises(ValueError, match="i/n"):
        parse_shard("3")


def test_teacher_is_trained_once_and_cached(tmp_path, dataset_name):
    runner = Runner(tmp_path)
    parent = spec(dataset_name)
    first = runner.teacher(parent, {"epochs": 2}, "joint", {})
    models = list((tmp_path / "cache" / "models").glob("*.pt"))
    assert len(models) == 1
    second = runner.teacher(parent, {"epochs": 2}, "joint", {})
    for (n, p), (_, q) in zip(first.modules().named_parameters(), second.modules().named_parameters()):
        assert (p == q).all(), n


def test_dask_executor_runs_the_grid(tmp_path, dataset_name):
    pytest.importorskip("distributed")
    specs = [spec(dataset_name, seed=s) for s in range(2)]
    counts = run_grid(specs, str(tmp_path), workers=1, show_progress=False, executor="dask")
    assert counts["ok"] == 2
    assert all(ResultsStore(tmp_path).is_done(s.key()) for s in specs)


def test_nan_loss_is_recorded_as_diverged(tmp_path, dataset_name):
    import torch.nn.functional as F

    from mmbench.methods import METHODS, Method, register_method

    if "test-nan-loss" not in METHODS:

        @register_method
        class NaNLoss(Method):
            """Always a NaN loss (test only)."""

            name = "test-nan-loss"

            def compute_loss(self, batch, ctx):
                return F.cross_entropy(self.model(batch), batch.labels) * float("nan")

    result = Runner(tmp_path).run(spec(dataset_name, method="test-nan-loss"))
    assert result["status"] == "diverged" and "non-finite" in result["error"]
    assert ResultsStore(tmp_path).is_done(result["key"])  # diverged is a finished outcome, not retried
