"""Each modality's contribution: its Shapley value over the all-subsets evaluation.

The harness evaluates every run on every non-empty subset of modalities (the others missing). With
``v(S)`` the accuracy with only S present and ``v({})`` chance accuracy (1/C: no input, no
information), the Shapley value of modality i is the average of its marginal gain
``v(S + i) - v(S)`` over the orders in which modalities can be added. The values sum to
``v(all) - v({})``, the full set's gain over chance. Exact (all subsets) for up to
:data:`EXACT_MAX` modalities; above, the mean over :data:`N_PERMUTATIONS` random orders drawn with a
fixed seed (permutation sampling, Castro et al. 2009), which is unbiased and reproducible.
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Callable, Dict, FrozenSet, Mapping, Optional, Sequence

import numpy as np

EXACT_MAX = 4
N_PERMUTATIONS = 2000


def shapley_values(players: Sequence[str], value: Callable[[FrozenSet[str]], float], seed: int = 0) -> Dict[str, float]:
    """Shapley value of each player for the set function ``value`` (``value(frozenset())`` included)."""
    players = list(players)
    n = len(players)
    if n <= EXACT_MAX:
        out = {}
        for p in players:
            others = [q for q in players if q != p]
            total = 0.0
            for size in range(n):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                for s in combinations(others, size):
                    total += weight * (value(frozenset(s) | {p}) - value(frozenset(s)))
            out[p] = total
        return out
    rng = np.random.default_rng(seed)
    sums = dict.fromkeys(players, 0.0)
    for _ in range(N_PERMUTATIONS):
        present: FrozenSet[str] = frozenset()
        before = value(present)
        for i in rng.permutation(n):
            present = present | {players[i]}
            after = value(present)
            sums[players[i]] += after - before
            before = after
    return {p: v / N_PERMUTATIONS for p, v in sums.items()}


def modality_shapley(subset_acc: Mapping[str, float], modalities: Sequence[str],
                     num_classes: Optional[int]) -> Dict[str, float]:
    """Shapley value of each modality from a run's ``subset_acc`` (``"a+b"`` -> accuracy).

    Returns an empty dict when an evaluated subset is missing or C is unknown (older runs).
    """
    if not num_classes or not modalities:
        return {}
    table = {frozenset(name.split("+")): acc for name, acc in subset_acc.items()}
    if any(frozenset(s) not in table for k in range(1, len(modalities) + 1) for s in combinations(modalities, k)):
        return {}
    table[frozenset()] = 1.0 / num_classes
    return shapley_values(modalities, table.__getitem__)
