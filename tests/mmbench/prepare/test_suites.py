"""The data-set family suites: they load, and carry the papers' settings into each run."""
from __future__ import annotations

from mmbench.config import resolve
from mmbench.methods import get_method, list_methods
from mmbench.suite import load_suite


def test_audio_visual_suite_has_every_method_and_the_papers_settings():
    suite = load_suite("audio-visual")
    assert suite.datasets == ["crema-d"] and set(suite.methods) == set(list_methods("*"))
    by_method = {s.method: s for s in suite.specs() if s.pattern == "complete" and s.seed == 0}
    train, hp = resolve(by_method["arl"], get_method("arl"))
    papers = (100, 1e-3, "step", 70, 40)
    assert (train["epochs"], train["lr"], train["schedule"], train["step_size"], train["clip_grad"]) == papers
    assert (hp["gamma"], hp["temperature"]) == (4.0, 8.0)
    train, hp = resolve(by_method["ogm-ge"], get_method("ogm-ge"))
    assert hp["alpha"] == 0.8 and train["clip_grad"] is None  # clipping is ARL's and DGL's recipe only
    assert resolve(by_method["dgl"], get_method("dgl"))[1]["alpha"] == 4.0
    assert resolve(by_method["pmr"], get_method("pmr"))[1]["alpha"] == 2.0


def test_crema_d_values_do_not_leak_to_other_data_sets():
    from mmbench.config import RunSpec

    assert resolve(RunSpec("arl", "mfeat-pix-mor"), get_method("arl"))[1]["gamma"] == 1.0


def test_sentiment_suite_loads():
    assert load_suite("sentiment").datasets == ["cmu-mosei", "cmu-mosei-7"]
