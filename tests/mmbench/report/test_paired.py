"""Paired two-level bootstrap + Holm: identical methods tie at about the stated rate, a better one is found."""
import numpy as np
import pandas as pd
import pytest

from mmbench.engine.outcomes import pack_correct
from mmbench.report.paired import best_or_tied, holm, paired_bootstrap_p


def simulated_pair(rng, margin, S=3, N=400):
    """Per-seed differences of two methods on shared test samples; B is better by ``margin`` (logit)."""
    difficulty = rng.normal(size=N)  # shared by both methods: what pairing removes
    diffs = []
    for _ in range(S):
        p_a = 1 / (1 + np.exp(-(1.5 - difficulty + rng.normal(0, 0.5, N) + rng.normal(0, 0.05))))
        p_b = 1 / (1 + np.exp(-(1.5 + margin - difficulty + rng.normal(0, 0.5, N) + rng.normal(0, 0.05))))
        diffs.append((rng.random(N) < p_b).astype(float) - (rng.random(N) < p_a))
    return diffs


def test_identical_methods_rejected_at_about_nominal_rate():
    rng = np.random.default_rng(0)
    trials = 200
    rejections = sum(paired_bootstrap_p(simulated_pair(rng, 0.0), n_boot=500, seed=t) < 0.05 for t in range(trials))
    # nominal 5%; binomial sd over 200 trials is 1.5 points
    assert rejections / trials <= 0.09


def test_better_method_found_better():
    rng = np.random.default_rng(1)
    # a logit margin of 0.6 is about +8 accuracy points at 80%
    found = sum(paired_bootstrap_p(simulated_pair(rng, 0.6), n_boot=500, seed=t) < 0.05 for t in range(20))
    assert found >= 19


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01=0.03, 2*0.02=0.04, 1*0.04=0.04 (monotone), NaN kept
    assert np.allclose(holm([0.04, 0.01, np.nan, 0.02]), [0.04, 0.03, np.nan, 0.04], equal_nan=True)
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def cell(correct_per_seed, acc=None):
    return pd.DataFrame({
        "seed": list(range(len(correct_per_seed))),
        "test_acc": [c.mean() for c in correct_per_seed],
        "outcomes": [{"n": len(c), "test_ids_sha": "ids", "mask_seed": s, "test_mask_sha": None,
                      "correct": {"fused": pack_correct(c)}} for s, c in enumerate(correct_per_seed)],
    })


def test_best_or_tied_marks():
    rng = np.random.default_rng(3)
    N = 500
    truth = [rng.random(N) < 0.85 for _ in range(3)]
    flip = lambda c, rate: c ^ (rng.random(N) < rate)  # noqa: E731
    cells = {
        "best": cell(truth),
        "twin": cell([flip(c, 0.02) for c in truth]),  # differs on ~2% of samples both ways
        "worse": cell([c & (rng.random(N) < 0.8) for c in truth]),  # loses ~17 points
    }
    marks = best_or_tied(cells, "test_acc").set_index("method")
    assert marks.loc["worse", "best_or_tied"] == False  # noqa: E712
    assert marks.loc["twin", "best_or_tied"] or marks.loc["best", "best"]
    assert marks["best"].sum() == 1 and marks.loc[marks["best"]].index[0] in ("best", "twin")
    assert marks.loc["worse", "p_holm"] < 0.05 and marks.loc["worse", "paired_seeds"] == 3


def test_different_splits_are_not_paired():
    rng = np.random.default_rng(4)
    a = cell([rng.random(100) < 0.9 for _ in range(2)])
    b = cell([rng.random(100) < 0.5 for _ in range(2)])
    b.at[0, "outcomes"] = {**b.outcomes[0], "test_ids_sha": "other"}
    marks = best_or_tied({"a": a, "b": b}, "test_acc").set_index("method")
    assert np.isnan(marks.loc["b", "p"]) and marks.loc["b", "paired_seeds"] == 0
    assert not marks.loc["b", "best_or_tied"]  # untestable is not "tied"


def test_nothing_marked_when_best_lacks_outcomes():
    rng = np.random.default_rng(5)
    a = cell([rng.random(100) < 0.9 for _ in range(2)]).assign(outcomes=None)
    b = cell([rng.random(100) < 0.5 for _ in range(2)])
    marks = best_or_tied({"a": a, "b": b}, "test_acc").set_index("method")
    assert marks.loc["a", "best"] and not marks["best_or_tied"].any()


def test_identical_methods_all_tied_with_the_selected_best():
    # k = 5 identical methods: the best is picked by its mean (selection favours a lucky one), the other
    # four are tested against it with Holm. Marking any as worse should stay near the 5% family-wise rate.
    rng = np.random.default_rng(7)
    N, trials, any_marked = 400, 40, 0
    for _ in range(trials):
        difficulty = rng.normal(size=N)
        cells = {}
        for m in range(5):
            runs = []
            for _ in range(3):
                p = 1 / (1 + np.exp(-(1.5 - difficulty + rng.normal(0, 0.5, N) + rng.normal(0, 0.05))))
                runs.append(rng.random(N) < p)
            cells[f"m{m}"] = cell(runs)
        any_marked += not best_or_tied(cells, "test_acc", n_boot=300)["best_or_tied"].all()
    assert any_marked / trials <= 0.125
