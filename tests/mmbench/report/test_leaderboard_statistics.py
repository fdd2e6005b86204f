"""The leaderboard shows intervals, best-or-tied marks, ranks, diagnostics and reported numbers."""
import json

import numpy as np
import pandas as pd
import pytest

from mmbench.engine.outcomes import pack_correct
from mmbench.report import write_tables
from mmbench.report.imbalance import add_gaps
from mmbench.report.reported import load_reported, match_dataset
from fake_results import HandWrittenStore

N = 300


def run(method, dataset, seed, p_correct, pattern="complete", rng=None, outcomes=True):
    rng = rng or np.random.default_rng(hash((method, dataset, seed)) % 2**32)
    correct = {name: rng.random(N) < p for name, p in
               {"fused": p_correct, "subset:a+b": p_correct, "subset:a": p_correct - 0.1, "subset:b": 0.4,
                "uni:a": p_correct - 0.1, "uni:b": 0.4}.items()}
    acc = {k: float(v.mean()) for k, v in correct.items()}
    result = {
        "key": f"{method}-{dataset}-{pattern}-{seed}", "status": "ok",
        "spec": {"method": method, "dataset": dataset, "pattern": pattern, "seed": seed, "overrides": {}},
        "metrics": {"test_acc": acc["fused"], "test_f1": acc["fused"],
                    "unimodal_acc": {"a": acc["uni:a"], "b": acc["uni:b"]},
                    "subset_acc": {"a+b": acc["subset:a+b"], "a": acc["subset:a"], "b": acc["subset:b"]},
                    "subset_mean": np.mean([acc["subset:a+b"], acc["subset:a"], acc["subset:b"]]),
                    "subset_worst": acc["subset:b"], "best_epoch": 1},
        "throughput": {"step_ms": 1.0, "train_samples_per_s": 1.0, "peak_mem_mb": 1.0, "mem_kind": "x", "params": 1},
        "env": {},
    }
    if outcomes:
        result["outcomes"] = {"n": N, "num_classes": 4, "test_ids_sha": dataset, "mask_seed": seed,
                              "test_mask_sha": None, "correct": {k: pack_correct(v) for k, v in correct.items()}}
    return result


@pytest.fixture
def board(tmp_path):
    store = HandWrittenStore(tmp_path)
    for dataset in ("d1", "d2", "crema-d"):
        for seed in range(3):
            store.save(run("best", dataset, seed, 0.9))
            store.save(run("twin", dataset, seed, 0.895))
            store.save(run("bad", dataset, seed, 0.6))
            store.save(run("unimodal", dataset, seed, 0.7))
    store.save(run("old", "d1", 0, 0.5, outcomes=False))
    store.save(run("old", "d1", 1, 0.52, outcomes=False))
    (tmp_path / "reported.yaml").write_text(
        "datasets:\n  crema-d: {aliases: [cremad]}\nentries:\n"
        "  - {dataset: crema-d, method: best, paper_method: Best, metric: acc, value: 77.7, source: paper T1,"
        " epoch_on_test: true, checked: readme}\n")
    return write_tables(str(tmp_path), machine="m")


def test_markdown_marks_best_or_tied_with_intervals(board):
    md = board["md"].read_text()
    fused = md.split("## Fused test accuracy")[1].split("##")[0]
    best_line = next(line for line in fused.splitlines() if line.startswith("| best "))
    bad_line = next(line for line in fused.splitlines() if line.startswith("| bad "))
    assert best_line.count("**") == 6 and "[" in best_line  # bold and an interval in each of 3 data sets
    assert "**" not in bad_line
    old_line = next(line for line in fused.splitlines() if line.startswith("| old "))
    assert "†" in old_line  # a cell without per-sample outcomes says so
    assert "two-level bootstrap" in md and "Holm" in md


def test_csv_and_json_carry_the_marks_and_ranks(board):
    csv = pd.read_csv(board["csv"])
    row = csv[(csv.method == "bad") & (csv.dataset == "d1")].iloc[0]
    assert row["test_acc|best_or_tied"] == False and row["test_acc|p_holm"] < 0.05  # noqa: E712
    assert row["test_acc|lo"] < row["test_acc|mean"] < row["test_acc|hi"]
    ranks = json.loads(board["json"].read_text())["ranks"]
    complete = next(r for r in ranks if r["pattern"] == "complete")
    assert complete["methods"][0]["method"] in ("best", "twin") and complete["cd"] > 0
    assert "Mean rank across data sets" in board["md"].read_text()


def test_diagnostics_columns(board):
    csv = pd.read_csv(board["csv"])
    row = csv[(csv.method == "best") & (csv.dataset == "d1")].iloc[0]
    # a trained alone: unimodal's probe (~0.6) minus best's probe (~0.8): negative = not under-optimised
    assert row["gap:a|mean"] == pytest.approx(0.6 - 0.8, abs=0.1)
    assert row["shapley:a|mean"] + row["shapley:b|mean"] == pytest.approx(row["subset:a+b|mean"] - 0.25)
    assert "gap a" in board["md"].read_text() and "shapley a" in board["md"].read_text()


def test_reported_section_only_for_data_sets_run_here(board):
    md = board["md"].read_text()
    assert "## crema-d: numbers reported elsewhere" in md and "77.70" in md
    assert "d1: numbers reported elsewhere" not in md


def test_reported_file_of_the_project_is_valid():
    data = load_reported("results/reported.yaml")
    assert match_dataset(data, "CREMA_D") == "crema-d" and match_dataset(data, "mfeat-pix-mor") is None
    assert all(e["checked"] in ("readme", "issue", "secondary", "artifact") for e in data["entries"])


def test_reported_file_bad_entry_names_the_problem(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("entries:\n  - {dataset: x, method: y, metric: top5, value: 1, source: s, epoch_on_test: false,"
                    " checked: readme}\n")
    with pytest.raises(ValueError, match=r"r.yaml: entry 0 has metric 'top5' \(allowed: acc, f1\)"):
        load_reported(path)
    path.write_text("entries:\n  - {dataset: x, method: y}\n")
    with pytest.raises(ValueError, match="lacks metric, value, source"):
        load_reported(path)


def test_gap_needs_matching_unimodal_seed():
    df = pd.DataFrame({"method": ["joint", "unimodal", "joint"], "dataset": ["d"] * 3, "pattern": ["complete"] * 3,
                       "seed": [0, 0, 1], "status": ["ok"] * 3, "uni:a": [0.5, 0.8, 0.6]})
    gaps = add_gaps(df)["gap:a"].tolist()
    assert gaps[0] == pytest.approx(0.3) and gaps[1] == 0 and np.isnan(gaps[2])


def test_coefficient_traces_averaged_over_seeds(tmp_path):
    store = HandWrittenStore(tmp_path)
    for seed, k in enumerate([0.2, 0.4]):
        r = run("ogm-ge", "d1", seed, 0.8)
        r["history"] = [{"epoch": 0, "coefficients": {"k:a": k}}, {"epoch": 1, "coefficients": {"k:a": 2 * k}}]
        store.save(r)
    store.save(run("joint", "d1", 0, 0.8))
    paths = write_tables(str(tmp_path), machine="m")
    traces = json.loads(paths["json"].read_text())["coefficient_traces"]
    assert traces == [{"method": "ogm-ge", "dataset": "d1", "pattern": "complete", "name": "k:a",
                       "per_epoch": pytest.approx([0.3, 0.6])}]
    assert "| ogm-ge   | d1        | k:a" in paths["md"].read_text()
