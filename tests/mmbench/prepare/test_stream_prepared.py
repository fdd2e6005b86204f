"""A prepared data set trains streamed from disk: memory maps stay memory maps, standardised per item."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from prepare_fixtures import cremad_clips, write_cremad_papers, write_lists

import mmbench.streaming
from mmbench.batching import SplitTensors
from mmbench.cli import main
from mmbench.config import RunSpec, resolve
from mmbench.data import list_datasets, load_dataset, standardize
from mmbench.data.standardized_array import StandardizedArray
from mmbench.methods import get_method
from mmbench.prepare.base import PREPARERS
from mmbench.streaming import StreamSplit, build_splits

# 96 clips of 4 stacked RGB frames at 64 px (visual [12, 64, 64]): ~22 MB in all, so that a whole-array
# copy stands far out of one batch of 8 clips (1/12 of it) and the run's other allocations.
SETTINGS = ["sample_rate=8000", "seconds=1", "n_fft=64", "hop=32", "size=64", "n_frames=4"]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """CREMA-D in the papers' layout, prepared into its own cache (``MMBENCH_CACHE`` set for the module)."""
    root = tmp_path_factory.mktemp("cremad-stream")
    clips = cremad_clips(speakers=range(1001, 1009))
    write_cremad_papers(root / "src", clips, frames=4)
    write_lists(root / "src", clips)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MMBENCH_CACHE", str(root / "cache"))
        assert main(["prepare", "crema-d", "--src", str(root / "src"), "--workers", "2", "--set", *SETTINGS]) == 0
        yield root


def _array_bytes(data) -> int:
    return sum(int(np.prod(a.shape)) * 4 for a in data.arrays.values())


# Where the papers augment the frames (RandomResizedCrop + flip); CASIA-SURF and CMU-MOSEI stream plain.
AUGMENTED = {"crema-d", "crema-d-speaker", "ave", "kinetics-sounds", "vggsound", "ucf101"}


def test_prepared_data_sets_default_to_streaming_and_embedded_ones_do_not():
    joint = get_method("joint")
    names = list_datasets()  # registers the preparers' data sets
    prepared = [name for _, p in PREPARERS.items() for name in p.datasets
                if getattr(p, "task", "classification") == "classification"]  # segmentation: its own settings
    assert set(prepared) <= set(names) and AUGMENTED <= set(prepared)
    for name in prepared:
        train, _ = resolve(RunSpec("joint", name), joint)
        assert train["loader"] == "stream" and train["augment"] == (name in AUGMENTED), name
    for name in ("mfeat", "watch", "synthetic", "avmnist"):  # their defaults (and run keys) are unchanged
        train, _ = resolve(RunSpec("joint", name), joint)
        assert train["loader"] == "memory" and train["augment"] is False


def test_stream_and_memory_paths_give_the_same_standardised_batches(prepared):
    data = load_dataset("crema-d")
    assert data.meta["rgb_modalities"] == ["visual"]
    memory = build_splits(standardize(data), {"loader": "memory"}, torch.device("cpu"))
    stream = build_splits(standardize(data, lazy=True), {"loader": "stream", "workers": 0}, torch.device("cpu"))
    for mem, st in zip(memory, stream):
        assert isinstance(mem, SplitTensors) and isinstance(st, StreamSplit)
        batches = zip(mem.iterate(8, shuffle=True, generator=torch.Generator().manual_seed(1)),
                      st.iterate(8, shuffle=True, generator=torch.Generator().manual_seed(1)))
        for a, b in batches:
            assert torch.equal(a.labels, b.labels) and torch.equal(a.index, b.index)
            for m in a.inputs:
                torch.testing.assert_close(a.inputs[m], b.inputs[m], rtol=0, atol=1e-6)


def _train_once(out, loader: str, workers: int, traced: bool = True) -> int:
    """Peak bytes allocated through Python (numpy arrays included) during one CLI training epoch."""
    if traced:
        tracemalloc.start()
    try:
        code = main(["run", "--method", "joint", "--dataset", "crema-d", "--out", str(out), "--set", "epochs=1",
                     f"loader={loader}", f"workers={workers}", "batch_size=8", "eval_batch_size=8"])
        peak = tracemalloc.get_traced_memory()[1] if traced else 0
    finally:
        tracemalloc.stop()
    assert code == 0
    return peak


@pytest.mark.parametrize("workers", [0, 2])
def test_one_epoch_through_the_cli_never_holds_the_arrays(prepared, tmp_path, monkeypatch, capsys, workers):
    """The streamed Dataset reads rows of the memory maps; the training process's numpy allocations stay
    far below the arrays' size, where the memory path (the check's control) holds a standardised copy."""
    monkeypatch.setenv("MMBENCH_CACHE", str(prepared / "cache"))
    data = load_dataset("crema-d")
    total = _array_bytes(data)
    assert total > 20e6
    seen = []
    real = mmbench.streaming.build_splits

    def spy(data, train_cfg, device):
        splits = real(data, train_cfg, device)
        seen.append(splits)
        return splits

    monkeypatch.setattr("mmbench.engine.trainer.build_splits", spy)
    _train_once(tmp_path / "warm-up", "stream", workers, traced=False)  # lazy imports (torchvision) are not data
    streamed = _train_once(tmp_path / "stream", "stream", workers)
    assert "joint/crema-d/complete/seed0" in capsys.readouterr().out
    train = seen[-1][0]
    assert isinstance(train, StreamSplit) and train.workers == workers
    for arr in train.samples.arrays.values():
        assert isinstance(arr, StandardizedArray) and isinstance(arr.source, np.memmap)
    assert "visual" in train.samples.transforms and "audio" not in train.samples.transforms  # augment=true default
    assert streamed < 0.25 * total, (streamed, total)
    if workers == 0:  # the control: the memory path materialises the standardised arrays (> their size)
        assert _train_once(tmp_path / "memory", "memory", 0) > total
