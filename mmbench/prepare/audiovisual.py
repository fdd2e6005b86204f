"""AVE, Kinetics-Sounds and VGGSound: audio spectrogram + 1-fps frames, from the papers' layouts.

Layouts and list files: :mod:`mmbench.data.layouts.ave`, ``.kinetics_sounds``, ``.vggsound`` (the README
has the trees). ``prepare NAME --src DIR`` writes two modalities, both ``image`` kind:

* ``audio`` ``[1, F, T]``: a log spectrogram (settings below);
* ``visual`` ``[3 * n_frames, size, size]``: frames stacked on the channel axis, resized to
  ``size`` x ``size`` (the papers' *test* transform) and ImageNet-normalised. Their train-time
  RandomResizedCrop / flip is applied by the engine at train time (``augment=true``, the default of
  prepared data sets) on the stored ``size`` x ``size`` frame, not on the original frame.

Defaults and where they come from (``docs``: methods.md "Shared audio-visual setup"; the OGM-GE code):

* Kinetics-Sounds and VGGSound: ``sample_rate=16000``, ``seconds=5``, ``n_fft=256``, ``hop=128``:
  16 kHz mono, tiled, 5 s, clipped to [-1, 1], ``log(|STFT| + 1e-7)`` -> ``[1, 129, 626]`` (the ARL /
  DGL KS loader and the OGM-GE VGGSound loader). Those loaders crop 5 s at a random start after tiling
  to 10 s; a cache holds one fixed crop, the first 5 s. ``n_frames=3`` (``use_video_frames=3``), the
  first 3 frame files as those loaders read them (``frame_pick=first``; [CODE-QUIRK]: they draw random
  indices, then read the first files). "First" by file name (``frame_order=sorted``, the same cache on
  every machine); the released loaders take the first entries of an unsorted ``glob``, whose order depends
  on the filesystem: ``frame_order=listdir`` reproduces that on the machine that prepares the data.
* AVE (``audio_frontend=ogm-ave``): the OGM-GE AVE spectrogram (``obtain_audio_spectrogram.py``): audio
  at ``sample_rate=22050`` (librosa's default there) tiled to 160,000 samples (``seconds=160000/22050``),
  clipped, ``scipy.signal.spectrogram`` with ``nperseg = n_fft = 512`` and ``noverlap = n_fft - hop = 353``,
  ``log(S + 1e-7)``, standardised per clip -> ``[1, 257, 1004]``; a clip shorter than that is tiled
  (the original asserts the shape and its users delete short clips: OGM-GE issue #1).
  ``n_frames=3`` spread evenly over the clip (``frame_pick=even``: that loader's ``seg * i + 1``).
* A pre-extracted spectrogram (``audio_spec/<clip>.npy``, where a layout allows one) must be the same
  ``[F, T]`` log spectrogram (F = ``n_fft // 2 + 1``; T is tiled / cropped); anything else (e.g. the
  ``[1024, 128]`` Kaldi fbanks of OGM-GE's KS ``process_audio.py``) is skipped as ``spectrogram shape``,
  so prepare from the wav files.
* All: ``resampler=soxr_hq`` (what the loaders' ``librosa.load`` uses from librosa 0.10 on; see
  ``frontends.RESAMPLERS``; no resampling when the file is at ``sample_rate`` already); KS / VGGSound
  ``stft_pad=constant`` (the centred STFT's zero padding of librosa >= 0.10; ``reflect`` before);
  ``size=224``, ``normalize=true`` (ImageNet mean / std), ``val_fraction=0.1`` (val carved from
  train, stratified, with the loader's ``split_seed``, when the lists have no val list; AVE's official
  lists have one), ``min_frames`` (a clip with fewer frame files is skipped: 3 for KS / VGGSound, 1 for AVE).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.data.layouts import scan_ave, scan_kinetics_sounds, scan_vggsound
from mmbench.prepare import frontends
from mmbench.prepare.base import Item, SkipItem, register_preparer
from mmbench.prepare.scanned import ScannedPreparer, spaced, stacked_frames

FRAME_PICKS = {"first": frontends.pick, "even": spaced}
AUDIO_FRONTENDS = ("stft", "ogm-ave")


def ogm_ave_spectrogram(samples: np.ndarray, rate: int, length: int, n_fft: int, hop: int) -> np.ndarray:
    """OGM-GE's AVE audio front-end: tile to ``length`` samples, clip to [-1, 1], power spectrogram
    (``scipy.signal.spectrogram``, segments of ``n_fft`` every ``hop``), log, per-clip standardisation.
    Returns float32 :func:`ogm_ave_shape`; the defaults (160,000 samples, 512, 159) give ``[1, 257, 1004]``."""
    from scipy.signal import spectrogram

    x = np.clip(frontends.tile_crop(samples, length), -1.0, 1.0)
    _, _, power = spectrogram(x, rate, nperseg=n_fft, noverlap=n_fft - hop)
    log = np.log(power + 1e-7)
    return ((log - log.mean()) / (log.std() + 1e-9))[None].astype(np.float32)


def ogm_ave_shape(length: int, n_fft: int, hop: int) -> tuple:
    return (1, n_fft // 2 + 1, (length - (n_fft - hop)) // hop)


def spectrogram_from_npy(path: Path, shape: tuple) -> np.ndarray:
    """A pre-extracted spectrogram ``[F, T]`` (or ``[1, F, T]``) from ``.npy``, tiled / cropped in time to
    ``shape``'s T. ``SkipItem`` naming the file when it is unreadable or has another frequency size."""
    try:
        spec = np.load(path, allow_pickle=False)  # never run code from a data file
    except (OSError, ValueError) as err:
        raise SkipItem("unreadable spectrogram", f"{path}: {err}") from None
    spec = np.asarray(spec, dtype=np.float32)
    spec = spec[0] if spec.ndim == 3 and spec.shape[0] == 1 else spec
    if spec.ndim != 2 or spec.shape[0] != shape[1] or spec.shape[1] == 0:
        raise SkipItem("spectrogram shape", f"{path}: shape {spec.shape}, expected [{shape[1]}, T] "
                                            "(prepare from the wav files, or set n_fft to match)")
    reps = -(-shape[2] // spec.shape[1])
    return np.tile(spec, (1, reps))[None, :, :shape[2]].astype(np.float32)


class AudioVisual(ScannedPreparer):
    """Shared by AVE, Kinetics-Sounds and VGGSound (module docstring for the settings)."""

    scan_settings = ("min_frames",)
    rgb_modalities = ("visual",)  # frames [3 * n_frames, size, size]

    def check(self, settings: Dict[str, Any]) -> None:
        if settings["frame_order"] not in frontends.FRAME_ORDERS:
            raise ValueError(f"{self.name}: frame_order={settings['frame_order']!r}; expected one of "
                             f"{', '.join(frontends.FRAME_ORDERS)}")
        if settings["frame_pick"] not in FRAME_PICKS:
            raise ValueError(f"{self.name}: frame_pick={settings['frame_pick']!r}; expected one of "
                             f"{', '.join(FRAME_PICKS)}")
        if settings["audio_frontend"] not in AUDIO_FRONTENDS:
            raise ValueError(f"{self.name}: audio_frontend={settings['audio_frontend']!r}; expected one of "
                             f"{', '.join(AUDIO_FRONTENDS)}")

    @staticmethod
    def length(settings: Dict[str, Any]) -> int:
        return int(round(float(settings["sample_rate"]) * float(settings["seconds"])))

    def audio_shape(self, settings: Dict[str, Any]) -> tuple:
        if settings["audio_frontend"] == "ogm-ave":
            return ogm_ave_shape(self.length(settings), int(settings["n_fft"]), int(settings["hop"]))
        return frontends.spectrogram_shape(int(settings["sample_rate"]), float(settings["seconds"]),
                                           int(settings["n_fft"]), int(settings["hop"]))

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        self.check(settings)
        visual = tuple(frontends.stack_shape(int(settings["n_frames"]), int(settings["size"])))
        return [ModalitySpec("audio", "image", self.audio_shape(settings)), ModalitySpec("visual", "image", visual)]

    def requires(self, listing) -> List[str]:
        return ["soundfile", "scipy", "soxr", "PIL"]

    def list_items(self, src: Path, settings: Dict[str, Any]):
        self.check(settings)
        return super().list_items(src, settings)

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        path = Path(item.paths["audio"])
        if path.suffix == ".npy":
            audio = spectrogram_from_npy(path, self.audio_shape(settings))
        elif settings["audio_frontend"] == "ogm-ave":
            rate = int(settings["sample_rate"])
            samples = frontends.read_audio(path, rate, str(settings["resampler"]))
            audio = ogm_ave_spectrogram(samples, rate, self.length(settings),
                                        int(settings["n_fft"]), int(settings["hop"]))
        else:
            audio = frontends.audio_spectrogram(path, int(settings["sample_rate"]), float(settings["seconds"]),
                                                int(settings["n_fft"]), int(settings["hop"]),
                                                str(settings["resampler"]),
                                                str(settings["stft_pad"]))
        visual = stacked_frames(Path(item.paths["frames"]), FRAME_PICKS[settings["frame_pick"]],
                                int(settings["n_frames"]), int(settings["size"]), "RGB", bool(settings["normalize"]),
                                str(settings["frame_order"]))
        return {"audio": audio, "visual": visual}


_KS_VGG_DEFAULTS = {"audio_frontend": "stft", "sample_rate": 16000, "seconds": 5.0, "n_fft": 256, "hop": 128,
                    "n_frames": 3, "frame_pick": "first", "frame_order": "sorted", "size": 224, "normalize": True, "val_fraction": 0.1,
                    "min_frames": 3, "resampler": "soxr_hq", "stft_pad": "constant"}


class AVE(AudioVisual):
    name = "ave"
    description = "AVE (Audio-Visual Event) audio spectrogram + 3 frames, 28 events; OGM-GE layout"
    scanner = staticmethod(scan_ave)
    defaults = {"audio_frontend": "ogm-ave", "sample_rate": 22050, "seconds": 160000 / 22050, "n_fft": 512,
                "hop": 159, "n_frames": 3, "frame_pick": "even", "frame_order": "sorted", "size": 224, "normalize": True,
                "val_fraction": 0.1, "min_frames": 1, "resampler": "soxr_hq"}
    datasets = {"ave": "lists"}
    dataset_descriptions = {"ave": "AVE (prepared cache): audio [1,257,1004] + visual 3 frames, 28 classes, "
                                   "official 3,339 / 402 / 402 split"}


class KineticsSounds(AudioVisual):
    name = "kinetics-sounds"
    description = "Kinetics-Sounds audio spectrogram + 3 frames; ARL class folders or OGM-GE lists"
    scanner = staticmethod(scan_kinetics_sounds)
    defaults = dict(_KS_VGG_DEFAULTS)
    datasets = {"kinetics-sounds": "lists"}
    dataset_descriptions = {"kinetics-sounds": "Kinetics-Sounds (prepared cache): audio [1,129,626] + visual 3 "
                                               "frames; classes from class.txt (31/33/34: the list decides)"}


class VGGSound(AudioVisual):
    name = "vggsound"
    description = "VGGSound audio spectrogram + 3 frames, 309 classes; vggsound.csv + OGM-GE folders"
    scanner = staticmethod(scan_vggsound)
    defaults = dict(_KS_VGG_DEFAULTS)
    datasets = {"vggsound": "lists"}
    dataset_descriptions = {"vggsound": "VGGSound (prepared cache): audio [1,129,626] + visual 3 frames, "
                                        "309 classes, val carved from train"}


register_preparer(AVE())
register_preparer(KineticsSounds())
register_preparer(VGGSound())
