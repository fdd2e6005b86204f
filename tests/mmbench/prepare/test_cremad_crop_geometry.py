"""CREMA-D's ``crop_geometry`` / ``frame_size`` settings through ``prepare``: the original frame size
recorded in the cache and handed to the training augmentation, a clip of another size skipped and
named, ``stored`` keeping the crop on the stored frame, bad values refused before any work."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers

pytest.importorskip("soundfile", reason="soundfile (the audio extra) reads the fixture wavs")
pytest.importorskip("soxr", reason="soxr (the audio extra) resamples the fixture wavs")
pytest.importorskip("PIL", reason="Pillow (the video extra) reads the fixture frames")

from mmbench.cli import main  # noqa: E402
from mmbench.data import load_dataset  # noqa: E402
from mmbench.prepare.cache import find_cache  # noqa: E402
from mmbench.prepare.cremad import CremaD  # noqa: E402

CLIPS = cremad_clips(sentences=("DFA",))  # 4 speakers x 6 emotions = 24 clips, 48 x 48 frames
WIDE = CLIPS[-1]  # its frame is replaced by a 64 x 48 one (not the first listed clip, whose size "auto" takes)


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    from PIL import Image

    root = tmp_path_factory.mktemp("cremad-geometry")
    write_cremad_papers(root, CLIPS, frames=1)
    folder = root / "Image-01-FPS" / WIDE
    for frame in folder.iterdir():
        Image.fromarray(np.full((48, 64, 3), 90, np.uint8)).save(frame)
    return root


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def cache_meta() -> dict:
    return json.loads((find_cache("crema-d") / "meta.json").read_text())


def prepare(root: Path, *settings: str) -> int:
    return main(["prepare", "crema-d", "--src", str(root), "--workers", "1", "--set", *SMALL_AV, *settings])


def test_original_geometry_is_the_default_and_reaches_the_augmentation(root, cache, capsys):
    from mmbench.frame_crop import OriginalGeometryCrop
    from mmbench.streaming import stream_split

    assert prepare(root) == 0
    out = capsys.readouterr().out
    assert "23 of 24 items written, 1 skipped" in out and "frame size" in out and WIDE in out
    data = load_dataset("crema-d-speaker")
    assert data.meta["crop_frame_size"] == {"visual": (48, 48)}  # frame_size=auto: the first clip's frame
    assert cache_meta()["notes"]["frame_size"] == "48x48"
    pytest.importorskip("torchvision", reason="the augmentation needs torchvision")
    train = stream_split(data, "train", augment=True)
    crop = train.samples.transforms["visual"].transform.transforms[0]
    assert isinstance(crop, OriginalGeometryCrop) and crop.frame_size == (48, 48) and crop.out_size == (32, 32)


def test_a_declared_size_is_checked_and_stored_keeps_the_crop_on_the_stored_frame(root, cache, capsys):
    assert prepare(root, "frame_size=64x48") == 0
    out = capsys.readouterr().out
    assert "1 of 24 items written, 23 skipped" in out and "48x48, but the training crop is drawn on 64x48" in out
    assert CremaD().crop_frame_size(cache_meta()) == {"visual": (48, 64)}  # too few clips for a split

    assert prepare(root, "crop_geometry=stored") == 0
    assert "24 of 24 items written" in capsys.readouterr().out  # no size check: the crop ignores the original
    assert load_dataset("crema-d-speaker").meta["crop_frame_size"] == {}


@pytest.mark.parametrize("setting, named", [("crop_geometry=squashed", "crop_geometry='squashed'"),
                                            ("frame_size=480", "frame_size='480'")])
def test_bad_values_are_refused_before_any_work(root, cache, capsys, setting, named):
    assert prepare(root, setting) == 2
    assert named in capsys.readouterr().err
    assert not list(cache.glob("crema-d-*/visual.npy"))
