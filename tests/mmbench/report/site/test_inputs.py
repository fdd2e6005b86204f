import numpy as np
import pandas as pd

from mmbench.report.frame import results_frame
from mmbench.report.site import inputs
from mmbench.report.site.figures import pareto_front
from mmbench.results_store import ResultsStore

from fake_results import write_fake_results  # tests/ is on sys.path (conftest)


def test_pareto_front_keeps_only_undominated_points():
    cost = np.array([1.0, 1.5, 2.0, 1.2, 3.0])
    acc = np.array([80.0, 85.0, 84.0, 79.0, 90.0])
    # 2.0/84 is beaten by 1.5/85, 1.2/79 by 1.0/80
    assert pareto_front(cost, acc).tolist() == [0, 1, 4]


def test_gap_pairs_probe_and_unimodal_by_seed(tmp_path):
    runs = inputs.ok_runs(results_frame(ResultsStore(write_fake_results(tmp_path)).all_results()))
    gaps = inputs.unimodal_gaps(runs, "alpha")
    # fake data (per seed s): probe x = acc_m + 0.01 s - 0.2, unimodal x = 0.70 + 0.01 s - 0.1, so the gap
    # (alone - probe) is 0.8 - acc_m (arl 0.85: -5, joint 0.80: 0); y: 0.70 - acc_m.
    assert list(gaps.index) == ["arl", "joint"]
    np.testing.assert_allclose(gaps["x"].to_numpy(), [-5.0, 0.0], atol=1e-9)
    np.testing.assert_allclose(gaps["y"].to_numpy(), [-15.0, -10.0], atol=1e-9)


def test_robustness_frame_matched_and_complete_trained(tmp_path):
    runs = inputs.ok_runs(results_frame(ResultsStore(write_fake_results(tmp_path)).all_results()))
    frame = inputs.robustness_frame(runs, "alpha")
    joint = frame[frame.method == "joint"]
    matched = joint[joint.kind == "matched"].set_index("eta").acc
    # complete counts as eta 0 (its fused accuracy); missing-0.3 tested at 0.3, missing-0.5 at 0.5
    assert sorted(matched.index) == [0.0, 0.3, 0.5]
    np.testing.assert_allclose(matched[0.0], 100 * np.mean([0.80, 0.81]))
    np.testing.assert_allclose(matched[0.5], 100 * np.mean([0.80 - 0.05 - 0.05, 0.81 - 0.05 - 0.05]))
    curve = joint[joint.kind == "complete-trained"].set_index("eta").acc
    assert sorted(curve.index) == [0.0, 0.1, 0.3, 0.5, 0.7]


def test_train_eta_parses_rate_patterns_only():
    assert inputs._train_eta("complete") == 0.0
    assert inputs._train_eta("missing-0.3") == 0.3
    assert inputs._train_eta("missing-0.3-0.7") == 0.3
    assert inputs._train_eta("missing-0.5-pix") is None  # one named modality: another curve
    assert inputs._train_eta("dropout") is None


def test_overridden_runs_are_left_out_of_plots():
    df = pd.DataFrame({"status": ["ok", "ok", "failed"], "overrides": ["", "epochs=1", ""]})
    assert len(inputs.ok_runs(df)) == 1


def test_coefficient_traces_per_epoch(tmp_path):
    results = list(ResultsStore(write_fake_results(tmp_path)).all_results())
    traces = inputs.coefficient_traces(results, "alpha", seed=0)
    assert list(traces) == ["arl"]
    np.testing.assert_allclose(traces["arl"]["w_x"], [0.5, 0.6, 0.7])
