"""Tiny data sets written in the exact on-disk layouts ``prepare`` reads (shared by the prepare tests).

Each writer uses the decoders' own encoders (soundfile for wav, Pillow for jpg, PyAV for video), so
the files are real ones of the formats the data sets ship in. Content depends on the class (a tone
whose pitch, a frame whose colour follows the label), so a short training run has something to learn.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

CREMAD_CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
# Small front-end settings for tests; the defaults are the papers' (257 x 188 spectrogram, 224 px).
SMALL_AV = ["sample_rate=8000", "seconds=1", "n_fft=64", "hop=32", "size=32", "n_frames=1"]


def tone(label: int, seconds: float, rate: int = 16000, seed: int = 0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    noise = np.random.default_rng(seed).normal(scale=0.05, size=t.size)
    return (0.5 * np.sin(2 * np.pi * (300 + 150 * label) * t) + noise).astype(np.float32)


def frame_image(label: int, seed: int, size: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rgb = np.array([40 * label, 255 - 40 * label, 128], dtype=np.float32)
    return np.clip(rgb + rng.normal(scale=20, size=(size, size, 3)), 0, 255).astype(np.uint8)


def cremad_clips(speakers: Sequence[int] = (1001, 1002, 1003, 1004), sentences: Sequence[str] = ("DFA", "IEO"),
                 ) -> List[str]:
    return [f"{s}_{sent}_{emo}_XX" for s in speakers for sent in sentences for emo in CREMAD_CLASSES]


def write_wav(path: Path, label: int, seconds: float, seed: int) -> None:
    import soundfile

    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(str(path), tone(label, seconds, seed=seed), 16000)


def write_lists(root: Path, clips: Sequence[str], test_every: int = 4) -> Dict[str, List[str]]:
    """``train.csv`` / ``test.csv`` of ``clip,LABEL`` lines: every ``test_every``-th clip in test."""
    parts: Dict[str, List[str]] = {"train": [], "test": []}
    for i, clip in enumerate(clips):
        parts["test" if i % test_every == 0 else "train"].append(clip)
    for part, names in parts.items():
        (root / f"{part}.csv").write_text("".join(f"{c},{c.split('_')[2]}\n" for c in names))
    return parts


def write_cremad_papers(root: Path, clips: Sequence[str], short: Sequence[str] = (), frames: int = 2) -> None:
    """The papers' layout: ``AudioWAV/<clip>.wav`` (16 kHz, 1.5 s; 0.3 s for ``short``) and
    ``Image-01-FPS/<clip>/*.jpg``."""
    from PIL import Image

    for i, clip in enumerate(clips):
        label = CREMAD_CLASSES.index(clip.split("_")[2])
        write_wav(root / "AudioWAV" / f"{clip}.wav", label, 0.3 if clip in short else 1.5, seed=i)
        folder = root / "Image-01-FPS" / clip
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(frames):
            Image.fromarray(frame_image(label, seed=100 * i + k)).save(folder / f"{k + 1:05d}.jpg")


def write_video(path: Path, label: int, seconds: float, seed: int, fps: int = 5, codec: str = "flv") -> None:
    """A short video with PyAV (FLV1 in an .flv container, as CREMA-D's VideoFlash)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = 48, 48, "yuv420p"
        for k in range(int(seconds * fps)):
            frame = av.VideoFrame.from_ndarray(frame_image(label, seed=100 * seed + k), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_cremad_distribution(root: Path, clips: Sequence[str]) -> None:
    """The distribution as downloaded: ``AudioWAV/*.wav`` and ``VideoFlash/*.flv``."""
    for i, clip in enumerate(clips):
        label = CREMAD_CLASSES.index(clip.split("_")[2])
        write_wav(root / "AudioWAV" / f"{clip}.wav", label, 1.5, seed=i)
        write_video(root / "VideoFlash" / f"{clip}.flv", label, 2.0, seed=i)


def write_mosei(path: Path, sizes=(40, 10, 12), mmsa: bool = False, seq: int = 50,
                seed: int = 0) -> Dict[str, np.ndarray]:
    """A word-aligned CMU-MOSEI pickle: MulT's ``mosei_senti_data.pkl`` (``labels`` [N, 1, 1]) or, with
    ``mmsa``, MMSA's ``aligned_50.pkl`` (``regression_labels`` [N]). Features carry the score's sign;
    audio has a few -inf values, as COVAREP features do. Returns the scores per part."""
    import pickle

    rng = np.random.default_rng(seed)
    data, scores = {}, {}
    for part, n in zip(("train", "valid", "test"), sizes):
        score = np.round(rng.uniform(-3, 3, n) * 3) / 3
        score[:2] = [0.0, -3.4]  # a neutral utterance and one outside [-3, 3]
        sign = np.sign(score)[:, None, None]
        block = {m: (rng.normal(size=(n, seq, d)) + sign).astype(np.float32)
                 for m, d in (("text", 300), ("audio", 74), ("vision", 35))}
        block["audio"][0, 0, :3] = -np.inf
        block["id"] = np.array([[f"vid{part}{i}", str(i)] for i in range(n)])
        if mmsa:
            block["regression_labels"] = score.astype(np.float32)
        else:
            block["labels"] = score.astype(np.float32).reshape(n, 1, 1)
        data[part], scores[part] = block, score
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(data, handle)
    return scores
