"""The model-selection rule: which epochs may be kept, and which of several tied epochs wins.

Rule (``docs/protocol.md``, "Model selection"):

* Only epochs ``>= method.selection_start_epoch()`` are candidates: a method with phases (a
  full-modality warm-up, mining epochs before its losses switch on, a window before re-balancing
  starts) declares the first epoch trained with its own objective, so a checkpoint of the warm-up
  model is never reported as the method. Epochs before it are still evaluated (``history``).
* Among candidates with the same validation score the LATEST epoch wins. Validation accuracy on a
  few hundred samples moves in steps of 1/N, so ties are common on a plateau; with no evidence to
  tell them apart, the later checkpoint is the one the method's whole schedule produced (more
  steps of its own objective, the smaller learning rate of the cosine tail). The earliest-epoch
  rule systematically prefers checkpoints from before a phase change, which is the failure this
  rule exists to prevent.
"""
from __future__ import annotations

import math
import numbers


def selection_start(method, epochs: int) -> int:
    """First eligible epoch (0-based) of a run of ``epochs`` epochs.

    A run shorter than the method's phases still reports a model: then only its last epoch is
    eligible (clamped to ``epochs - 1``).

    Raises:
        ValueError: the method declared a negative or non-integer start (names the method).
    """
    start = method.selection_start_epoch()
    if isinstance(start, bool) or not isinstance(start, numbers.Integral) or start < 0:
        raise ValueError(f"{type(method).__name__}.selection_start_epoch() returned {start!r}; expected an int >= 0")
    return min(int(start), max(0, epochs - 1))


def is_better(score: float, best: float) -> bool:
    """Whether an eligible epoch scoring ``score`` replaces the one kept so far (``best``); ties go to the later one.

    A NaN score never wins (it compares false), so a run keeps its last finite best.
    """
    return not math.isnan(score) and score >= best
