"""Macro-F1 in the leaderboard (its own table and beside reported numbers) and the linear-probe columns."""
from mmbench.report import write_tables
from mmbench.results_store import ResultsStore

REPORTED = """
datasets:
  d: {aliases: []}
entries:
  - {dataset: d, method: joint, metric: acc, value: 71.5, source: "paper X", epoch_on_test: true, checked: readme}
  - {dataset: d, method: joint, metric: f1, value: 70.25, source: "paper X", epoch_on_test: true, checked: readme}
"""


def result(method, seed, acc, f1, lp):
    return {
        "key": f"{method}-{seed}", "status": "ok",
        "spec": {"method": method, "dataset": "d", "pattern": "complete", "seed": seed, "overrides": {}},
        "metrics": {"test_acc": acc, "test_f1": f1, "unimodal_acc": {"a": acc - 0.2, "b": acc - 0.3},
                    "linear_probe_acc": {"a": lp, "b": lp - 0.1},
                    "subset_acc": {"a+b": acc, "a": acc - 0.1, "b": acc - 0.3}, "subset_mean": acc - 0.13,
                    "subset_worst": acc - 0.3, "best_epoch": 3},
        "throughput": {"step_ms": 1.0, "train_samples_per_s": 10.0, "peak_mem_mb": 1.0,
                       "mem_kind": "autograd_saved_per_step", "params": 10},
        "env": {},
    }


def test_macro_f1_table_reported_comparison_and_probe_columns(tmp_path):
    store = ResultsStore(tmp_path)
    for seed in (0, 1):
        store.save(result("joint", seed, 0.8, 0.6123, 0.7))
        store.save(result("unimodal", seed, 0.75, 0.7, 0.9))
    (tmp_path / "reported.yaml").write_text(REPORTED)
    md = write_tables(str(tmp_path), machine="m")["md"].read_text()
    f1_section = md.split("## Fused test macro-F1, complete pattern")[1].split("##")[0]
    assert "61.2 ± 0.0 (2)" in f1_section  # joint's macro-F1, not its accuracy
    reported = md.split("numbers reported elsewhere")[1]
    # mmbench's own accuracy and macro-F1 beside the paper's, each for its own metric
    assert "| acc      | 71.50 | 80.00 (2)" in reported and "| f1       | 70.25 | 61.23 (2)" in reported
    table = md.split("## d, pattern `complete`")[1].split("##")[0]
    assert "linear probe a" in table and "linear-probe gap a" in table and "shared-head gap a" in table
    joint_row = next(line for line in table.splitlines() if line.startswith("| joint"))
    assert "20.0" in joint_row  # linear-probe gap a: 90 (unimodal) - 70 (joint)
