"""The prepare framework: resume after an interruption, settings hash -> cache folder, fingerprint."""
from __future__ import annotations

import json

import numpy as np
import pytest
from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

from mmbench.cli import main
from mmbench.data import load_dataset
from mmbench.prepare.cache import STATUS_DONE, STATUS_PENDING, cache_fingerprint, find_cache
from mmbench.prepare.run import prepare

CLIPS = cremad_clips(speakers=(1001, 1002, 1003), sentences=("DFA",))  # 18 clips
SETTINGS = dict(s.split("=") for s in SMALL_AV)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    write_cremad_papers(src, CLIPS, frames=1)
    write_lists(src, CLIPS)
    return src


class Interrupt(KeyboardInterrupt):
    pass


def _stop_after(k):
    def hook(processed):
        if processed == k:
            raise Interrupt

    return hook


def test_interrupted_prepare_resumes_where_it_stopped(root):
    with pytest.raises(Interrupt):
        prepare("crema-d", root, SETTINGS, workers=1, show_progress=False, on_item=_stop_after(5))
    with pytest.raises(FileNotFoundError, match="incomplete"):
        find_cache("crema-d")
    folder = next(p for p in root.parent.joinpath("cache").iterdir() if p.is_dir())
    status = np.load(folder / "status.npy")
    assert (status == STATUS_DONE).sum() == 5 and (status == STATUS_PENDING).sum() == len(CLIPS) - 5
    first_rows = np.load(folder / "audio.npy")[status == STATUS_DONE].copy()

    report = prepare("crema-d", root, SETTINGS, workers=2, show_progress=False)
    assert report.processed == len(CLIPS) - 5 and report.done == len(CLIPS) and report.folder == folder
    # the rows written before the interruption are kept, not recomputed differently
    assert np.array_equal(np.load(folder / "audio.npy")[status == STATUS_DONE], first_rows)
    fresh = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False, force=True)
    assert fresh.fingerprint == report.fingerprint  # resumed == prepared in one go, bit for bit


def test_same_settings_reuse_changed_setting_makes_a_new_cache(root, capsys):
    args = ["prepare", "crema-d", "--src", str(root), "--workers", "1", "--set", *SMALL_AV]
    assert main(args) == 0
    first = find_cache("crema-d")
    fp_first = cache_fingerprint("crema-d")
    assert main(args) == 0
    assert "cache up to date" in capsys.readouterr().out and find_cache("crema-d") == first

    assert main(args[:-1] + ["size=16"]) == 0  # one setting changed
    second = find_cache("crema-d")
    assert second != first and first.exists()
    settings = json.loads((second / "settings.json").read_text())
    assert settings["settings"]["size"] == 16 and second.name == f"crema-d-{settings['hash']}"
    assert load_dataset("crema-d").arrays["visual"].shape[1:] == (3, 16, 16)
    assert cache_fingerprint("crema-d-speaker") != fp_first
    assert cache_fingerprint("crema-d").startswith(settings["hash"])
    assert cache_fingerprint("watch") is None  # not a prepared data set


def test_unknown_data_set_lists_the_known(root, capsys):
    assert main(["prepare", "crema", "--src", str(root)]) == 2
    assert "crema-d" in capsys.readouterr().err


def test_a_changed_source_file_is_prepared_again(root):
    from prepare_fixtures import write_wav

    first = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert prepare("crema-d", root, SETTINGS, workers=1, show_progress=False).reused
    clip = CLIPS[4]
    row = [r["id"] for r in json.loads((first.folder / "items.json").read_text())].index(clip)
    before = np.load(first.folder / "audio.npy")[row].copy()
    write_wav(root / "AudioWAV" / f"{clip}.wav", label=0, seconds=0.7, seed=99)  # the file is replaced
    again = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert not again.reused and again.processed == 1 and again.folder == first.folder
    assert not np.array_equal(np.load(first.folder / "audio.npy")[row], before)
    assert again.fingerprint != first.fingerprint


def test_a_skip_whose_reason_was_not_flushed_is_redone(root):
    """Killed after marking an item skipped but before skipped.json was flushed: the rerun redoes the
    item, so the final report still gives its reason."""
    (root / "AudioWAV" / f"{CLIPS[2]}.wav").write_bytes(b"junk")
    first = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert [e[0] for e in first.skipped["unreadable audio"]] == [CLIPS[2]]
    (first.folder / "skipped.json").write_text("{}")  # the state such a kill leaves
    (first.folder / "meta.json").unlink()
    again = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert again.processed == 1 and [e[0] for e in again.skipped["unreadable audio"]] == [CLIPS[2]]


def test_the_run_key_follows_the_prepared_cache(root):
    """A run on a re-prepared cache (another setting) gets another key: never an earlier result."""
    from mmbench.config import RunSpec
    from mmbench.data.registry import dataset_fingerprint
    from mmbench.run_key import run_key

    with pytest.raises(FileNotFoundError, match="prepare crema-d"):
        dataset_fingerprint("crema-d")
    prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    spec = RunSpec("joint", "crema-d")
    first, speaker = run_key(spec), run_key(RunSpec("joint", "crema-d-speaker"))
    assert first != speaker
    prepare("crema-d", root, {**SETTINGS, "size": "16"}, workers=1, show_progress=False)
    assert run_key(spec) != first
    prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)  # back to the first cache
    assert run_key(spec) == first
