"""Mean ranks, Friedman test and Nemenyi CD on a small known table, checked against Demšar's formulas."""
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mmbench.report.ranks import critical_difference_data, friedman_p, nemenyi_cd, nemenyi_q, rank_bootstrap, ranks

# 4 data sets x 3 methods; A always best, B and C swap places once, one tie.
TABLE = pd.DataFrame({"A": [0.9, 0.8, 0.7, 0.95], "B": [0.8, 0.7, 0.65, 0.9], "C": [0.7, 0.75, 0.65, 0.8]},
                     index=["d1", "d2", "d3", "d4"])


def test_ranks_by_hand():
    # d1: A1 B2 C3; d2: A1 C2 B3; d3: A1 B2.5 C2.5; d4: A1 B2 C3 -> A 1, B 2.375, C 2.625
    r = ranks(TABLE)
    assert r.loc["d3"].tolist() == [1.0, 2.5, 2.5]
    assert r.mean().tolist() == [1.0, 2.375, 2.625]


def test_nemenyi_q_matches_demsar_table():
    for k, q in [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (10, 3.164)]:
        assert nemenyi_q(k) == pytest.approx(q, abs=2e-3)


def test_cd_and_friedman_by_hand():
    summary = critical_difference_data(TABLE)
    # CD = q * sqrt(k (k+1) / (6 N)) = 2.343 * sqrt(12 / 24)
    assert summary.cd == pytest.approx(2.343 * math.sqrt(3 * 4 / (6 * 4)), abs=2e-3)
    assert nemenyi_cd(3, 4) == summary.cd
    assert list(summary.mean_ranks.index) == ["A", "B", "C"]
    # Friedman chi2 (Demšar eq.): 12N/(k(k+1)) * (sum R_j^2 - k(k+1)^2/4), ties corrected by scipy
    chi2 = 12 * 4 / (3 * 4) * (1.0 ** 2 + 2.375 ** 2 + 2.625 ** 2 - 3 * 16 / 4)
    assert chi2 == pytest.approx(6.125)
    # scipy divides by the tie correction 1 - sum(t^3 - t) / (N k (k^2 - 1)) = 1 - 6 / 96
    assert summary.friedman_p == pytest.approx(stats.chi2.sf(chi2 / (1 - 6 / 96), 2))
    assert math.isnan(friedman_p(TABLE[["A", "B"]]))


def test_rank_bootstrap_spread_contains_mean():
    spread = rank_bootstrap(TABLE, n_boot=500)
    assert spread.method.tolist() == ["A", "B", "C"]
    assert (spread.rank_lo <= spread.mean_rank).all() and (spread.mean_rank <= spread.rank_hi).all()
    assert spread.set_index("method").loc["A", ["rank_lo", "rank_hi"]].tolist() == [1.0, 1.0]
