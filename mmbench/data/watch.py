"""seglearn smartwatch data: shoulder exercises seen by a wrist accelerometer and gyroscope.

140 recordings (10 subjects x 7 exercises x 2 sides) at 50 Hz, cut into windows of ``window``
steps with ``overlap`` (fraction) overlap; a window keeps its recording's exercise label and subject.
With the defaults (128 steps, 50%): 3605 windows, 7 classes (PEN, ABD, FEL, IR, ER, TRAP, ROW).

Modalities: ``accel`` (ax, ay, az) and ``gyro`` (wx, wy, wz), each a series ``[3, window]``.
Split by subject so test subjects are unseen: test = subjects 9 and 10 (773 windows), val =
subject 8 (372 windows), train = subjects 1-7 (2460 windows). ``groups`` holds the subject ids.
Data: seglearn 1.2.5 (BSD-3, D. M. Burns); files/watch.LICENSE.txt, converted by scripts/make_watch.py.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.files_path import data_file
from mmbench.data.registry import register_dataset
from mmbench.data.splits import group_split
from mmbench.fingerprint import digest, file_digest

# Bump when load_watch's code changes the windows it cuts from the same file (it enters the run keys).
LOADER_VERSION = 1

SOURCE = "seglearn smartwatch exercise data (D. M. Burns), seglearn 1.2.5, BSD-3-Clause"
SENSORS = {"accel": slice(0, 3), "gyro": slice(3, 6)}  # columns of the raw [T, 6] series


@functools.lru_cache(maxsize=1)
def _raw() -> dict:
    with np.load(data_file("watch.npz")) as z:
        return {k: z[k] for k in z.files}


def window_starts(length: int, window: int, step: int) -> np.ndarray:
    """Start positions of the full windows in a recording of ``length`` steps (none if too short)."""
    if length < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, length - window + 1, step, dtype=np.int64)


def load_watch(window: int = 128, overlap: float = 0.5, test_subjects: Sequence[int] = (9, 10),
               val_subjects: Sequence[int] = (8,), name: str = "watch") -> MultimodalDataset:
    """Windowed smartwatch data.

    Args:
        window: window length in steps (50 Hz).
        overlap: fraction of a window shared with the next one, in ``[0, 1)``; the step is
            ``round(window * (1 - overlap))``.
        test_subjects / val_subjects: subject ids (1..10) held out; all others train.

    Returns:
        arrays ``acc``, ``gyro``: float32 ``[N, 3, window]``; labels int64 ``[N]``; groups (subject) int64 ``[N]``;
        ``meta["recording"]`` / ``meta["side"]`` int64 ``[N]`` (source recording, 0 left / 1 right).
    """
    window = int(window)
    if window < 2:
        raise ValueError(f"window must be at least 2 steps, got {window}")
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap is a fraction in [0, 1), got {overlap}")
    step = max(1, int(round(window * (1 - overlap))))
    raw = _raw()
    series, offsets = raw["series"], raw["offsets"]
    starts, recording = [], []
    for r in range(len(offsets) - 1):
        s = window_starts(int(offsets[r + 1] - offsets[r]), window, step)
        starts.append(offsets[r] + s)
        recording.append(np.full(s.size, r, dtype=np.int64))
    starts, recording = np.concatenate(starts), np.concatenate(recording)
    if starts.size == 0:
        raise ValueError(f"window {window} is longer than every recording")
    # [N, window, 6] gathered with one fancy index, then channels first: [N, 6, window]
    windows = series[starts[:, None] + np.arange(window)].transpose(0, 2, 1)
    arrays = {m: np.ascontiguousarray(windows[:, cols], dtype=np.float32) for m, cols in SENSORS.items()}
    labels = raw["labels"].astype(np.int64)[recording]
    subject = raw["subject"].astype(np.int64)[recording]
    return MultimodalDataset(
        name=name,
        specs=[ModalitySpec(m, "series", (3, window)) for m in SENSORS],
        arrays=arrays, labels=labels, num_classes=int(raw["class_names"].size),
        split=group_split(subject, test_subjects, val_subjects),
        class_names=[str(c) for c in raw["class_names"]], groups=subject, source=SOURCE,
        meta={"window": window, "overlap": overlap, "step": step, "recording": recording,
              "side": raw["side"].astype(np.int64)[recording], "test_subjects": list(test_subjects),
              "val_subjects": list(val_subjects), "channel_names": [str(c) for c in raw["channel_names"]],
              "sample_rate_hz": 50},
    )


def fingerprint(**options) -> str:
    """The embedded file's content hash and the loader's options (everything ``load_watch`` depends on)."""
    return digest({"file": file_digest(data_file("watch.npz")), "options": options, "loader": LOADER_VERSION})


register_dataset("watch", load_watch, fingerprint=fingerprint,
                 description="smartwatch exercises: acc + gyro series [3,128], 7 classes, "
                             "split by subject (test 9,10; val 8)")
