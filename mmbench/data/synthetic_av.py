"""``synthetic-av-paper``: random tensors at CREMA-D's shapes, for paper-scale smoke runs and timing.

CREMA-D as the audio-visual papers feed it (``docs/methods.md``, "Shared set-up", paper scale):
a log-spectrogram "image" ``[1, 257, 188]`` (3 s at 22.05 kHz, n_fft 512, hop 353) and ONE RGB frame
per clip (``fps=1``) at 224x224, as a frame stack ``[1, 3, 224, 224]`` (kind ``"video"``; Kinetics-
Sounds' 3 frames are ``frames=3``); 6 classes. The values are standard normal with a small class
shift, so the data only exercise the shapes, the encoders and the loader: accuracies mean nothing.
"""
from __future__ import annotations

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.registry import register_dataset
from mmbench.data.splits import stratified_split

SPECTROGRAM_SHAPE = (1, 257, 188)
FRAME_SHAPE = (3, 224, 224)
NUM_CLASSES = 6


def make_synthetic_av(n: int = 18, frames: int = 1, num_classes: int = NUM_CLASSES, seed: int = 0,
                      name: str = "synthetic-av-paper") -> MultimodalDataset:
    """``n`` random clips: ``audio`` float32 ``[n, 1, 257, 188]``, ``visual`` float32 ``[n, frames, 3, 224, 224]``."""
    if n < 3 * num_classes:
        raise ValueError(f"n={n}: need at least 3 samples per class ({3 * num_classes}) for a stratified split")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % num_classes).astype(np.int64)
    shift = (labels / num_classes).astype(np.float32)
    audio = rng.standard_normal((n, *SPECTROGRAM_SHAPE), dtype=np.float32) + shift[:, None, None, None]
    visual = rng.standard_normal((n, frames, *FRAME_SHAPE), dtype=np.float32) + shift[:, None, None, None, None]
    return MultimodalDataset(
        name=name,
        specs=[ModalitySpec("audio", "image", SPECTROGRAM_SHAPE),
               ModalitySpec("visual", "video", (frames, *FRAME_SHAPE))],
        arrays={"audio": audio, "visual": visual}, labels=labels, num_classes=num_classes,
        split=stratified_split(labels, seed=seed),
        source="random tensors at CREMA-D's shapes (mmbench.data.synthetic_av)",
    )


register_dataset("synthetic-av-paper", lambda **kw: make_synthetic_av(**kw),
                 description="random tensors at CREMA-D shapes: spectrogram 1x257x188 + 1 frame 3x224x224, "
                             "6 classes, 18 clips")
