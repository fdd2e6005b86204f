"""CMU-MOSEI from its word-aligned feature pickles (MulT and MMSA forms): shapes, labels, splits, errors."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from prepare_fixtures import write_mosei

from mmbench.cli import main
from mmbench.data import load_dataset


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_mult_pickle_binary_then_run(tmp_path, cache, capsys):
    scores = write_mosei(tmp_path / "MOSEI" / "mosei_senti_data.pkl")
    assert main(["prepare", "cmu-mosei", "--src", str(tmp_path / "MOSEI")]) == 0
    assert "62 of 62 items written, 0 skipped" in capsys.readouterr().out
    data = load_dataset("cmu-mosei")
    assert [(s.name, s.kind, s.shape) for s in data.specs] == [
        ("text", "series", (300, 50)), ("audio", "series", (74, 50)), ("vision", "series", (35, 50))]
    assert {k: len(v) for k, v in data.split.items()} == {"train": 40, "val": 10, "test": 12}
    expected = np.concatenate([scores[p] >= 0 for p in ("train", "valid", "test")]).astype(np.int64)
    assert np.array_equal(data.labels, expected) and data.class_names == ["negative", "positive"]
    assert np.isfinite(data.arrays["audio"]).all() and data.arrays["audio"][0, :3, 0].tolist() == [0, 0, 0]
    # the features are stored [dims, time]: each row is the pickle's [time, dims] transposed
    with open(tmp_path / "MOSEI" / "mosei_senti_data.pkl", "rb") as handle:
        raw = pickle.load(handle)
    assert np.array_equal(data.arrays["vision"][41], raw["valid"]["vision"][1].T)
    assert main(["run", "--method", "joint", "--dataset", "cmu-mosei", "--set", "epochs=1",
                 "--out", str(tmp_path / "out")]) == 0


def test_mmsa_pickle_seven_classes_and_non0(tmp_path, cache, capsys):
    scores = write_mosei(tmp_path / "aligned_50.pkl", mmsa=True)
    assert main(["prepare", "cmu-mosei-7", "--src", str(tmp_path / "aligned_50.pkl")]) == 0
    data = load_dataset("cmu-mosei-7")
    expected = np.concatenate([np.round(np.clip(scores[p], -3, 3)) + 3 for p in ("train", "valid", "test")])
    assert data.num_classes == 7 and np.array_equal(data.labels, expected.astype(np.int64))

    assert main(["prepare", "cmu-mosei", "--src", str(tmp_path / "aligned_50.pkl"), "--set", "labels=binary-non0"]) == 0
    out = capsys.readouterr().out
    n_zero = sum(int((s == 0).sum()) for s in scores.values())
    assert f"skipped, neutral score (labels=binary-non0): {n_zero}" in out
    data = load_dataset("cmu-mosei")
    kept = np.concatenate([data.split[k] for k in ("train", "val", "test")])
    assert kept.size == 62 - n_zero


def test_errors_name_the_file(tmp_path, cache, capsys):
    assert main(["prepare", "cmu-mosei", "--src", str(tmp_path)]) == 2
    assert "mosei_senti_data.pkl" in capsys.readouterr().err
    write_mosei(tmp_path / "mosei_senti_data.pkl", seq=20)
    assert main(["prepare", "cmu-mosei", "--src", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "mosei_senti_data.pkl" in err and "expected [40, 50, 300]" in err
    assert main(["prepare", "cmu-mosei", "--src", str(tmp_path), "--set", "labels=3class"]) == 2
    assert "binary, binary-non0, 7class" in capsys.readouterr().err
