"""Segmentation paper-scale step time: every method is timed against joint in the same round, the
table says what was timed, and the CLI writes its own files."""
import pandas as pd

from mmbench.segmentation import steptime_paper as seg


def test_rounds_time_every_method_against_joint_in_the_same_round(tmp_path):
    scale = seg.SegmentationPaperScale(height=64, width=64, batch=2, rounds=2, warmup=0, steps=1, device="cpu")
    lines = []
    df = seg.measure(["unimodal", "joint"], scale, progress=lines.append)
    assert list(df.method) == ["joint", "unimodal", "unimodal", "joint"]  # odd rounds reversed, joint first once
    joint = df[df.method == "joint"]
    assert (joint.ratio == 1.0).all()
    for r, g in df.groupby("round"):
        base = g[g.method == "joint"].step_ms.iloc[0]
        assert (g.joint_step_ms == base).all() and (abs(g.ratio - g.step_ms / base) < 1e-12).all()
    assert (df.step_ms > 0).all() and len(lines) == 4
    paths = seg.write(df, str(tmp_path), scale)
    text = paths["md"].read_text()
    assert "3x64x64" in text and "| unimodal" in text and "process CPU time" in text
    assert pd.read_csv(paths["csv"]).shape[0] == 4


def test_a_method_with_a_teacher_is_timed_with_its_teacher_and_its_whole_loss():
    scale = seg.SegmentationPaperScale(height=64, width=64, batch=2, rounds=1, warmup=0, steps=1, device="cpu")
    m, _ = seg.build("mmanet", seg.resolve_device("cpu"))
    assert m.teacher is not None and m.weak is not None  # MAD and MAR both in the timed step
    assert seg.time_steps("mmanet", scale)["step_ms"] > 0
