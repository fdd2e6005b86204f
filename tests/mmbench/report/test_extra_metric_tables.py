"""A data set's extra metrics (CASIA-SURF's APCER / BPCER / ACER per subset) reach the leaderboard."""
import pandas as pd
import pytest

from mmbench.report import aggregate, results_frame, write_tables
from mmbench.report.tables import extra_metric_table
from fake_results import HandWrittenStore


def surf_result(method, seed, acer_rgb, acer_all):
    rates = {"rgb": {"apcer": 0.1, "bpcer": 2 * acer_rgb - 0.1, "acer": acer_rgb},
             "rgb+depth": {"apcer": 0.0, "bpcer": 2 * acer_all, "acer": acer_all}}
    return {"key": f"{method}-{seed}", "status": "ok",
            "spec": {"method": method, "dataset": "casia-surf", "pattern": "complete", "seed": seed,
                     "overrides": {}},
            "metrics": {"test_acc": 0.9, "test_f1": 0.9, "unimodal_acc": {"rgb": 0.8, "depth": 0.85},
                        "subset_acc": {"rgb+depth": 0.9, "rgb": 0.8, "depth": 0.85}, "subset_mean": 0.85,
                        "subset_worst": 0.8, "best_epoch": 1, "extra": {"anti_spoofing": rates}},
            "throughput": {"step_ms": 1.0, "train_samples_per_s": 1.0, "peak_mem_mb": 1.0, "mem_kind": "x",
                           "params": 1}}


def test_acer_columns_are_flattened_and_averaged_over_seeds():
    df = results_frame([surf_result("joint", 0, 0.2, 0.04), surf_result("joint", 1, 0.4, 0.06)])
    assert df.loc[0, "acer:rgb"] == 0.2 and df.loc[0, "apcer:rgb+depth"] == 0.0
    agg = aggregate(df)
    assert agg.loc[0, "acer:rgb|mean"] == pytest.approx(0.3)
    table = extra_metric_table(agg, "casia-surf", "complete", "acer")
    header, _, row = table.splitlines()[:3]
    assert header.split("|")[2].strip() == "rgb+depth"  # larger combinations first
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells == ["joint", "5.0 ± 1.4", "30.0 ± 14.1", "17.5"]  # mean over combinations of the seed means


def test_leaderboard_has_an_acer_table_only_for_data_sets_that_report_it(tmp_path):
    store = HandWrittenStore(tmp_path)
    for r in (surf_result("joint", 0, 0.2, 0.04), surf_result("arl", 0, 0.1, 0.02)):
        store.save(r)
    md = (write_tables(str(tmp_path))["md"]).read_text()
    assert "ACER (%, lower is better) per modality combination at test, `casia-surf`" in md
    section = md.split("ACER (%, lower is better)")[1]
    assert section.index("| arl") < section.index("| joint")  # sorted, best (lowest) first
    plain = results_frame([{**surf_result("joint", 0, 0.2, 0.04), "metrics": {"test_acc": 0.5}}])
    assert not any(c.startswith("acer:") for c in plain.columns)
    assert isinstance(plain, pd.DataFrame)
