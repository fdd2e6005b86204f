"""Audio and visual front-ends shared by every audio-visual preparer, built on maintained decoders.

* audio: ``soundfile`` reads, ``soxr`` resamples (what ``librosa.load`` uses since librosa 0.10, its
  ``soxr_hq`` default; :data:`RESAMPLERS` names the alternatives), ``scipy.signal.ShortTimeFFT`` transforms;
* frames: ``Pillow`` reads and resizes JPEG frames;
* video: ``PyAV`` (FFmpeg) decodes a video file to RGB frames at a stated fps.

The defaults of the callers are the papers' (the released OGM-GE / ARL / DGL code); each preparer's
docstring lists them. Decoders are optional extras
(``pip install -e ".[audio,video]"``); :func:`require` names the extra when one is missing.

Every decoding problem raises :class:`SkipItem` naming the file, so a bad clip is reported, not fatal.
"""
from __future__ import annotations

import importlib
import os
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from mmbench.prepare.base import SkipItem

# ImageNet channel statistics, the normalisation of the papers' visual transforms.
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
EXTRAS = {"soundfile": "audio", "soxr": "audio", "resampy": "audio-kaiser", "av": "video", "PIL": "video"}

#: ``resampler=`` settings of the audio front-ends. The released loaders call ``librosa.load(path,
#: sr=...)``, whose default resampler is ``soxr_hq`` from librosa 0.10 on (``kaiser_best``, i.e.
#: resampy, before): ``soxr_hq`` (default) and ``kaiser_best`` follow librosa (output length
#: ``ceil(n * ratio)``); ``scipy`` is mmbench's earlier ``resample_poly`` (its filter leaks far more
#: energy above 8 kHz when 16 kHz audio is upsampled: mean log-magnitude -5.3 there against -11.4 to
#: -11.9 with librosa's resamplers on CREMA-D).
RESAMPLERS = ("soxr_hq", "kaiser_best", "scipy")
#: ``frame_order=`` settings: which frames of a clip's folder are "the first n". ``sorted`` (default):
#: by file name, the same on every machine; ``listdir``: the unsorted ``os.listdir`` order the released
#: loaders take (filesystem dependent: on ext4 it gave ``00030.jpg`` first for 14 of 15 CREMA-D clips).
FRAME_ORDERS = ("sorted", "listdir")
#: ``stft_pad=`` settings: how the centred STFT pads the signal's ends (only the first and last frames
#: differ). ``constant`` (zeros, default): ``librosa.stft`` from librosa 0.10 on, the release that also
#: made ``soxr_hq`` the resampler; ``reflect``: librosa before 0.10 (pair it with ``kaiser_best``).
STFT_PADS = {"constant": "zeros", "reflect": "even"}


def require(module: str):
    """Import ``module`` or raise ``ImportError`` saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        extra = EXTRAS.get(module, module)
        raise ImportError(f"{module} is needed to decode this data set: pip install -e \".[{extra}]\" "
                          f"(or pip install {'Pillow' if module == 'PIL' else module})") from err


# ----------------------------------------------------------------------------------------- audio
def resample(samples: np.ndarray, rate: int, sample_rate: int, resampler: str = "soxr_hq") -> np.ndarray:
    """``samples`` ``[L]`` at ``rate`` -> float32 at ``sample_rate`` with one of :data:`RESAMPLERS`.

    ``soxr_hq`` / ``kaiser_best`` reproduce ``librosa.resample(res_type=...)``: the resampler's output
    fitted (cut or zero-padded) to ``ceil(L * sample_rate / rate)`` samples.
    """
    if resampler not in RESAMPLERS:
        raise ValueError(f"resampler={resampler!r}: expected one of {', '.join(RESAMPLERS)}")
    if rate == sample_rate:
        return samples.astype(np.float32)
    if resampler == "scipy":
        from scipy.signal import resample_poly

        g = gcd(int(rate), int(sample_rate))
        return resample_poly(samples, sample_rate // g, rate // g).astype(np.float32)
    if resampler == "soxr_hq":
        out = require("soxr").resample(samples, int(rate), int(sample_rate), quality="soxr_hq")
    else:
        out = require("resampy").resample(samples, int(rate), int(sample_rate), filter="kaiser_best", axis=-1)
    n = int(np.ceil(samples.size * float(sample_rate) / rate))
    out = out[:n] if out.size >= n else np.pad(out, (0, n - out.size))
    return np.ascontiguousarray(out, dtype=np.float32)


def read_audio(path: Path, sample_rate: int, resampler: str = "soxr_hq") -> np.ndarray:
    """Mono float32 samples ``[L]`` of ``path`` at ``sample_rate`` (channels averaged, :func:`resample`).

    Raises:
        SkipItem: ``unreadable audio`` (naming the file and the decoder's message) or ``empty audio``.
    """
    soundfile = require("soundfile")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises LibsndfileError / RuntimeError on a corrupt file
        raise SkipItem("unreadable audio", f"{path}: {err}") from None
    samples = samples.mean(axis=1)
    if samples.size == 0:
        raise SkipItem("empty audio", f"{path}: no samples")
    return resample(samples, int(rate), int(sample_rate), resampler)


def tile_crop(samples: np.ndarray, length: int) -> np.ndarray:
    """The first ``length`` samples of ``samples`` repeated end to end.

    The papers' CREMA-D code tiles 3x and crops 3 s; tiling until long enough is the same for any clip
    of at least 1 s and, unlike a fixed 3x, never leaves a short clip short (the spectrogram-shape
    assertion failure of OGM-GE issue #1).
    """
    reps = -(-length // samples.size)  # ceil
    return np.tile(samples, reps)[:length]


def log_spectrogram(samples: np.ndarray, n_fft: int, hop: int, eps: float = 1e-7, pad: str = "constant") -> np.ndarray:
    """``log(|STFT| + eps)`` as float32 ``[1, n_fft // 2 + 1, 1 + L // hop]``.

    A periodic Hann window of ``n_fft``, frames centred at ``0, hop, 2 hop, ...`` with the signal
    padded at the ends by ``pad`` (:data:`STFT_PADS`: zeros as librosa >= 0.10, reflection as
    before), no scaling: ``librosa.stft(samples, n_fft=n_fft, hop_length=hop)`` of the papers' code,
    computed with ``scipy.signal.ShortTimeFFT`` (single-threaded, so a row does not depend on which
    process computed it).
    """
    from scipy.signal import ShortTimeFFT, get_window

    if pad not in STFT_PADS:
        raise ValueError(f"stft_pad={pad!r}: expected one of {', '.join(STFT_PADS)}")

    stft = ShortTimeFFT(get_window("hann", n_fft), hop=hop, fs=1.0, mfft=n_fft, fft_mode="onesided", scale_to=None)
    spec = stft.stft(np.asarray(samples, dtype=np.float64), p0=0, p1=1 + samples.size // hop, padding=STFT_PADS[pad])
    return np.log(np.abs(spec) + eps)[None].astype(np.float32)


def audio_spectrogram(path: Path, sample_rate: int, seconds: float, n_fft: int, hop: int,
                      resampler: str = "soxr_hq", pad: str = "constant") -> np.ndarray:
    """The papers' audio front-end: read at ``sample_rate`` (``resampler``), tile/crop to ``seconds``, clip
    to [-1, 1], log-magnitude STFT. Returns float32 ``[1, n_fft // 2 + 1, 1 + int(sample_rate * seconds) // hop]``."""
    samples = tile_crop(read_audio(path, sample_rate, resampler), int(round(sample_rate * seconds)))
    return log_spectrogram(np.clip(samples, -1.0, 1.0), n_fft, hop, pad=pad)


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


def frame_files(folder: Path, order: str = "sorted") -> List[Path]:
    """The JPEG/PNG frames of ``folder`` in ``order`` (:data:`FRAME_ORDERS`); empty if there is no folder."""
    if order not in FRAME_ORDERS:
        raise ValueError(f"frame_order={order!r}: expected one of {', '.join(FRAME_ORDERS)}")
    names = os.listdir(folder) if folder.is_dir() else []
    files = [folder / n for n in names if Path(n).suffix.lower() in (".jpg", ".jpeg", ".png")]
    if order == "sorted":
        files.sort()
    return files


def folder_frames(folder: Path, n_frames: int, size: int, normalize: bool, order: str = "sorted",
                  sizes: Optional[List[Tuple[str, int, int]]] = None) -> np.ndarray:
    """The first ``n_frames`` JPEG/PNG frames of ``folder`` (in ``order``, :data:`FRAME_ORDERS`: by name,
    or the ``os.listdir`` order of the released loaders) as float32 ``[3 * n_frames, size, size]``
    (frames stacked on the channel axis, frame-major). ``sizes``, when given, receives
    ``(file, width, height)`` of each frame read, before the resize.

    Raises:
        SkipItem: ``missing frames`` (no folder or no image in it), ``unreadable frame`` (naming it).
    """
    pil = require("PIL.Image")
    files = frame_files(folder, order)
    if not files:
        raise SkipItem("missing frames", f"{folder}: no .jpg/.png frames")
    out = []
    for i in pick(len(files), n_frames):
        try:
            with pil.open(files[i]) as image:
                if sizes is not None:
                    sizes.append((str(files[i]), *image.size))
                out.append(frame_array(image, size, normalize))
        except (OSError, ValueError) as err:
            raise SkipItem("unreadable frame", f"{files[i]}: {err}") from None
    return np.concatenate(out, axis=0)


def video_frames(path: Path, fps: float, n_frames: int, size: int, normalize: bool,
                 sizes: Optional[List[Tuple[str, int, int]]] = None) -> np.ndarray:
    """Frames of the video ``path`` sampled at ``fps`` (the frame shown at t = 0, 1/fps, 2/fps, ...,
    as ``ffmpeg -vf fps=...`` extraction gives), the first ``n_frames`` of them, as float32
    ``[3 * n_frames, size, size]``; a video shorter than ``n_frames / fps`` repeats its last sample.
    ``sizes``, when given, receives ``(file, width, height)`` of each frame taken, before the resize.

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
                    if sizes is not None:
                        sizes.append((str(path), frame.width, frame.height))
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
