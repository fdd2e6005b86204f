"""Transcriptions of the released loaders' numerics, for the side-by-side tests of ``mmbench.prepare``.

Each function re-states, in plain numpy / Pillow and float64 where the released code's precision is
not the point, what the released dataset class computes for one sample; none imports mmbench. They
follow the released code as run with current libraries (librosa >= 0.10: ``librosa.load`` resamples
with ``soxr_hq``, ``librosa.stft`` pads the centred frames with zeros).

* :func:`cramed_audio`, :func:`cramed_test_image`: OGM-GE ``CramedDataset.__getitem__`` (also PMR,
  ARL, DGL): ``librosa.load(sr=22050)``, ``np.tile(x, 3)[:22050 * 3]``, clip to [-1, 1],
  ``log(|librosa.stft(n_fft=512, hop_length=353)| + 1e-7)``; test image: the first entry of
  ``os.listdir(folder)``, ``Resize((224, 224))``, ``ToTensor``, ImageNet ``Normalize``.

* :func:`cramed_train_image`: the same class's *training* image: ``RandomResizedCrop(224)``,
  ``RandomHorizontalFlip()``, ``ToTensor``, ``Normalize`` on the PIL frame as extracted (480 x 360). This
  one is not restated: it runs those torchvision transforms themselves (the released code is exactly
  that ``Compose``), so it needs torchvision; the box and flip it drew are redrawn from the same seed.

* :func:`ave_test_frames`: OGM-GE ``AVDataset.__getitem__`` for AVE, visual part: ``pick_num = 3``,
  ``seg = int(file_num / 3)``, files ``'frame_0000' + str(seg * i + 1) + '.jpg'``, test transform as
  above, stacked as ``[3 (RGB), 3 (frames), 224, 224]``.

* :func:`ks_audio`: ARL / DGL ``KSDataset.__getitem__`` (Kinetics-Sounds), audio part:
  ``librosa.load(sr=16000)``, doubled by ``np.tile(x, 2)`` until at least 10 s, a 5 s crop from a
  random start in ``[0, 5 s]`` (``start`` here), clip, ``log(|librosa.stft(n_fft=256, hop=128)| + 1e-7)``.

* :func:`ks_test_frames`: the same ``KSDataset``, visual part at test time: ``glob(folder/*)`` (the
  filesystem's order, unsorted), its first ``use_video_frames = 3`` entries, ``Resize((224, 224))``,
  ``ToTensor``, ImageNet ``Normalize``, stacked as ``[3 (RGB), 3 (frames), 224, 224]``.

* :func:`ave_audio`: OGM-GE's AVE audio extraction (``pre-processing/obtain_audio_spectrogram.py``,
  whose pickles ``AVDataset`` reads): ``librosa.load`` at its default 22,050 Hz, ``np.tile(x, 10)[:160000]``,
  clip to [-1, 1], ``scipy.signal.spectrogram(x, 22050, nperseg=512, noverlap=353)``, ``log(S + 1e-7)``,
  standardised over the whole clip -> ``[257, 1004]``.

* :func:`surf_test_image`: MMANet / DMRNet ``SURF.__getitem__`` with ``surf_multi_transforms_test``
  (CASIA-SURF): ``cv2.imread`` (BGR, 3 channels also for depth and IR), ``cv2.resize`` to 112 x 112
  (bilinear, half-pixel centres, no antialiasing, rounded to uint8), ``(x - 127.5) / 128``. Restated
  without OpenCV (float bilinear, then rounding), so it is within one grey level of ``cv2.resize``.

``python tests/released_loaders.py`` prints the side-by-side table of ``docs/data-pipelines.md``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406])
IMAGENET_STD = np.array([0.229, 0.224, 0.225])


def librosa_load(path: Path, sr: int) -> np.ndarray:
    """``librosa.load(path, sr=sr)`` (librosa >= 0.10): float32 mono (channel mean), ``soxr_hq``
    resampling fitted to ``ceil(n * sr / rate)`` samples."""
    import soundfile
    import soxr

    y, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    y = y.mean(axis=1)
    if rate == sr:
        return y
    out = soxr.resample(y, rate, sr, quality="soxr_hq")
    n = int(np.ceil(y.shape[-1] * sr / rate))
    return np.pad(out, (0, max(0, n - out.size)))[:n].astype(np.float32)


def librosa_stft_magnitude(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """``|librosa.stft(y, n_fft, hop_length)|`` with librosa >= 0.10 defaults (periodic Hann, centred
    frames, zero padding of ``n_fft // 2`` at both ends), in float64: ``[n_fft // 2 + 1, 1 + L // hop]``."""
    y = np.pad(np.asarray(y, dtype=np.float64), n_fft // 2)
    frames = 1 + (y.size - n_fft) // hop
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    return np.abs(np.fft.rfft(y[idx] * window, axis=1)).T


def cramed_audio(path: Path) -> np.ndarray:
    """The spectrogram ``[257, 188]`` of ``CramedDataset`` for one wav."""
    samples = librosa_load(path, 22050)
    samples = np.tile(samples, 3)[: 22050 * 3]
    samples = np.clip(samples, -1.0, 1.0)
    return np.log(librosa_stft_magnitude(samples, 512, 353) + 1e-7)


def cramed_test_image(folder: Path, size: int = 224) -> np.ndarray:
    """The test-time image ``[3, size, size]`` of ``CramedDataset`` (fps = 1): the first ``os.listdir``
    entry, bilinear resize to size x size, [0, 1], ImageNet-normalised."""
    from PIL import Image

    first = os.listdir(folder)[0]
    with Image.open(folder / first) as image:
        rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
    x = np.asarray(rgb, dtype=np.float64) / 255.0
    return ((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1)


def cramed_train_image(path: Path, seed: int, size: int = 224):
    """``(image [3, size, size] float64, (top, left, height, width), flipped)``: ``CramedDataset``'s
    training transform of the frame ``path`` with torch's generator seeded with ``seed`` (one frame,
    fps = 1), and the crop box (original pixels) and flip it drew."""
    import torch
    from PIL import Image
    from torchvision import transforms

    with Image.open(path) as image:
        rgb = image.convert("RGB")
    released = transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(),
                                   transforms.Normalize(list(IMAGENET_MEAN), list(IMAGENET_STD))])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        out = released(rgb).double().numpy()
        torch.manual_seed(seed)  # the same draws again, read out: the crop's, then the flip's
        box = transforms.RandomResizedCrop.get_params(rgb, [0.08, 1.0], [3 / 4, 4 / 3])
        flipped = bool(torch.rand(1) < 0.5)
    return out, tuple(int(v) for v in box), flipped


def original_frames(folder: Path, count: int = 3, width: int = 480, height: int = 360) -> list:
    """``count`` PNG frames of CREMA-D's video size: smooth colour fields (a random 20 x 15 grid, bicubic
    up-sampled: features of about 24 px, like a face's) plus pixel noise of 3 grey levels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for k in range(count):
        coarse = Image.fromarray(rng.uniform(0, 255, size=(15, 20, 3)).astype(np.uint8))
        smooth = np.asarray(coarse.resize((width, height), Image.BICUBIC), dtype=np.float64)
        image = np.clip(smooth + rng.normal(0, 3, size=smooth.shape), 0, 255).astype(np.uint8)
        paths.append(folder / f"frame{k}.png")
        Image.fromarray(image).save(paths[-1])
    return paths


def crop_side_by_side(paths, seeds=range(16), size: int = 224) -> dict:
    """mmbench's training crop of the stored (prepared) frame against :func:`cramed_train_image` on the
    original frame, draw by draw with the same seeds, under both ``crop_geometry`` settings:
    boxes and flips equal (count), max and mean |diff| in normalised units."""
    import torch
    from PIL import Image

    from mmbench.data.base import ModalitySpec
    from mmbench.frame_crop import OriginalGeometryCrop
    from mmbench.prepare import frontends
    from mmbench.streaming import paper_augmentation

    spec = ModalitySpec("visual", "image", (3, size, size))
    rows, draws = {}, 0
    for geometry in ("original", "stored"):
        maxes, means, same = [], [], 0
        for path in paths:
            with Image.open(path) as image:
                original = (image.size[1], image.size[0])
                stored = torch.from_numpy(frontends.frame_array(image, size, True))  # what prepare stores
            transform = paper_augmentation(spec, True, original if geometry == "original" else None)
            for seed in seeds:
                ref, box, flipped = cramed_train_image(path, seed, size)
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed)
                    ours = transform(stored.clone()).double().numpy()
                    torch.manual_seed(seed)
                    drawn = OriginalGeometryCrop((size, size), original).params(), bool(torch.rand(1) < 0.5)
                same += drawn == (box, flipped)
                maxes.append(np.abs(ours - ref).max())
                means.append(np.abs(ours - ref).mean())
        draws = len(maxes)
        rows[f"CREMA-D train crop, crop_geometry={geometry}: max |diff|"] = float(max(maxes))
        rows[f"CREMA-D train crop, crop_geometry={geometry}: mean |diff|"] = float(np.mean(means))
        if geometry == "original":
            rows[f"CREMA-D train crop, crop_geometry=original: box and flip equal to the released draw (of {draws})"] \
                = int(same)
    return rows


def ks_audio(path: Path, start: int = 0) -> np.ndarray:
    """The spectrogram ``[129, 626]`` of ``KSDataset`` for one wav and crop start (in samples)."""
    rate = 16000
    sample = librosa_load(path, rate)
    while len(sample) / rate < 10.0:
        sample = np.tile(sample, 2)
    crop = np.clip(sample[start:start + rate * 5], -1.0, 1.0)
    return np.log(librosa_stft_magnitude(crop, 256, 128) + 1e-7)


def ks_side_by_side(wavs) -> dict:
    """Max difference of mmbench's Kinetics-Sounds audio (its fixed crop: the first 5 s) from
    :func:`ks_audio` with the crop starting at 0."""
    from mmbench.prepare import frontends

    diffs = [np.abs(frontends.audio_spectrogram(w, 16000, 5.0, 256, 128)[0].astype(np.float64) - ks_audio(w)).max()
             for w in wavs]
    return {"Kinetics-Sounds audio (crop start 0), defaults: max |diff| (log)": float(max(diffs))}


def ks_test_frames(folder: Path, size: int = 224) -> np.ndarray:
    """The test-time frames ``[3, 3, size, size]`` (RGB, frame) of ``KSDataset``: the first 3 entries of
    ``glob(folder/*)`` in the filesystem's order."""
    import glob

    from PIL import Image

    out = []
    for path in glob.glob(os.path.join(str(folder), "*"))[:3]:
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
        x = np.asarray(rgb, dtype=np.float64) / 255.0
        out.append(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(out, axis=1)


def ks_frames_side_by_side(visual_root: Path, clips) -> dict:
    """Max difference of mmbench's Kinetics-Sounds frames (``frame_pick=first``) from :func:`ks_test_frames`
    under each ``frame_order``, and whether the fixture's ``os.listdir`` order differs from the sorted one."""
    from mmbench.prepare.audiovisual import FRAME_PICKS
    from mmbench.prepare.frontends import FRAME_ORDERS
    from mmbench.prepare.scanned import stacked_frames

    rows = {}
    for order in FRAME_ORDERS:
        diffs = []
        for clip in clips:
            ours = stacked_frames(visual_root / clip, FRAME_PICKS["first"], 3, 224, "RGB", True, order)
            ours = ours.astype(np.float64).reshape(3, 3, 224, 224).transpose(1, 0, 2, 3)
            diffs.append(np.abs(ours - ks_test_frames(visual_root / clip)).max())
        rows[f"Kinetics-Sounds test frames, frame_order={order}: max |diff|"] = float(max(diffs))
    rows["Kinetics-Sounds fixture: clips whose listdir order is not the sorted one"] = int(sum(
        os.listdir(visual_root / c)[:3] != sorted(os.listdir(visual_root / c))[:3] for c in clips))
    return rows


def ave_audio(path: Path) -> np.ndarray:
    """The standardised log spectrogram ``[257, 1004]`` of OGM-GE's AVE audio extraction for one wav."""
    from scipy import signal

    samples = librosa_load(path, 22050)
    resamples = np.tile(samples, 10)[:160000]
    resamples = np.clip(resamples, -1.0, 1.0)
    _, _, spectrogram = signal.spectrogram(resamples, 22050, nperseg=512, noverlap=353)
    spectrogram = np.log(spectrogram + 1e-7)
    return (spectrogram - spectrogram.mean()) / (spectrogram.std() + 1e-9)


def ave_audio_side_by_side(wavs) -> dict:
    """Max difference of mmbench's AVE audio (``audio_frontend=ogm-ave`` at the AVE defaults) from :func:`ave_audio`."""
    from mmbench.prepare import frontends
    from mmbench.prepare.audiovisual import AVE, ogm_ave_spectrogram

    d = AVE.defaults
    length = int(round(d["sample_rate"] * d["seconds"]))
    diffs = []
    for wav in wavs:
        samples = frontends.read_audio(wav, d["sample_rate"], d["resampler"])
        ours = ogm_ave_spectrogram(samples, d["sample_rate"], length, d["n_fft"], d["hop"])[0].astype(np.float64)
        diffs.append(np.abs(ours - ave_audio(wav)).max())
    return {"AVE audio (obtain_audio_spectrogram.py), defaults: max |diff| (standardised log units)": float(max(diffs))}


def _cv2_linear_axis(n_src: int, n_dst: int):
    """Source indices and weights of ``cv2.resize(INTER_LINEAR)`` along one axis (half-pixel centres,
    clamped at the borders)."""
    f = (np.arange(n_dst) + 0.5) * (n_src / n_dst) - 0.5
    f = np.clip(f, 0, n_src - 1)
    i0 = np.floor(f).astype(int)
    i1 = np.minimum(i0 + 1, n_src - 1)
    return i0, i1, f - i0


def surf_test_image(path: Path, size: int = 112) -> np.ndarray:
    """The test-time image ``[3, size, size]`` (BGR) of the released CASIA-SURF loader, in [-1, 1]."""
    from PIL import Image

    with Image.open(path) as image:
        bgr = np.asarray(image.convert("RGB"), dtype=np.float64)[:, :, ::-1]  # cv2.imread: BGR, 3 channels
    y0, y1, wy = _cv2_linear_axis(bgr.shape[0], size)
    x0, x1, wx = _cv2_linear_axis(bgr.shape[1], size)
    rows = bgr[y0] * (1 - wy)[:, None, None] + bgr[y1] * wy[:, None, None]
    out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    out = np.clip(np.round(out), 0, 255)
    return ((out - 127.5) / 128).transpose(2, 0, 1)


def surf_side_by_side(paths) -> dict:
    """Max difference, in grey levels of [0, 255], of mmbench's CASIA-SURF images (``resize=released``
    and ``pillow``) from :func:`surf_test_image` brought to mmbench's layout (RGB order, [0, 1]; the
    harness standardises each modality, so the affine scale does not matter), per source size."""
    from mmbench.prepare.casia_surf import read_image_unsmoothed
    from mmbench.prepare.scanned import read_image

    rows = {}
    for resize, read in (("released", read_image_unsmoothed), ("pillow", read_image)):
        for label, group in paths.items():
            diffs = []
            for path in group:
                ours = read(path, 112, "RGB").astype(np.float64)
                ref = (surf_test_image(path)[::-1] * 128 + 127.5) / 255.0
                diffs.append(np.abs(ours - ref).max() * 255)
            rows[f"CASIA-SURF test image, resize={resize}, {label}: max |diff| (grey levels)"] = float(max(diffs))
    return rows


def ave_test_frames(folder: Path, size: int = 224) -> np.ndarray:
    """The test-time frames ``[3, 3, size, size]`` (RGB, frame) of OGM-GE's ``AVDataset`` for AVE."""
    from PIL import Image

    seg = int(len(os.listdir(folder)) / 3)
    out = []
    for i in range(3):
        with Image.open(folder / ("frame_0000" + str(seg * i + 1) + ".jpg")) as image:
            rgb = image.convert("RGB").resize((size, size), Image.BILINEAR)
        x = np.asarray(rgb, dtype=np.float64) / 255.0
        out.append(((x - IMAGENET_MEAN) / IMAGENET_STD).transpose(2, 0, 1))
    return np.stack(out, axis=1)


def ave_side_by_side(visual_root: Path, clips) -> dict:
    """Max difference of mmbench's AVE visual pipeline (``frame_pick=even``) from :func:`ave_test_frames`."""
    from mmbench.prepare.audiovisual import FRAME_PICKS
    from mmbench.prepare.scanned import stacked_frames

    diffs = []
    for clip in clips:
        ours = stacked_frames(visual_root / clip, FRAME_PICKS["even"], 3, 224, "RGB", True).astype(np.float64)
        ours = ours.reshape(3, 3, 224, 224).transpose(1, 0, 2, 3)  # [frame * RGB] -> [RGB, frame]
        diffs.append(np.abs(ours - ave_test_frames(visual_root / clip)).max())
    return {"AVE test frames (3 of 9, frame_pick=even): max |diff|": float(max(diffs))}


def side_by_side(root: Path, clips) -> dict:
    """Maximum differences of mmbench's front-ends from the transcriptions over ``clips`` of a papers'
    layout under ``root``, per setting: ``{row: value}`` (log units for audio, normalised units for images)."""
    from mmbench.prepare import frontends

    rows = {}
    high = 257 - int(np.ceil(8000 / (22050 / 512)))  # bins above 8 kHz (the 16 kHz source's Nyquist)
    for resampler, pad in [("soxr_hq", "constant"), ("scipy", "constant"), ("soxr_hq", "reflect")]:
        diffs, ours_high, ref_high = [], [], []
        for clip in clips:
            wav = root / "AudioWAV" / f"{clip}.wav"
            ours = frontends.audio_spectrogram(wav, 22050, 3.0, 512, 353, resampler, pad)[0].astype(np.float64)
            ref = cramed_audio(wav)
            diffs.append(np.abs(ours - ref).max())
            ours_high.append(ours[-high:].mean())
            ref_high.append(ref[-high:].mean())
        rows[f"CREMA-D audio, resampler={resampler}, stft_pad={pad}: max |diff| (log)"] = float(max(diffs))
        rows[f"CREMA-D audio, resampler={resampler}, stft_pad={pad}: mean log-magnitude above 8 kHz, "
             f"mmbench / released"] = (float(np.mean(ours_high)), float(np.mean(ref_high)))
    for order in frontends.FRAME_ORDERS:
        diffs = [np.abs(frontends.folder_frames(root / "Image-01-FPS" / c, 1, 224, True, order).astype(np.float64)
                        - cramed_test_image(root / "Image-01-FPS" / c)).max() for c in clips]
        rows[f"CREMA-D test image, frame_order={order}: max |diff|"] = float(max(diffs))
    return rows


def textured_images(folder: Path) -> dict:
    """Smooth random JPEG faces-sized images: 3 larger than 112 (downscaled) and 3 smaller (upscaled)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {"downscaled from 200 x 160": [], "upscaled from 90 x 80": []}
    rng = np.random.default_rng(0)
    for label, (h, w) in (("downscaled from 200 x 160", (200, 160)), ("upscaled from 90 x 80", (90, 80))):
        for k in range(3):
            coarse = rng.uniform(0, 255, size=(h // 8 + 1, w // 8 + 1, 3))
            image = np.kron(coarse, np.ones((8, 8, 1)))[:h, :w] + rng.normal(0, 20, size=(h, w, 3))
            path = folder / f"{h}x{w}_{k}.png"
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(path)
            out[label].append(path)
    return out


if __name__ == "__main__":  # the table of docs/data-pipelines.md
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(Path(__file__).parent.parent))  # the package, not tests/mmbench, is `mmbench`
    from field_fixtures import write_frames
    from prepare_fixtures import cremad_clips, write_cremad_papers, write_wav

    clips = cremad_clips()[:15]
    with tempfile.TemporaryDirectory() as tmp:
        write_cremad_papers(Path(tmp), clips, frames=3)
        rows = side_by_side(Path(tmp), clips)
        for k in range(5):
            write_frames(Path(tmp) / "ave" / f"clip{k}", k, 9)
        rows.update(ave_side_by_side(Path(tmp) / "ave", [f"clip{k}" for k in range(5)]))
        wavs = [Path(tmp) / "ks" / f"clip{k}.wav" for k in range(5)]
        for k, wav in enumerate(wavs):
            write_wav(wav, k, 1.5 + k, seed=k)
        rows.update(ks_side_by_side(wavs))
        rows.update(ave_audio_side_by_side(wavs))
        for k in range(5):
            write_frames(Path(tmp) / "ks-frames" / f"clip{k}", 10 + k, 6)
        rows.update(ks_frames_side_by_side(Path(tmp) / "ks-frames", [f"clip{k}" for k in range(5)]))
        rows.update(surf_side_by_side(textured_images(Path(tmp) / "surf")))
        rows.update(crop_side_by_side(original_frames(Path(tmp) / "frames")))
        for row, value in rows.items():
            shown = (" / ".join(f"{v:.2f}" for v in value) if isinstance(value, tuple)
                     else str(value) if isinstance(value, int) else f"{value:.2e}")
            print(f"| {row} | {shown} |")
