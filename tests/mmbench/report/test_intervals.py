"""The crossed-design interval of a cell: exact ANOVA parts, coverage, copies of a run add nothing."""
import numpy as np
import pandas as pd
import pytest

from mmbench.engine.outcomes import pack_correct
from mmbench.report.intervals import (cell_interval, crossed_bootstrap, crossed_interval, interval_width_ratio,
                                      sample_scores, variance_parts)


def outcome_record(correct, extra=None, ids="ids"):
    rec = {"n": len(correct), "test_ids_sha": ids, "mask_seed": 0, "test_mask_sha": None,
           "correct": {"fused": pack_correct(correct)}}
    rec["correct"].update({k: pack_correct(v) for k, v in (extra or {}).items()})
    return rec


def crossed_table(rng, S, N=300, seed_sd=0.3, item_sd=1.5, base=1.4):
    """``[S, N]`` 0/1 outcomes of one method: shared test samples (item logits), a per-seed shift."""
    items = rng.normal(base, item_sd, N)
    shift = rng.normal(0, seed_sd, (S, 1))
    return (rng.random((S, N)) < 1 / (1 + np.exp(-(items + shift)))).astype(float)


def test_variance_parts_exact_without_residual():
    # x = a_s + b_n exactly: MS_resid = 0 and Var(mean) = var(a)/S + var(b)/N (ddof 1 each)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=4), rng.normal(size=50)
    parts = variance_parts(a[:, None] + b[None, :])
    assert parts["var"] == pytest.approx(a.var(ddof=1) / 4 + b.var(ddof=1) / 50)
    assert parts["seed"] == pytest.approx(a.var(ddof=1) / 4)
    assert 3 <= parts["df"] <= 3 + 49  # Satterthwaite lies between the parts' own df


def test_copies_of_one_run_do_not_narrow_the_interval():
    # the check: one run passed as k identical seeds learnt nothing new
    rng = np.random.default_rng(1)
    one = (rng.random((1, 400)) < 0.8).astype(float)
    widths = [np.ptp(crossed_interval(np.repeat(one, k, axis=0))) for k in (1, 3, 10, 30)]
    assert max(widths) == pytest.approx(min(widths), rel=0.01)


def test_interval_covers_the_population_accuracy():
    # truth: the mean over the item population and the seed distribution (numerically integrated)
    rng = np.random.default_rng(2)
    z = np.random.default_rng(99).normal(size=(400_000, 2))
    truth = float(np.mean(1 / (1 + np.exp(-(1.4 + 1.5 * z[:, 0] + 0.3 * z[:, 1])))))
    for S in (3, 10):
        hits = np.mean([lo <= truth <= hi for lo, hi in (crossed_interval(crossed_table(rng, S)) for _ in range(300))])
        assert 0.91 <= hits <= 0.99, (S, hits)


def test_crossed_bootstrap_shares_the_sample_draw():
    # identical seeds: one sample draw per replicate for all of them, so copies do not narrow it
    rng = np.random.default_rng(3)
    one = (rng.random((1, 300)) < 0.7).astype(float)
    w1 = np.ptp(np.percentile(crossed_bootstrap(one, 4000, 0), [2.5, 97.5]))
    w10 = np.ptp(np.percentile(crossed_bootstrap(np.repeat(one, 10, axis=0), 4000, 0), [2.5, 97.5]))
    assert w10 == pytest.approx(w1, rel=0.1)
    ratios = interval_width_ratio([crossed_table(rng, 5) for _ in range(5)], n_boot=2000)
    assert np.median(ratios) >= 0.85 and np.all(ratios > 0.6)  # the issue: median width ratio >= 0.85


def test_cell_interval_levels():
    rng = np.random.default_rng(4)
    with_outcomes = pd.DataFrame({"seed": [0, 1], "test_acc": [0.8, 0.82],
                                  "outcomes": [outcome_record(rng.random(100) < 0.8) for _ in range(2)]})
    ci = cell_interval(with_outcomes, "test_acc")
    assert ci["level"] == "seeds+samples" and ci["n"] == 2 and ci["lo"] < ci["hi"]
    assert cell_interval(with_outcomes.iloc[:1], "test_acc")["level"] == "samples"  # no seed variance in it
    old = with_outcomes.assign(outcomes=[None, with_outcomes.outcomes[1]])
    assert cell_interval(old, "test_acc")["level"] == "seeds"
    assert cell_interval(old.iloc[:1], "test_acc")["level"] == "none"
    other = outcome_record(rng.random(100) < 0.8, ids="x")
    other_split = with_outcomes.assign(outcomes=[with_outcomes.outcomes[0], other])
    assert cell_interval(other_split, "test_acc")["level"] == "seeds"  # not one shared test set


def test_subset_mean_score_is_the_mean_over_subsets():
    a, b = np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool)
    rec = outcome_record(a, {"subset:x": a, "subset:y": b})
    assert sample_scores(rec, "subset_mean").tolist() == [1.0, 0.5, 0.5, 0.0]
    assert sample_scores(None, "test_acc") is None
    assert sample_scores(rec, "masked_test_acc") is None
