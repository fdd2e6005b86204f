"""Split helpers: seeded, disjoint, covering, stratified, by group, from codes."""
import numpy as np
import pytest

from mmbench.data.splits import group_split, random_split, split_from_codes, stratified_split


def covers(split, n):
    allidx = np.concatenate([split[k] for k in ("train", "val", "test")])
    return np.array_equal(np.sort(allidx), np.arange(n))


def test_stratified_is_seeded_disjoint_covering_and_proportional():
    y = np.repeat(np.arange(5), [100, 50, 20, 200, 30])
    a, b, c = stratified_split(y, seed=0), stratified_split(y, seed=0), stratified_split(y, seed=1)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train"], c["train"])
    assert covers(a, y.size)
    for cls, count in enumerate([100, 50, 20, 200, 30]):
        got = [np.sum(y[a[k]] == cls) for k in ("train", "val", "test")]
        assert got == [round(0.6 * count), round(0.8 * count) - round(0.6 * count), count - round(0.8 * count)]


def test_random_split_sizes():
    s = random_split(101, seed=3)
    assert [len(s[k]) for k in ("train", "val", "test")] == [61, 20, 20] and covers(s, 101)


def test_group_split_keeps_groups_whole():
    g = np.repeat([1, 2, 3, 4], 5)
    s = group_split(g, test_groups=[4], val_groups=[3])
    assert set(g[s["test"]]) == {4} and set(g[s["val"]]) == {3} and set(g[s["train"]]) == {1, 2}
    with pytest.raises(ValueError, match="group 7"):
        group_split(g, test_groups=[7], val_groups=[3])


def test_codes():
    s = split_from_codes(np.array(["train", "val", "test", "valid", "TRAIN"]))
    assert s["train"].tolist() == [0, 4] and s["val"].tolist() == [1, 3] and s["test"].tolist() == [2]
    assert split_from_codes(np.array([2, 0, 1]))["test"].tolist() == [0]
    with pytest.raises(ValueError, match="holdout"):
        split_from_codes(np.array(["train", "holdout"]))
    with pytest.raises(ValueError, match=r"\[3\]"):
        split_from_codes(np.array([0, 3]))
