"""The DataLoader path (loader=stream) over memory-mapped per-modality arrays."""
import numpy as np
import pytest
import torch

from helpers import quick_fit, tiny_av_dataset, toy_dataset
from mmbench.batching import SplitTensors
from mmbench.data.base import ModalitySpec
from mmbench.streaming import ArraySamples, StreamSplit, build_splits, paper_augmentation, stream_split


@pytest.fixture
def memmapped(tmp_path):
    """The tiny audio-visual data set with its arrays saved as .npy files and reopened as read-only memmaps."""
    data = tiny_av_dataset(n_train=10)
    arrays = {}
    for m, arr in data.arrays.items():
        np.save(tmp_path / f"{m}.npy", arr)
        arrays[m] = np.load(tmp_path / f"{m}.npy", mmap_mode="r")
    assert all(isinstance(a, np.memmap) for a in arrays.values())
    return data, type(data)(data.name, data.specs, arrays, data.labels, data.num_classes, data.split)


def _same_batches(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x.index, y.index) and torch.equal(x.labels, y.labels) and torch.equal(x.mask, y.mask)
        for m in x.inputs:
            assert torch.equal(x.inputs[m], y.inputs[m])


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_over_memmaps_yields_the_memory_path_batches(memmapped, workers):
    data, mapped = memmapped
    mask = torch.ones(10, 2)
    mask[3, 1] = 0
    memory = SplitTensors(data, "train")
    stream = stream_split(mapped, "train", workers=workers)
    kw = dict(mask=mask, shuffle=True, drop_last=True)
    _same_batches(list(memory.iterate(4, generator=torch.Generator().manual_seed(3), **kw)),
                  list(stream.iterate(4, generator=torch.Generator().manual_seed(3), **kw)))
    index = torch.tensor([7, 2])
    _same_batches([memory.batch(index, mask)], [stream.batch(index, mask)])


def test_shard_keeps_each_process_its_part_of_the_global_batch(memmapped):
    data, mapped = memmapped
    stream = stream_split(mapped, "train")
    full = [b.index for b in stream.iterate(4, drop_last=True)]
    halves = [[b.index for b in stream.iterate(4, drop_last=True, shard=(r, 2))] for r in range(2)]
    for f, h0, h1 in zip(full, *halves):
        assert torch.equal(torch.cat([h0, h1]), f)
    memory = [b.index for b in SplitTensors(data, "train").iterate(4, drop_last=True, shard=(1, 2))]
    assert all(torch.equal(a, b) for a, b in zip(memory, halves[1]))


def test_augmentation_crops_and_flips_rgb_frames_alike_and_leaves_spectrograms():
    assert paper_augmentation(ModalitySpec("audio", "image", (1, 257, 188))) is None
    clip = torch.rand(1, 3, 32, 32).expand(2, 3, 32, 32).clone()  # two identical frames
    torch.manual_seed(0)
    aug = paper_augmentation(ModalitySpec("visual", "video", (2, 3, 32, 32)))
    outs = [aug(clip) for _ in range(4)]
    assert all(o.shape == clip.shape for o in outs)
    assert any(not torch.allclose(o, clip) for o in outs)  # a random crop / flip happened
    assert all(torch.equal(o[0], o[1]) for o in outs)  # one draw per clip: the frames stay aligned


def test_augmented_training_split_differs_only_in_rgb_inputs(memmapped):
    _, mapped = memmapped
    torch.manual_seed(0)
    plain = next(stream_split(mapped, "train").iterate(4))
    aug = next(stream_split(mapped, "train", augment=True).iterate(4))
    assert torch.equal(plain.inputs["audio"], aug.inputs["audio"])
    assert not torch.equal(plain.inputs["visual"], aug.inputs["visual"])


def test_training_through_the_stream_path_equals_the_memory_path():
    data = toy_dataset(n=120, three=True)
    mem = quick_fit("joint", data, epochs=2, loader="memory")
    stream = quick_fit("joint", data, epochs=2, loader="stream", workers=0)
    assert mem["metrics"]["test_acc"] == stream["metrics"]["test_acc"]
    for (k, a), (_, b) in zip(mem["method"].modules().state_dict().items(),
                              stream["method"].modules().state_dict().items()):
        torch.testing.assert_close(a, b, msg=k)


def test_unknown_loader_and_bad_workers_are_named():
    data = toy_dataset(n=60)
    with pytest.raises(ValueError, match="loader='disk'.*memory, stream"):
        build_splits(data, {"loader": "disk"}, torch.device("cpu"))
    with pytest.raises(ValueError, match="workers=-1"):
        StreamSplit(ArraySamples(data.arrays, data.labels, data.split["train"]), data.modalities,
                    data.labels[data.split["train"]], workers=-1)


def test_stacked_rgb_frames_are_cropped_alike_and_declared_flow_is_not_augmented():
    """Prepared data sets store frames as [3 * T, H, W] (CREMA-D, UCF101 rgb): one crop / flip for all
    T frames; a 6-channel flow stack is not RGB although its channels are a multiple of 3."""
    frame = torch.rand(3, 32, 32)
    stack = torch.cat([frame, frame])  # [6, 32, 32]: two identical RGB frames
    aug = paper_augmentation(ModalitySpec("visual", "image", (6, 32, 32)), rgb=True)
    torch.manual_seed(0)
    outs = [aug(stack) for _ in range(4)]
    assert all(o.shape == stack.shape for o in outs)
    assert any(not torch.allclose(o, stack) for o in outs)
    assert all(torch.equal(o[:3], o[3:]) for o in outs)  # the frames stay aligned
    assert paper_augmentation(ModalitySpec("flow", "image", (6, 32, 32)), rgb=False) is None
    assert paper_augmentation(ModalitySpec("rgb", "image", (3, 32, 32)), rgb=False) is None  # declared: not guessed
    with pytest.raises(ValueError, match="'flow' is declared RGB but its 4 channels"):
        paper_augmentation(ModalitySpec("flow", "image", (4, 32, 32)), rgb=True)


def test_a_data_set_declaring_its_rgb_modalities_gets_only_those_augmented(memmapped):
    _, mapped = memmapped
    mapped.meta["rgb_modalities"] = []  # declares the video frames not RGB: nothing is augmented
    plain = next(stream_split(mapped, "train").iterate(4))
    aug = next(stream_split(mapped, "train", augment=True).iterate(4))
    assert all(torch.equal(plain.inputs[m], aug.inputs[m]) for m in plain.inputs)
