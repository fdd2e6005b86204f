"""The interleaved step-time benchmark: ratios against joint in the same round, untrained teachers."""
import pandas as pd

from mmbench.cli import main
from mmbench.steptime import COLUMNS, markdown, measure


def test_ratios_are_against_joint_of_the_same_round_and_teachers_are_not_trained(tmp_path):
    df = measure(["umt", "arl"], ["synthetic"], epochs=1, rounds=2, out=str(tmp_path))
    assert list(df.columns) == COLUMNS
    assert len(df) == 2 * 3  # joint is always timed first, as the reference of its round
    assert list(df[df["round"] == 0].method) == ["joint", "umt", "arl"]
    for _, g in df.groupby("round"):
        joint_ms = float(g[g.method == "joint"].step_ms.iloc[0])
        assert (g.joint_step_ms == joint_ms).all()
        pd.testing.assert_series_equal(g.ratio, g.step_ms / joint_ms, check_names=False)
    models = tmp_path / "cache" / "models"  # where a trained teacher would be cached
    assert not models.exists() or not any(models.iterdir())
    md = markdown(df, epochs=1, machine="test machine")
    assert "## synthetic" in md and "| joint" in md and "1.00x" in md and "test machine" in md


def test_steps_command_writes_both_files(tmp_path, capsys):
    assert main(["steps", "--methods", "joint", "--datasets", "synthetic", "--epochs", "1", "--rounds", "1",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "STEPTIME.md").read_text().startswith("# Step time")
    assert pd.read_csv(tmp_path / "steptime.csv").method.tolist() == ["joint"]
