"""The design simulation: the fit reproduces its moments, and a small run of it checks the leaderboard's
intervals and marks (the full run, `python -m mmbench simulate`, writes results/SIMULATION.md)."""
import numpy as np
import pytest

from mmbench.report.simulate import QUICK, Calibration, calibrate, fit, moments, run_simulation, simulate_outcomes


def test_fit_reproduces_the_moments():
    mu, item_var, method_item_var = fit(0.75, 0.6, 0.5)
    cal = Calibration("x", 3000, 0.75, 0.6, 0.5, 0.1, 1.0, mu, item_var, method_item_var)
    m = moments(simulate_outcomes(np.random.default_rng(0), cal, 3, 3, 0.0))
    assert m["accuracy"] == pytest.approx(0.75, abs=0.02)
    assert m["r_seeds"] == pytest.approx(0.6, abs=0.04) and m["r_methods"] == pytest.approx(0.5, abs=0.04)


def test_seed_spread_and_gap_are_in_points():
    cal = Calibration("x", 500, 0.75, 0.6, 0.5, 0.1, 1.0, *fit(0.75, 0.6, 0.5))
    var = cal.seed_var(3.7)
    rng = np.random.default_rng(1)
    spread = [100 * simulate_outcomes(rng, cal, 1, 30, var)[0].mean(axis=1).std() for _ in range(20)]
    assert np.mean(spread) == pytest.approx(3.7, rel=0.2)  # plus a little per-seed sample noise
    shift = cal.shift_for_gap(4.0, var)
    assert cal.truth(var, shift) - cal.truth(var) == pytest.approx(0.04, abs=1e-6)


def test_calibrate_reads_runs(tmp_path):
    from tests.mmbench.report.test_leaderboard_statistics import run
    results = [run(m, "d1", s, p) for m, p in (("a", 0.8), ("b", 0.7)) for s in range(3)]
    (cal,) = calibrate(results)
    assert cal.dataset == "d1" and cal.n_samples == 300 and 0.7 < cal.accuracy < 0.8


def test_quick_simulation_meets_the_targets():
    # the fast version of the full run, calibrated like the committed watch runs (73% accuracy, N = 773)
    cal = Calibration("watch-like", 773, 0.716, 0.57, 0.51, 0.13, 3.5, *fit(0.716, 0.57, 0.51))
    sim = run_simulation([cal], QUICK, seed=0)
    cov = [c["coverage"] for c in sim["coverage"]]
    assert min(cov) >= 0.88 and np.mean(cov) >= 0.93  # 150 trials per row: sd 1.8 points
    assert max(r["fwer"] for r in sim["fwer"]) <= 0.15  # 40 trials per row; the full run states 5% +- 1
    assert all(r["fwer"] == 0 or r["fwer"] <= 0.15 for r in sim["power"])
    assert {(r["methods"], r["gap"]) for r in sim["power"]} == {(8, 2.0), (8, 4.0), (22, 2.0), (22, 4.0)}
