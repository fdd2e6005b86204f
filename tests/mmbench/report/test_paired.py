"""Best-or-tied marks: max-T over all pairs on the crossed design; family-wise error, power, seeds, pairing."""
import numpy as np
import pandas as pd

from mmbench.engine.outcomes import pack_correct
from mmbench.report.paired import best_or_tied, cell_seed, holm, max_t_marks, unresolved


def crossed_scores(rng, K, S=3, N=400, seed_sd=0.2, gaps=None):
    """``[K, S, N]`` 0/1 outcomes: shared items, a method x item effect, a per-method seed shift."""
    items = rng.normal(1.5, 1.5, N)
    shift = np.zeros((K, 1, 1)) if gaps is None else np.asarray(gaps, float)[:, None, None]
    logit = items + rng.normal(0, 0.8, (K, 1, N)) + rng.normal(0, seed_sd, (K, S, 1)) + shift
    return (rng.random((K, S, N)) < 1 / (1 + np.exp(-logit))).astype(float)


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 -> 3*0.01=0.03, 2*0.02=0.04, 1*0.04=0.04 (monotone), NaN kept
    assert np.allclose(holm([0.04, 0.01, np.nan, 0.02]), [0.04, 0.03, np.nan, 0.04], equal_nan=True)
    assert holm([0.5, 0.9]).tolist() == [1.0, 1.0]


def test_identical_methods_family_wise_error():
    # 8 identical methods, 3 seeds: marking ANY of them worse is the error; nominal 5% over the cell
    rng = np.random.default_rng(0)
    trials = 60
    errors = sum((~max_t_marks(crossed_scores(rng, 8), seed=t, n_boot=1000, max_boot=1000)["best_or_tied"]).any()
                 for t in range(trials))
    assert errors / trials <= 0.12  # 5% + 2.5 binomial sd; simulate.py measures it with more trials


def test_clearly_worse_method_marked_and_best_kept():
    rng = np.random.default_rng(1)
    marks = max_t_marks(crossed_scores(rng, 4, S=5, gaps=[0.0, 0.0, -1.5, 0.0]), seed=0)
    assert marks["best_or_tied"].tolist() == [True, True, False, True]
    assert marks["p_adj"][2] < 0.05 and marks["n_boot"] >= 10_000


def test_marks_reproducible_from_the_cell_seed():
    rng = np.random.default_rng(2)
    x = crossed_scores(rng, 6)
    a, b = max_t_marks(x, seed=7), max_t_marks(x, seed=7)
    assert np.array_equal(a["p_adj"], b["p_adj"])
    c = max_t_marks(x, seed=8)
    resolved = ~(a["mc_flag"] | c["mc_flag"])
    assert np.array_equal(a["best_or_tied"][resolved], c["best_or_tied"][resolved])
    assert cell_seed("watch", "complete", "test_acc") == cell_seed("watch", "complete", "test_acc")
    assert cell_seed("watch", "complete", "test_acc") != cell_seed("watch", "missing-0.5", "test_acc")


def test_unresolved_band_shrinks_with_replicates():
    assert unresolved(np.array([0.052]), 10_000)[0] and not unresolved(np.array([0.052]), 1_000_000)[0]
    assert not unresolved(np.array([0.2, 0.001]), 10_000).any()


def cell(correct_per_seed, ids="ids"):
    return pd.DataFrame({
        "seed": list(range(len(correct_per_seed))),
        "test_acc": [c.mean() for c in correct_per_seed],
        "outcomes": [{"n": len(c), "test_ids_sha": ids, "mask_seed": s, "test_mask_sha": None,
                      "correct": {"fused": pack_correct(c)}} for s, c in enumerate(correct_per_seed)],
    })


def test_best_or_tied_on_cells():
    rng = np.random.default_rng(3)
    x = crossed_scores(rng, 3, S=3, N=500, gaps=[0.0, 0.0, -2.0]).astype(bool)
    cells = {"best": cell(list(x[0])), "twin": cell(list(x[1])), "worse": cell(list(x[2]))}
    marks, info = best_or_tied(cells, "test_acc", seed=5)
    marks = marks.set_index("method")
    assert not marks.loc["worse", "best_or_tied"] and marks.loc[["best", "twin"], "best_or_tied"].all()
    assert marks["best"].sum() == 1 and marks.loc["worse", "paired_seeds"] == 3 and marks["compared"].all()
    assert info == {"seed": 5, "n_boot": info["n_boot"]} and info["n_boot"] >= 10_000


def test_other_split_is_not_compared_and_not_worse():
    rng = np.random.default_rng(4)
    a = cell([rng.random(300) < 0.9 for _ in range(4)])
    b = cell([rng.random(300) < 0.5 for _ in range(4)])
    c = cell([rng.random(300) < 0.5 for _ in range(4)])
    b.at[0, "outcomes"] = {**b.outcomes[0], "test_ids_sha": "other"}
    marks = best_or_tied({"a": a, "b": b, "c": c}, "test_acc")[0].set_index("method")
    assert not marks.loc["b", "compared"] and np.isnan(marks.loc["b", "p_adj"])
    assert marks.loc["c", "compared"] and not marks.loc["c", "best_or_tied"]


def test_cells_without_outcomes_are_not_compared():
    rng = np.random.default_rng(5)
    a = cell([rng.random(100) < 0.9 for _ in range(2)]).assign(outcomes=None)
    b = cell([rng.random(100) < 0.5 for _ in range(2)])
    marks = best_or_tied({"a": a, "b": b}, "test_acc")[0].set_index("method")
    assert not marks.loc["a", "compared"] and marks.loc["b", "best_or_tied"]  # b alone: nothing beats it
