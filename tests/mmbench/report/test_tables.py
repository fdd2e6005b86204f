import json

import pandas as pd

from mmbench.report import aggregate, results_frame, write_tables
from fake_results import HandWrittenStore


def fake_result(method, dataset, pattern, seed, acc, step_ms, status="ok"):
    return {
        "key": f"{method}-{dataset}-{pattern}-{seed}",
        "status": status,
        "spec": {"method": method, "dataset": dataset, "pattern": pattern, "seed": seed, "overrides": {}},
        "metrics": {
            "test_acc": acc, "test_f1": acc - 0.01, "unimodal_acc": {"a": acc - 0.1, "b": acc - 0.3},
            "subset_acc": {"a+b": acc, "a": acc - 0.1, "b": acc - 0.3},
            "subset_mean": acc - 0.133, "subset_worst": acc - 0.3, "best_epoch": 3,
        } if status == "ok" else {},
        "throughput": {"step_ms": step_ms, "train_samples_per_s": 1000 / step_ms, "peak_mem_mb": 1.5,
                       "mem_kind": "autograd_saved_per_step", "params": 10} if status == "ok" else {},
        "env": {},
    }


def test_aggregate_mean_std_over_seeds():
    rows = [fake_result("joint", "d", "complete", s, acc, 2.0) for s, acc in enumerate([0.8, 0.9, 1.0])]
    agg = aggregate(results_frame(rows))
    row = agg.iloc[0]
    assert abs(row["test_acc|mean"] - 0.9) < 1e-12
    assert abs(row["test_acc|std"] - 0.1) < 1e-12 and row["test_acc|count"] == 3


def test_write_tables(tmp_path):
    store = HandWrittenStore(tmp_path)
    for s in range(2):
        store.save(fake_result("joint", "d", "complete", s, 0.8, 2.0))
        store.save(fake_result("arl", "d", "complete", s, 0.85, 3.0))
        store.save(fake_result("arl", "d", "missing-0.5", s, 0.7, 3.0))
    store.save(fake_result("dgl", "d", "complete", 0, 0.0, 1.0, status="failed"))
    paths = write_tables(str(tmp_path), machine="test machine")
    md = paths["md"].read_text()
    assert "85.0 ± 0.0" in md and "test machine" in md
    assert "1.50x" in md  # arl step time relative to joint
    assert "d, pattern `missing-0.5`" in md and "worst subset" in md
    assert "| dgl" in md and "failed" in md  # failures listed, not hidden
    csv = pd.read_csv(paths["csv"])
    assert set(csv.method) == {"joint", "arl"}
    assert json.loads(paths["json"].read_text())["machine"] == "test machine"


def test_empty_results_folder(tmp_path):
    paths = write_tables(str(tmp_path), machine="m")
    assert "no finished runs" in paths["md"].read_text()


def test_dataset_table_shows_only_its_own_modalities(tmp_path):
    store = HandWrittenStore(tmp_path)
    other = fake_result("joint", "e", "complete", 0, 0.6, 2.0)
    other["metrics"]["unimodal_acc"] = {"x": 0.5, "y": 0.4}
    other["metrics"]["subset_acc"] = {"x+y": 0.6, "x": 0.5, "y": 0.4}
    store.save(other)
    store.save(fake_result("joint", "d", "complete", 0, 0.8, 2.0))
    md = write_tables(str(tmp_path), machine="m")["md"].read_text()
    d_section = md.split("## d, pattern `complete`")[1].split("## ")[0]
    assert "probe a" in d_section and "only b" in d_section
    assert "probe x" not in d_section and "only y" not in d_section
    # the subset-mean summary: 0.8 - 0.133 for d, 0.6 - 0.133 for e
    summary = md.split("## Mean accuracy over the modality subsets at test, pattern `complete`")[1].split("## ")[0]
    assert "66.7" in summary and "46.7" in summary


def test_machine_line_comes_from_the_runs_env(tmp_path):
    store = HandWrittenStore(tmp_path)
    r = fake_result("joint", "d", "complete", 0, 0.8, 2.0)
    r["env"] = {"cpu": "Test CPU 9000", "cpu_count": "2", "python": "3.11.7", "torch": "2.14.1"}
    store.save(r)
    old = fake_result("joint", "d", "complete", 1, 0.8, 2.0)  # a result written before "cpu" was recorded
    old["env"] = {"platform": "Linux-x86_64", "cpu_count": "2", "python": "3.11.7", "torch": "2.14.1", "gpu": "H100"}
    store.save(old)
    md = write_tables(str(tmp_path))["md"].read_text()
    assert "Test CPU 9000, 2 cores, no GPU; Python 3.11.7, torch 2.14.1" in md
    assert "Linux-x86_64, 2 cores, H100" in md


def test_runs_with_other_settings_never_join_a_cell(tmp_path):
    store = HandWrittenStore(tmp_path)
    for s, acc in enumerate([0.8, 0.9, 1.0]):
        store.save(fake_result("arl", "d", "complete", s, acc, 2.0))
    quick = fake_result("arl", "d", "complete", 0, 0.1, 2.0)  # `run ... --set epochs=1`
    quick["key"], quick["spec"]["overrides"] = "arl-quick", {"epochs": 1}
    store.save(quick)
    md = write_tables(str(tmp_path), machine="m")["md"].read_text()
    fused = md.split("## Fused test accuracy, complete pattern")[1].split("## ")[0]
    assert "| arl " in fused and "90.0 ± 10.0 (3)" in fused  # the 3 default runs, unchanged, n stated
    assert "| arl [epochs=1] " in fused and "10.0 (1)" in fused  # the override run: its own row
    per_dataset = md.split("## d, pattern `complete`")[1].split("## ")[0]
    header = next(line for line in per_dataset.splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.split("|")][1:3] == ["method", "n"]


def test_same_label_with_different_resolved_settings_gets_separate_rows(tmp_path):
    store = HandWrittenStore(tmp_path)
    for s in range(2):  # a default changed between these two pairs of runs: different settings hashes
        old, new = fake_result("arl", "d", "complete", s, 0.8, 2.0), fake_result("arl", "d", "complete", s, 0.6, 2.0)
        old["key"], old["settings_hash"] = f"old{s}", "aaaaaaaaaaaaaaaa"
        new["key"], new["settings_hash"] = f"new{s}", "bbbbbbbbbbbbbbbb"
        store.save(old)
        store.save(new)
    agg = aggregate(results_frame(store.all_results()))
    assert sorted(agg.row) == ["arl {aaaaaa}", "arl {bbbbbb}"]
    assert set(agg["test_acc|count"]) == {2}
    assert sorted(agg["test_acc|mean"].round(6)) == [0.6, 0.8]


def test_unreadable_result_files_are_counted_and_named(tmp_path, capsys):
    store = HandWrittenStore(tmp_path)
    store.save(fake_result("joint", "d", "complete", 0, 0.8, 2.0))
    path = store.save(fake_result("joint", "d", "complete", 1, 0.8, 2.0))
    path.write_text(path.read_text()[:50])  # truncated
    md = write_tables(str(tmp_path), machine="m")["md"].read_text()
    assert "Built from 1 finished runs (1 in all)" in md
    assert "1 result file(s) could not be read" in md and path.name in md
    assert path.name in capsys.readouterr().err


def test_header_names_the_runs_folder_it_was_built_from(tmp_path):
    out = tmp_path / "my-results"
    HandWrittenStore(out).save(fake_result("joint", "d", "complete", 0, 0.8, 2.0))
    md = write_tables(str(out), machine="m")["md"].read_text()
    assert f"`{out}/runs/`" in md and "`results/runs/`" not in md


def test_files_are_written_with_the_umask(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        path = HandWrittenStore(tmp_path).save(fake_result("joint", "d", "complete", 0, 0.8, 2.0))
        paths = write_tables(str(tmp_path), machine="m")
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644
    assert paths["md"].stat().st_mode & 0o777 == 0o644
