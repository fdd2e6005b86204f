"""The data-set family suites: they load, and carry the papers' settings into each run."""
from __future__ import annotations

from mmbench.config import resolve
from mmbench.methods import get_method, list_methods
from mmbench.suite import load_suite


def test_audio_visual_suite_has_every_method_and_the_papers_settings():
    suite = load_suite("audio-visual")
    assert suite.datasets == ["crema-d", "kinetics-sounds", "ave", "vggsound"]
    assert set(suite.methods) == set(list_methods("*"))
    by_method = {s.method: s for s in suite.specs() if s.pattern == "complete" and s.seed == 0
                 and s.dataset == "crema-d"}
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


def test_audio_visual_suite_carries_each_data_set_s_published_values():
    suite = load_suite("audio-visual")
    spec = {(s.method, s.dataset): s for s in suite.specs() if s.pattern == "complete" and s.seed == 0}

    def hp(method, dataset):
        return resolve(spec[(method, dataset)], get_method(method))[1]

    assert (hp("arl", "kinetics-sounds")["gamma"], hp("arl", "kinetics-sounds")["temperature"]) == (3.0, 4.0)
    assert (hp("arl", "ave")["gamma"], hp("arl", "vggsound")["gamma"]) == (5.0, 1.0)
    assert (hp("dgl", "kinetics-sounds")["alpha"], hp("dgl", "vggsound")["alpha"]) == (3.0, 2.0)
    assert hp("ogm-ge", "vggsound")["alpha"] == 0.1 and hp("ogm-ge", "ave")["alpha"] == 0.3  # no AVE value: default
