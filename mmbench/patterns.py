"""Missing-modality patterns: which modalities each sample has at train and at test time.

A pattern is named and selectable (``python -m mmbench list patterns``):

* ``complete``: train on complete data; test on every non-empty subset of modalities.
* ``dropout``: train with a random non-empty subset per sample and epoch (uniform over subsets);
  test on every subset.
* ``missing-<eta>`` / ``missing-<eta_train>-<eta_test>``: per-sample missingness at rate eta
  (MAP-style, Ma et al. CVPR'22): a missing sample loses a uniformly chosen non-empty proper
  subset of its modalities ("mixed" type). The train and test masks are drawn once from the run seed,
  persisted, and reused, so every method sees the same ones. Tested on the masked test set and on
  every subset.
* ``missing-<eta>-<modality>``: as above, but always the named modality goes missing.
* ``natural``: the data's own gaps. A data set that itself lacks some modalities for some samples
  declares them in :attr:`MultimodalDataset.presence` (``[N, M]``, its loader says how a partly
  missing view is counted); training uses the train rows of that mask every epoch, the masked test
  its test rows. A data set without one is an error naming it.

Every pattern is evaluated on every non-empty subset (the ``complete -> all subsets`` protocol), so
the per-subset, mean and worst-subset accuracy exist for all of them.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from mmbench.registry import Registry, UnknownNameError

PATTERNS: Registry["Pattern"] = Registry("pattern")


@dataclass(frozen=True)
class Pattern:
    """A missing-modality pattern.

    Attributes:
        name: registry name.
        train: ``"complete" | "dropout" | "rate" | "natural"``.
        eta_train / eta_test: missing rates for ``"rate"`` patterns.
        missing_type: ``"mixed"`` or the name of the one modality that goes missing.
    """

    name: str
    train: str
    eta_train: float = 0.0
    eta_test: float = 0.0
    missing_type: str = "mixed"
    description: str = ""

    @property
    def has_test_mask(self) -> bool:
        return (self.train == "rate" and self.eta_test > 0) or self.train == "natural"

    def check_modalities(self, modalities: Sequence[str]) -> None:
        if self.missing_type != "mixed" and self.missing_type not in modalities:
            raise ValueError(
                f"pattern {self.name!r} drops modality {self.missing_type!r}, which this data set does not have "
                f"(modalities: {', '.join(modalities)})"
            )

    def epoch_train_mask(self, fixed: Optional[torch.Tensor], num: int, num_mod: int, seed: int, epoch: int) -> torch.Tensor:
        """The ``[N, M]`` training presence mask for one epoch.

        ``dropout`` draws a fresh subset per sample each epoch from ``(seed, epoch)``; ``rate``
        patterns use their fixed persisted mask, ``natural`` the data's own; ``complete`` is all ones.
        """
        if self.train == "complete":
            return torch.ones(num, num_mod)
        if self.train in ("rate", "natural"):
            assert fixed is not None
            return fixed
        gen = torch.Generator().manual_seed(_mix(seed, epoch, 0xD0))
        codes = torch.randint(1, 2**num_mod, (num,), generator=gen)
        return _codes_to_mask(codes, num_mod)


def _mix(*parts: int) -> int:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:7], "little")


def _codes_to_mask(codes: torch.Tensor, num_mod: int) -> torch.Tensor:
    bits = torch.arange(num_mod)
    return ((codes.unsqueeze(1) >> bits) & 1).float()


def draw_rate_mask(num: int, modalities: Sequence[str], eta: float, missing_type: str, seed: int) -> np.ndarray:
    """A fixed ``[N, M]`` float32 presence mask with a fraction ``eta`` of samples incomplete.

    Exactly ``round(eta * N)`` samples (chosen at random) miss modalities, so the realised rate is
    the declared one. ``mixed``: each misses a uniformly chosen non-empty proper subset.
    """
    m = len(modalities)
    rng = np.random.default_rng(seed)
    mask = np.ones((num, m), dtype=np.float32)
    n_missing = int(round(eta * num))
    rows = rng.permutation(num)[:n_missing]
    if missing_type == "mixed":
        if m == 1:
            raise ValueError("a missing-rate pattern needs at least two modalities")
        # keep a non-empty proper subset: codes 1 .. 2^M - 2
        codes = rng.integers(1, 2**m - 1, size=n_missing)
        keep = (codes[:, None] >> np.arange(m)) & 1
        mask[rows] = keep.astype(np.float32)
    else:
        mask[rows, list(modalities).index(missing_type)] = 0.0
    return mask


# The missing rates every run is also tested at (robustness curves; `masked_test_acc_at` in each run).
ROBUSTNESS_RATES = (0.1, 0.3, 0.5, 0.7)


def robustness_test_mask(num: int, modalities: Sequence[str], eta: float, dataset: str, seed: int) -> np.ndarray:
    """The ``[N_test, M]`` presence mask of the robustness evaluation at rate ``eta`` ("mixed" type).

    It depends on (data set, seed, eta) only, not on the method or the training pattern, so every run
    of a seed is tested on the same incomplete samples and curves compare like with like.
    """
    return draw_rate_mask(num, modalities, eta, "mixed", _mix(seed, dataset, "robustness-test", f"{eta:g}"))


class MaskStore:
    """Persists the fixed masks of ``rate`` patterns, so every method of a seed sees the same ones.

    Files: ``<root>/<dataset>__<pattern>__seed<k>.npz`` holding ``train`` and ``test`` ``[N, M]``.
    Written atomically; a file whose shape does not fit the data set is an error, not silently
    replaced.
    """

    def __init__(self, root: os.PathLike | str):
        self.root = Path(root)

    def masks(self, dataset: str, pattern: Pattern, modalities: Sequence[str], n_train: int, n_test: int, seed: int,
              natural: Optional[tuple] = None):
        """``(train [N_train, M], test [N_test, M])`` float32 tensors; ``None`` where not fixed.

        ``natural``: the data set's own ``(train, test)`` presence masks (:func:`natural_masks`), which
        the ``natural`` pattern uses as they are (nothing is drawn or persisted: the data fixes them).
        """
        if pattern.train == "natural":
            if natural is None:
                raise ValueError(f"pattern {pattern.name!r} uses the data's own missing modalities, and data set "
                                 f"{dataset!r} declares none (no presence mask); use complete or missing-<eta>")
            train, test = (np.asarray(m, dtype=np.float32) for m in natural)
            if train.shape != (n_train, len(modalities)) or test.shape != (n_test, len(modalities)):
                raise ValueError(f"natural masks of {dataset!r} have shapes {train.shape}, {test.shape}; expected "
                                 f"({n_train}, {len(modalities)}), ({n_test}, {len(modalities)})")
            return torch.from_numpy(train.copy()), torch.from_numpy(test.copy())
        if pattern.train != "rate":
            return None, None
        path = self.root / f"{_safe(dataset)}__{_safe(pattern.name)}__seed{seed}.npz"
        if path.exists():
            with np.load(path) as f:
                train, test = f["train"], f["test"]
            if train.shape != (n_train, len(modalities)) or test.shape != (n_test, len(modalities)):
                raise ValueError(f"persisted masks {path} do not match the data set's split sizes; delete the file to redraw")
        else:
            base = _mix(seed, dataset, pattern.name)
            train = draw_rate_mask(n_train, modalities, pattern.eta_train, pattern.missing_type, base)
            test = draw_rate_mask(n_test, modalities, pattern.eta_test, pattern.missing_type, base + 1)
            self.root.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            try:
                np.savez(tmp, train=train, test=test)
                os.replace(tmp, path)
            except BaseException:  # an interrupted write leaves no temporary file behind
                tmp.unlink(missing_ok=True)
                raise
        return torch.from_numpy(train), torch.from_numpy(test)


def natural_masks(data) -> Optional[tuple]:
    """``(train [N_train, M], test [N_test, M])`` rows of ``data.presence`` (the data's own gaps), or ``None``."""
    presence = getattr(data, "presence", None)
    if presence is None:
        return None
    return presence[data.split["train"]], presence[data.split["test"]]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


_RATE = re.compile(r"^missing-(?P<a>\d*\.?\d+)(?:-(?P<b>\d*\.?\d+))?(?:-(?P<mod>[A-Za-z_][\w]*))?$")


def get_pattern(name: str) -> Pattern:
    """Look a pattern up by name; ``missing-<eta>[-<eta_test>][-<modality>]`` is parsed on the fly."""
    if name in PATTERNS:
        return PATTERNS.get(name)
    match = _RATE.match(name)
    if match:
        eta_train = float(match["a"])
        eta_test = float(match["b"]) if match["b"] else eta_train
        for eta in (eta_train, eta_test):
            if not 0.0 <= eta < 1.0:
                raise ValueError(f"pattern {name!r}: missing rates must lie in [0, 1), got {eta}")
        return Pattern(name, "rate", eta_train, eta_test, match["mod"] or "mixed",
                       f"missing rate {eta_train} at train, {eta_test} at test")
    try:
        return PATTERNS.get(name)
    except UnknownNameError as err:
        raise UnknownNameError(f"{err} (or missing-<eta>[-<eta_test>][-<modality>], e.g. missing-0.5)") from None


PATTERNS.register("complete", Pattern("complete", "complete", description="complete train, test on every subset"))
PATTERNS.register("dropout", Pattern("dropout", "dropout", description="random subset per sample at train, test on every subset"))
PATTERNS.register("missing-0.5", Pattern("missing-0.5", "rate", 0.5, 0.5, description="50% of samples incomplete (mixed) at train and test"))
PATTERNS.register("natural", Pattern("natural", "natural", description="the data's own missing modalities at train and test (data sets with a presence mask)"))
PATTERNS.register("missing-0.7", Pattern("missing-0.7", "rate", 0.7, 0.7, description="70% incomplete (MAP default) at train and test"))
