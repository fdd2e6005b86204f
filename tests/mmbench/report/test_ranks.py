"""Across data sets: exact ranks and ties, independence groups, Iman-Davenport, control under Holm,
Bayesian probabilities, and silence below 5 independent groups."""
import math
from fractions import Fraction as F

import pandas as pd
import pytest
from scipy import stats

from mmbench.report.ranks import (bayes_vs_control, control_comparisons, cross_dataset_summary, exact_ranks,
                                  friedman_iman_davenport, group_scores)

# 4 blocks x 3 methods; A always best, B and C swap places once, one tie.
TABLE = pd.DataFrame({"A": [F(9, 10), F(8, 10), F(7, 10), F(95, 100)], "B": [F(8, 10), F(7, 10), F(65, 100), F(9, 10)],
                      "C": [F(7, 10), F(75, 100), F(65, 100), F(8, 10)]}, index=["d1", "d2", "d3", "d4"])


def test_exact_ranks_by_hand():
    # d1: A1 B2 C3; d2: A1 C2 B3; d3: A1 B2.5 C2.5; d4: A1 B2 C3 -> A 1, B 19/8, C 21/8
    r = exact_ranks(TABLE)
    assert r.loc["d3"].tolist() == [1, F(5, 2), F(5, 2)]
    assert (r.sum() / 4).tolist() == [1, F(19, 8), F(21, 8)]


def test_equal_counts_tie_exactly_where_floats_do_not():
    # the case: 1071/1200 each, but 0.8925000000000001 vs 0.8925 as floats
    a, b = F(1071, 1200), F(1071, 1200)
    assert 0.8925000000000001 != 0.8925
    r = exact_ranks(pd.DataFrame({"greedy": [a], "joint-sum": [b], "x": [F(1, 2)]}))
    assert r.iloc[0].tolist() == [F(3, 2), F(3, 2), 3]


def test_iman_davenport_by_hand():
    out = friedman_iman_davenport(TABLE)
    chi2 = 12 * 4 / (3 * 4) * (1.0 ** 2 + 2.375 ** 2 + 2.625 ** 2 - 3 * 16 / 4) / (1 - 6 / 96)  # scipy's tie correction
    assert out["friedman_chi2"] == pytest.approx(chi2)
    f = 3 * chi2 / (4 * 2 - chi2)
    assert out["iman_davenport_f"] == pytest.approx(f)
    assert out["friedman_p"] == pytest.approx(stats.f.sf(f, 2, 6)) and (out["df1"], out["df2"]) == (2, 6)


def test_control_comparisons_demsar_3_2_2():
    vs = control_comparisons(exact_ranks(TABLE), "B").set_index("method")
    se = math.sqrt(3 * 4 / (6 * 4))
    assert vs.loc["A", "z"] == pytest.approx((1 - 2.375) / se)
    p = 2 * stats.norm.sf(abs((1 - 2.375) / se)), 2 * stats.norm.sf(abs((2.625 - 2.375) / se))
    assert vs.loc["A", "p"] == pytest.approx(p[0])
    assert vs.loc["A", "p_holm"] == pytest.approx(min(1, 2 * min(p)))  # Holm: smallest p times 2


def test_bayes_probabilities_sum_to_one_and_point_the_right_way():
    t = pd.DataFrame({"joint": [F(80, 100)] * 6, "up": [F(85, 100)] * 6, "same": [F(80, 100)] * 6})
    b = bayes_vs_control(t, "joint").set_index("method")
    assert b.loc["up", "p_better"] > 0.95 and b.loc["same", "p_equiv"] > 0.95
    assert (b[["p_worse", "p_equiv", "p_better"]].sum(axis=1) - 1).abs().max() < 1e-9


def agg_for(datasets, scores):
    rows = []
    for d in datasets:
        for m, v in scores.items():
            rows.append({"row": m, "method": m, "dataset": d, "pattern": "complete",
                         "test_acc|mean": float(v(d)), "test_acc|num": v(d).numerator,
                         "test_acc|den": v(d).denominator})
    return pd.DataFrame(rows)


def test_groups_count_once_and_silence_below_five():
    # two mfeat presets share their samples: one group, their scores averaged
    blocks = group_scores(pd.DataFrame({"a": [F(1, 2), F(1, 4), F(1)]},
                                       index=["mfeat-fou-zer-mor", "mfeat-pix-mor", "x"]))
    assert blocks.loc["mfeat", "a"] == F(3, 8) and len(blocks) == 2
    s = cross_dataset_summary(agg_for(["d1", "d2", "d3", "d4"], {"joint": lambda d: F(8, 10), "a": lambda d: F(9, 10),
                                                                 "b": lambda d: F(7, 10)}), "complete", "test_acc")
    assert not s["verdict"] and "only 4 independent" in s["reason"] and "p_better" not in s["methods"][0]


def test_verdict_with_five_groups():
    ds = [f"d{i}" for i in range(6)]
    s = cross_dataset_summary(agg_for(ds, {"joint": lambda d: F(80, 100), "a": lambda d: F(90, 100),
                                           "b": lambda d: F(70 + int(d[1]), 100)}), "complete", "test_acc")
    assert s["verdict"] and s["n_groups"] == 6 and s["friedman_p"] < 0.05
    a = next(e for e in s["methods"] if e["method"] == "a")
    assert a["mean_rank_exact"] == "1" and a["p_better"] > 0.95 and a["diff_vs_control"] == pytest.approx(0.1)
