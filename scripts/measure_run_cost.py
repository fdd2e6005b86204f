"""Process CPU seconds per run of a few methods on data sets (one seed, 1 thread): the suite's cost model.

    python scripts/measure_run_cost.py --datasets spam,cells --methods joint,mmpareto [--patterns complete,missing-0.5]

Runs into a temporary results folder (nothing under results/ is touched) and prints one row per
(data set, method, pattern): CPU seconds (``time.process_time``: a shared machine inflates wall time,
not CPU time), the epochs and the test accuracy. Extra ``--set key=value`` overrides apply to every run.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--datasets", required=True)
    parser.add_argument("--methods", default="joint,mmpareto")
    parser.add_argument("--patterns", default="complete,missing-0.5")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], help="override key=value (int/float parsed)")
    args = parser.parse_args()
    from mmbench.config import RunSpec
    from mmbench.runner import Runner

    overrides = {}
    for item in args.set:
        key, value = item.split("=", 1)
        for cast in (int, float, str):
            try:
                overrides[key] = cast(value)
                break
            except ValueError:
                pass
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as out:
        runner = Runner(out)
        for dataset in args.datasets.split(","):
            runner.run(RunSpec("joint", dataset, "complete", args.seed, {"epochs": 1}))  # warm-up: load, imports
            for method in args.methods.split(","):
                for pattern in args.patterns.split(","):
                    start = time.process_time()
                    res = runner.run(RunSpec(method, dataset, pattern, args.seed, dict(overrides)))
                    cpu = time.process_time() - start
                    acc = res.get("metrics", {}).get("test_acc", float("nan"))
                    sub = res.get("metrics", {}).get("subset_mean", float("nan"))
                    print(f"{dataset:10s} {method:10s} {pattern:12s} cpu {cpu:6.2f} s  epochs "
                          f"{res.get('config', {}).get('train', {}).get('epochs')}  best {res.get('metrics', {}).get('best_epoch')}"
                          f"  acc {acc:.3f}  subset_mean {sub:.3f}  {res['status']}", flush=True)


if __name__ == "__main__":
    main()
