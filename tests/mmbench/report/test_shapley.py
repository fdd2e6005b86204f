"""Shapley values of modalities: sum to the full-set gain, match a hand example."""
import math

import pytest

from mmbench.report.shapley import EXACT_MAX, modality_shapley, shapley_values


def test_hand_example_two_modalities():
    # chance 0.25 (C=4); v(a)=0.65, v(b)=0.45, v(ab)=0.85
    # phi_a = 1/2 (0.65-0.25) + 1/2 (0.85-0.45) = 0.4 ; phi_b = 1/2 (0.20) + 1/2 (0.20) = 0.2
    phi = modality_shapley({"a+b": 0.85, "a": 0.65, "b": 0.45}, ["a", "b"], num_classes=4)
    assert phi == pytest.approx({"a": 0.4, "b": 0.2})


def test_three_modalities_sum_to_full_gain_and_symmetry():
    acc = {"a+b+c": 0.9, "a+b": 0.8, "a+c": 0.8, "b+c": 0.6, "a": 0.7, "b": 0.4, "c": 0.4}
    phi = modality_shapley(acc, ["a", "b", "c"], num_classes=10)
    assert sum(phi.values()) == pytest.approx(0.9 - 0.1)
    assert phi["b"] == pytest.approx(phi["c"])  # b and c are interchangeable in v
    assert phi["a"] > phi["b"]


def test_missing_subset_or_classes_gives_nothing():
    assert modality_shapley({"a+b": 0.8, "a": 0.6}, ["a", "b"], 4) == {}
    assert modality_shapley({"a+b": 0.8, "a": 0.6, "b": 0.5}, ["a", "b"], None) == {}


def test_permutation_sampling_above_exact_limit():
    n = EXACT_MAX + 1
    players = [f"m{i}" for i in range(n)]
    weights = {p: i + 1 for i, p in enumerate(players)}
    additive = lambda s: sum(weights[p] for p in s) + 0.5 * (len(s) == n)  # noqa: E731  (one interaction term)
    phi = shapley_values(players, additive, seed=0)
    assert sum(phi.values()) == pytest.approx(additive(frozenset(players)))  # efficiency holds per permutation
    for p in players:
        assert phi[p] == pytest.approx(weights[p] + 0.5 / n, abs=0.05)
    assert phi == shapley_values(players, additive, seed=0)  # reproducible
