import torch

from helpers import toy_dataset
from mmbench.batching import SplitTensors, all_subsets, subset_name


def test_all_subsets_order():
    assert all_subsets(["a", "b"]) == [("a", "b"), ("a",), ("b",)]
    assert len(all_subsets(["a", "b", "c"])) == 7
    assert subset_name(("a", "c")) == "a+c"


def test_iterate_covers_every_sample_once_without_drop():
    data = toy_dataset(n=103)
    split = SplitTensors(data, "test")
    seen = torch.cat([b.index for b in split.iterate(8)])
    assert sorted(seen.tolist()) == list(range(len(split)))


def test_shuffle_reproducible_with_generator_and_mask_rows_follow_samples():
    data = toy_dataset(n=100)
    split = SplitTensors(data, "train")
    mask = torch.zeros(len(split), 2)
    mask[:, 0] = 1
    mask[::2, 1] = 1
    a = [b.index for b in split.iterate(16, mask, shuffle=True, generator=torch.Generator().manual_seed(0))]
    b = [b.index for b in split.iterate(16, mask, shuffle=True, generator=torch.Generator().manual_seed(0))]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    batch = next(split.iterate(16, mask, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert torch.equal(batch.mask, mask[batch.index])
    assert torch.equal(batch.only(["b"]).mask[:, 0], torch.zeros(16))
