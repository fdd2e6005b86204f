"""Prepared caches carry a content hash checked at load (stat, then content) and by ``verify``; a
poisoned cache is an error until rebuilt or restored; ``--force`` rebuilds derived statistics; an
incremental prepare ends with the fingerprint of a fresh one (issue 21, failures 1, 3, 8)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

from mmbench.cli import main
from mmbench.data import load_dataset, standardize
from mmbench.data.registry import clear_cache, dataset_fingerprint
from mmbench.prepare.integrity import CacheChangedError
from mmbench.prepare.run import prepare

CLIPS = cremad_clips(speakers=(1001, 1002, 1003), sentences=("DFA",))
SETTINGS = dict(s.split("=") for s in SMALL_AV)


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    src = tmp_path / "src"
    write_cremad_papers(src, CLIPS, frames=1)
    write_lists(src, CLIPS)
    return src


def _poison(path):
    """Overwrite every value of a prepared array with NaN, in place: same size, same header."""
    arr = np.load(path, mmap_mode="r+")
    arr[:] = np.nan
    arr.flush()
    del arr


def test_a_poisoned_cache_is_refused_until_restored_or_rebuilt(root, capsys):
    first = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    modality = json.loads((first.folder / "meta.json").read_text())["modalities"][-1]
    path = first.folder / f"{modality}.npy"
    original = path.read_bytes()
    standardize(load_dataset("crema-d"))  # statistics stored beside the cache
    key_data = dataset_fingerprint("crema-d")
    assert list((first.folder / "standardize").glob("*.json"))
    _poison(path)
    clear_cache()
    with pytest.raises(CacheChangedError, match="changed since prepare.*--force"):
        load_dataset("crema-d")
    with pytest.raises(CacheChangedError):
        dataset_fingerprint("crema-d")  # no run key (hence no cached result) from a poisoned cache
    assert main(["verify"]) == 1 and "damaged  crema-d" in capsys.readouterr().out
    path.write_bytes(original)  # restored (new ctime): the content decides, and it is intact
    clear_cache()
    assert dataset_fingerprint("crema-d") == key_data
    assert np.isfinite(standardize(load_dataset("crema-d")).arrays[modality]).all()
    assert main(["verify"]) == 0 and "ok       crema-d" in capsys.readouterr().out
    _poison(path)
    again = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False, force=True)
    assert again.fingerprint == first.fingerprint and not (first.folder / "standardize").exists()
    clear_cache()
    assert np.isfinite(standardize(load_dataset("crema-d")).arrays[modality]).all()


def test_prepare_without_force_rebuilds_a_poisoned_cache(root, capsys):
    first = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    modality = json.loads((first.folder / "meta.json").read_text())["modalities"][0]
    _poison(first.folder / f"{modality}.npy")
    again = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert not again.reused and again.fingerprint == first.fingerprint
    assert "preparing it again" in capsys.readouterr().err


def test_stored_non_finite_statistics_are_never_reused(root):
    from mmbench.data.standardize_cache import load_stats

    first = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    standardize(load_dataset("crema-d"))
    stored = next((first.folder / "standardize").glob("*.json"))
    stats = json.loads(stored.read_text())
    modalities = list(stats)
    assert load_stats(stored, modalities) is not None
    stats[modalities[0]]["mean"][0] = float("nan")
    stored.write_text(json.dumps(stats))
    assert load_stats(stored, modalities) is None


def test_an_incremental_prepare_has_the_fingerprint_of_a_fresh_one(root):
    prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    (root / "AudioWAV" / f"{CLIPS[3]}.wav").write_bytes(b"junk")  # a file broken since: now skipped
    incremental = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False)
    assert incremental.processed == 1 and incremental.skipped
    fresh = prepare("crema-d", root, SETTINGS, workers=1, show_progress=False, force=True)
    assert fresh.fingerprint == incremental.fingerprint
