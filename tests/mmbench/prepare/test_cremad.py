"""CREMA-D from disk: both layouts through ``prepare`` and ``run`` on the CLI, splits, skipped files, errors."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from prepare_fixtures import (CREMAD_CLASSES, SMALL_AV, cremad_clips, write_cremad_distribution, write_cremad_papers,
                              write_lists)

from mmbench.cli import main
from mmbench.data import load_dataset
from mmbench.prepare.cache import find_cache
from mmbench.prepare.cremad import read_list

CLIPS = cremad_clips()  # 4 speakers x 2 sentences x 6 emotions = 48 clips
SHORT, CORRUPT, NO_FRAMES = CLIPS[3], CLIPS[5], CLIPS[7]


@pytest.fixture(scope="module")
def papers_root(tmp_path_factory) -> Path:
    """The papers' layout with one 0.3 s clip, one corrupt wav and one clip without frames."""
    root = tmp_path_factory.mktemp("cremad-papers")
    write_cremad_papers(root, CLIPS, short=[SHORT])
    write_lists(root, CLIPS)
    (root / "AudioWAV" / f"{CORRUPT}.wav").write_bytes(b"RIFF but not really a wav file")
    shutil.rmtree(root / "Image-01-FPS" / NO_FRAMES)
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_papers_layout_prepare_then_arl_run(papers_root, cache, tmp_path, capsys):
    assert main(["prepare", "crema-d", "--src", str(papers_root), "--workers", "2", "--set", *SMALL_AV]) == 0
    report = capsys.readouterr().out
    assert "46 of 48 items written, 2 skipped" in report
    assert "skipped, unreadable audio: 1" in report and f"{CORRUPT}.wav" in report
    assert "skipped, missing frames: 1" in report and NO_FRAMES in report

    data = load_dataset("crema-d")
    assert [(s.name, s.shape) for s in data.specs] == [("audio", (1, 33, 251)), ("visual", (3, 32, 32))]
    assert data.class_names == CREMAD_CLASSES and data.num_classes == 6
    lists = {part: read_list(papers_root / f"{part}.csv") for part in ("train", "test")}
    ids = json.loads((find_cache("crema-d") / "items.json").read_text())
    split_ids = {k: {ids[i]["id"] for i in v} for k, v in data.split.items()}
    # the published-style split: test exactly the test list, train + val the train list, minus skipped clips
    assert split_ids["test"] == set(lists["test"]) - {CORRUPT, NO_FRAMES}
    assert split_ids["train"] | split_ids["val"] == set(lists["train"]) - {CORRUPT, NO_FRAMES}
    assert len(data.split["val"]) == round(len(split_ids["train"] | split_ids["val"]) * 744 / 6698)
    for i, row in enumerate(ids):  # labels are the list's
        assert CREMAD_CLASSES[data.labels[i]] == row["id"].split("_")[2]
    # the 0.3 s clip was tiled, not dropped: its spectrogram repeats with the clip's period in frames
    short = data.arrays["audio"][[r["id"] for r in ids].index(SHORT)]
    assert np.isfinite(short).all() and short.std() > 0

    out = tmp_path / "results"
    assert main(["run", "--method", "arl", "--dataset", "crema-d", "--set", "epochs=1", "--out", str(out)]) == 0
    assert "arl/crema-d/complete/seed0[epochs=1]: ok" in capsys.readouterr().out


def test_speaker_split_is_speaker_disjoint(papers_root, cache):
    main(["prepare", "crema-d", "--src", str(papers_root), "--workers", "1", "--set", *SMALL_AV])
    data = load_dataset("crema-d-speaker")
    ids = [r["id"] for r in json.loads((find_cache("crema-d") / "items.json").read_text())]
    speakers = {k: {ids[i][:4] for i in v} for k, v in data.split.items()}
    assert speakers["train"] and speakers["val"] and speakers["test"]
    assert not (speakers["train"] & speakers["test"]) and not (speakers["val"] & speakers["test"])
    assert not (speakers["train"] & speakers["val"])
    assert sum(len(v) for v in data.split.values()) == 46  # every prepared clip, no skipped one


def test_distribution_layout_decodes_video_at_fps(tmp_path, cache, capsys):
    root = tmp_path / "CREMA-D"
    write_cremad_distribution(root, CLIPS[:12])
    write_lists(root, CLIPS[:12], test_every=3)
    (root / "VideoFlash" / f"{CLIPS[2]}.flv").write_bytes(b"FLV garbage")
    assert main(["prepare", "crema-d", "--src", str(root), "--workers", "1", "--set", *SMALL_AV]) == 0
    out = capsys.readouterr().out
    assert "11 of 12 items written, 1 skipped" in out and "skipped, unreadable video: 1" in out
    data = load_dataset("crema-d")
    ids = [r["id"] for r in json.loads((find_cache("crema-d") / "items.json").read_text())]
    visual = data.arrays["visual"][ids.index("1001_DFA_HAP_XX")]  # colour (40 * 1, 255 - 40, 128) in the video
    mean_rgb = visual.reshape(3, -1).mean(1) * np.array([0.229, 0.224, 0.225]) + np.array([0.485, 0.456, 0.406])
    assert np.allclose(mean_rgb * 255, [40, 215, 128], atol=12)


def test_without_lists_only_the_speaker_split_works(tmp_path, cache, capsys):
    root = tmp_path / "nolists"
    write_cremad_papers(root, CLIPS[::4], frames=1)  # 3 clips of each of the 4 speakers
    assert main(["prepare", "crema-d", "--src", str(root), "--workers", "1", "--set", "size=16"]) == 0
    capsys.readouterr()
    with pytest.raises(ValueError, match="--set lists=DIR"):
        load_dataset("crema-d")
    data = load_dataset("crema-d-speaker")
    assert sum(len(v) for v in data.split.values()) == 12


def test_errors_name_the_file(tmp_path, cache, capsys):
    assert main(["prepare", "crema-d", "--src", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err

    root = tmp_path / "bad"
    write_cremad_papers(root, CLIPS[:6], frames=1)
    assert main(["prepare", "crema-d", "--src", str(root / "Image-01-FPS")]) == 2  # wrong folder
    assert "AudioWAV" in capsys.readouterr().err

    write_lists(root, CLIPS[:6])
    (root / "test.csv").unlink()
    assert main(["prepare", "crema-d", "--src", str(root)]) == 2
    assert str(root / "test.csv") in capsys.readouterr().err

    write_lists(root, CLIPS[:6])
    (root / "train.csv").write_text(f"{CLIPS[1]},HAP\n{CLIPS[2]},JOY\n")
    assert main(["prepare", "crema-d", "--src", str(root)]) == 2
    err = capsys.readouterr().err
    assert f"{root / 'train.csv'}:2" in err and "'JOY'" in err and "NEU HAP SAD FEA DIS ANG" in err

    assert main(["prepare", "crema-d", "--src", str(root), "--set", "n_mels=64"]) == 2
    assert "unknown setting 'n_mels'" in capsys.readouterr().err


def test_missing_cache_says_to_prepare(cache):
    expected = r"python -m mmbench prepare crema-d --src DIR.*crema-d-<settings hash>"
    with pytest.raises(FileNotFoundError, match=expected):
        load_dataset("crema-d-speaker")


def test_papers_shapes_train_through_the_harness_encoders():
    """Until paper-scale ResNet-18s land, the harness's image CNN takes the default CREMA-D shapes."""
    import torch

    from mmbench.models.model import MultimodalModel
    from mmbench.prepare.cremad import CremaD

    specs = CremaD().modalities(CremaD.defaults)  # audio [1, 257, 188], visual [3, 224, 224]
    model = MultimodalModel(specs, num_classes=6)
    feats = [model.encoders[s.name](torch.randn(2, *s.shape)) for s in specs]
    assert [tuple(f.shape) for f in feats] == [(2, 64), (2, 64)]


def test_two_commands_prepare_then_the_audio_visual_suite(papers_root, cache, tmp_path, capsys):
    """The issue's promise: with CREMA-D on disk, `prepare` then `all --suite audio-visual`."""
    assert main(["prepare", "crema-d", "--src", str(papers_root), "--workers", "1", "--set", *SMALL_AV]) == 0
    out = tmp_path / "results"
    assert main(["all", "--suite", "audio-visual", "--datasets", "crema-d", "--methods", "joint",
                 "--patterns", "complete", "--seeds", "0",
                 "--set", "epochs=1", "--workers", "1", "--out", str(out)]) == 0
    assert "ok 1" in capsys.readouterr().out
    result = json.loads(next((out / "runs").glob("*.json")).read_text())
    assert result["status"] == "ok" and result["spec"]["dataset"] == "crema-d"
    assert result["config"]["train"]["lr"] == 1e-3 and result["config"]["train"]["schedule"] == "step"
