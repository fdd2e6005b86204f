"""The "Which method should I use?" section: counts independent groups, quotes P(better than joint)."""
from fractions import Fraction as F

import pandas as pd

from mmbench.report.ranks import cross_dataset_summary
from mmbench.report.recommend import TITLE, group_counts, recommendation


def agg_rows(datasets, methods, pattern="complete"):
    """``methods``: name -> (score per data set, best_or_tied per data set, step ms)."""
    rows = []
    for i, d in enumerate(datasets):
        for m, (score, tied, step) in methods.items():
            v = score(i)
            row = {"row": m, "method": m, "overrides": "", "dataset": d, "pattern": pattern, "step_ms|mean": step}
            for metric in ("test_acc", "subset_mean"):
                row.update({f"{metric}|mean": float(v), f"{metric}|num": v.numerator, f"{metric}|den": v.denominator,
                            f"{metric}|best_or_tied": tied(i), f"{metric}|compared": True})
            rows.append(row)
    return pd.DataFrame(rows)


def test_groups_sharing_samples_count_once():
    agg = agg_rows(["mfeat-fou-zer-mor", "mfeat-pix-mor", "x"], {
        "joint": (lambda i: F(8, 10), lambda i: i == 2, 1.0), "a": (lambda i: F(9, 10), lambda i: i != 1, 1.2)})
    g = group_counts(agg, "complete", "test_acc")
    assert g["n_groups"] == 2 and g["n_datasets"] == 3
    assert g["counts"]["a"] == 1.5 and g["counts"]["joint"] == 1.0  # one of two mfeat sets = half a group


def test_section_opens_with_the_title_and_quotes_probabilities():
    ds = [f"d{i}" for i in range(6)]
    agg = agg_rows(ds, {"joint": (lambda i: F(80, 100), lambda i: i < 2, 1.0),
                        "a": (lambda i: F(90, 100), lambda i: True, 1.3),
                        "slow": (lambda i: F(91, 100), lambda i: True, 4.0)})
    summaries = [cross_dataset_summary(agg, "complete", m) for m in ("test_acc", "subset_mean")]
    lines = recommendation(agg, summaries)
    assert lines[0] == TITLE == "## Which method should I use?"
    present = next(ln for ln in lines if ln.startswith("- **All modalities present**"))
    assert "`slow` (P(better than joint) = " in present and "are best or tied in 6 of 6 groups" in present
    assert "`joint` is best or tied in 2." in present and "with probability >= 0.95" in present
    cost = next(ln for ln in lines if ln.startswith("- **If training cost matters**"))
    assert "`a` (1.30x)" in cost and "slow" not in cost  # 4x joint's step is not cheap
    assert not any("Across data sets: only" in ln for ln in lines)


def test_no_probability_below_five_groups():
    agg = agg_rows(["d1", "d2"], {"joint": (lambda i: F(8, 10), lambda i: True, 1.0),
                                  "a": (lambda i: F(9, 10), lambda i: True, 1.0)})
    lines = recommendation(agg, [cross_dataset_summary(agg, "complete", "test_acc")])
    text = "\n".join(lines)
    assert "P(better" not in text and "No cross-data-set probability: only 2 independent" in text
    assert "only 2 independent groups, so no method is declared better" in text
