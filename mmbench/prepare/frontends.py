"""Audio and visual front-ends shared by every audio-visual preparer, built on maintained decoders.

* audio: ``soundfile`` reads, ``scipy.signal.resample_poly`` resamples, ``scipy.signal.ShortTimeFFT`` transforms;
* frames: ``Pillow`` reads and resizes JPEG frames;
* video: ``PyAV`` (FFmpeg) decodes a video file to RGB frames at a stated fps.

The defaults of the callers are the papers' (the released OGM-GE / ARL / DGL code); each preparer's
docstring lists them. Decoders are optional extras
(``pip install -e ".[audio,video]"``); :func:`require` names the extra when one is missing.

Every decoding problem raises :class:`SkipItem` naming the file, so a bad clip is reported, not fatal.
"""
from __future__ import annotations

import importlib
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import List, Sequence

import numpy as np

from mmbench.prepare.base import SkipItem

# ImageNet channel statistics, the normalisation of the papers' visual transforms.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EXTRAS = {"soundfile": "audio", "av": "video", "PIL": "video"}


def require(module: str):
    """Import ``module`` or raise ``ImportError`` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS.get(module, module)
        raise ImportError(f"{module} is needed to decode this data set: pip install -e \".[{extra}]\" "
                          f"(or pip install {'Pillow' if module == 'PIL' else module})") from err


# ----------------------------------------------------------------------------------------- audio
def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples ``[L]`` of ``path`` at ``sample_rate`` (channels averaged, polyphase resampling).

    Raises:
        SkipItem: ``unreadable audio`` (naming the file and the decoder's message) or ``empty audio``.
    """
    soundfile = require("soundfile")
    from scipy.signal import resample_poly

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on a corrupt file
        raise SkipItem("unreadable audio", f"{path}: {err}") from None
    samples = samples.mean(axis=1)
    if samples.size == 0:
        raise SkipItem("empty audio", f"{path}: no samples")
    if rate != sample_rate:
        g = gcd(int(rate), int(sample_rate))
        samples = resample_poly(samples, sample_rate // g, rate // g).astype(np.float32)
    return samples


def tile_crop(samples: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` samples of ``samples`` repeated end to end.

    The papers' CREMA-D code tiles 3x and crops 3 s; tiling until long enough is the same for any clip
    of at least 1 s and, unlike a fixed 3x, never leaves a short clip short (the spectrogram-shape
    assertion failure of OGM-GE issue #1).
    """
    reps = -(-length // samples.size)  # ceil
    return np.tile(samples, reps)[:length]


def log_spectrogram(samples: np.ndarray, n_fft: int, hop: int, eps: float = 1e-7) -> np.ndarray:
    """``log(|STFT| + eps)`` as float32 ``[1, n_fft // 2 + 1, 1 + L // hop]``.

    A periodic Hann window of ``n_fft``, frames centred at ``0, hop, 2 hop, ...`` with the signal
    reflected at the edges, no scaling: ``librosa.stft(samples, n_fft=n_fft, hop_length=hop)`` of the
    papers' code (librosa < 0.10 padded by reflection), computed with ``scipy.signal.ShortTimeFFT``
    (single-threaded, so a row does not depend on which process computed it).
    """
    from scipy.signal import ShortTimeFFT, get_window

    stft = ShortTimeFFT(get_window("hann", n_fft), hop=hop, fs=1.0, mfft=n_fft, fft_mode="onesided", scale_to=None)
    spec = stft.stft(np.asarray(samples, dtype=np.float64), p0=0, p1=1 + samples.size // hop, padding="even")
    return np.log(np.abs(spec) + eps)[None].astype(np.float32)


def audio_spectrogram(path: Path, sample_rate: int, seconds: float, n_fft: int, hop: int) -> np.ndarray:
    """The papers' audio front-end: read at ``sample_rate``, tile/crop to ``seconds``, clip to [-1, 1],
    log-magnitude STFT. Returns float32 ``[1, n_fft // 2 + 1, 1 + int(sample_rate * seconds) // hop]``."""
    samples = tile_crop(read_audio(path, sample_rate), int(round(sample_rate * seconds)))
    return log_spectrogram(np.clip(samples, -1.0, 1.0), n_fft, hop)


def spectrogram_shape(sample_rate: int, seconds: float, n_fft: int, hop: int) -> tuple:
    return (1, n_fft // 2 + 1, 1 + int(round(sample_rate * seconds)) // hop)


# ---------------------------------------------------------------------------------------- frames
def frame_array(image, size: int, normalize: bool) -> np.ndarray:
    """A PIL image -> float32 ``[3, size, size]``: RGB, bilinear resize to size x size (the papers' test
    transform ``Resize((224, 224))``), scaled to [0, 1], ImageNet-normalised when ``normalize``."""
    pil = require("PIL.Image")
    rgb = image.convert("RGB").resize((size, size), pil.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32) / 255.0
    if normalize:
        x = (x - IMAGENET_MEAN) / IMAGENET_STD
    return x.transpose(2, 0, 1).astype(np.float32)


def pick(count: int, n: int) -> List[int]:
    """Indices of the first ``n`` of ``count`` frames, the last repeated when there are fewer (the
    papers' loaders read the first ``n`` files of a clip's frame folder)."""
    return [min(i, count - 1) for i in range(n)]


def folder_frames(folder: Path, n_frames: int, size: int, normalize: bool) -> np.ndarray:
    """The first ``n_frames`` JPEG/PNG frames of ``folder`` (sorted by name) as float32
    ``[3 * n_frames, size, size]`` (frames stacked on the channel axis, frame-major).

    Raises:
        SkipItem: ``missing frames`` (no folder or no image in it), ``unreadable frame`` (naming it).
    """
    pil = require("PIL.Image")
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")) \
        if folder.is_dir() else []
    if not files:
        raise SkipItem("missing frames", f"{folder}: no .jpg/.png frames")
    out = []
    for i in pick(len(files), n_frames):
        try:
            with pil.open(files[i]) as image:
                out.append(frame_array(image, size, normalize))
        except (OSError, ValueError) as err:
            raise SkipItem("unreadable frame", f"{files[i]}: {err}") from None
    return np.concatenate(out, axis=0)


def video_frames(path: Path, fps: float, n_frames: int, size: int, normalize: bool) -> np.ndarray:
    """Frames of the video ``path`` sampled at ``fps`` (the frame shown at t = 0, 1/fps, 2/fps, ...,
    as ``ffmpeg -vf fps=...`` extraction gives), the first ``n_frames`` of them, as float32
    ``[3 * n_frames, size, size]``; a video shorter than ``n_frames / fps`` repeats its last sample.

    Raises:
        SkipItem: ``unreadable video`` (naming the file and FFmpeg's message) or ``empty video``.
    """
    av = require("av")
    require("PIL.Image")
    step = Fraction(1) / Fraction(fps).limit_denominator(1000)
    picked = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                # keep the first frame at or after each sampling time
                while len(picked) < n_frames and t + 1e-6 >= float(len(picked) * step):
                    picked.append(frame_array(frame.to_image(), size, normalize))
                if len(picked) >= n_frames:
                    break
    except (av.error.FFmpegError if hasattr(av, "error") else Exception, OSError, IndexError) as err:
        raise SkipItem("unreadable video", f"{path}: {err}") from None
    if not picked:
        raise SkipItem("empty video", f"{path}: no decodable frame")
    picked += [picked[-1]] * (n_frames - len(picked))
    return np.concatenate(picked, axis=0)


def stack_shape(n_frames: int, size: int) -> Sequence[int]:
    return (3 * n_frames, size, size)
