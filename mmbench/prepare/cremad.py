"""CREMA-D (Cao et al. 2014): 7,442 clips of 91 actors speaking with one of six emotions; audio + face video.

Layouts read (``prepare crema-d --src ROOT``; ``layout=auto`` picks by the folders present)::

    ROOT/                                   papers' layout (OGM-GE / PMR / ARL / DGL code)
        AudioWAV/1001_DFA_ANG_XX.wav ...
        Image-01-FPS/1001_DFA_ANG_XX/*.jpg  frames extracted at 1 fps (Image-{fps:02d}-FPS, as the code names it)
        train.csv, test.csv                 "clip,LABEL" lists of the published split (optional)

    ROOT/                                   the distribution as downloaded
        AudioWAV/*.wav
        VideoFlash/*.flv                    frames are decoded by prepare at ``fps``

Samples are the clips in ``AudioWAV``; a listed clip without a file is reported, a clip whose frames
or video are missing or unreadable is skipped and reported. Labels come from the list files, else
from the clip name's third field; classes in the papers' order NEU HAP SAD FEA DIS ANG.

Settings (defaults: the released OGM-GE / ARL / DGL code, which share this front-end):

* ``sample_rate=22050``, ``seconds=3``: audio loaded at 22.05 kHz, tiled and cropped to 3 s, clipped
  to [-1, 1]. The distributed wavs are 16 kHz: ``resampler=soxr_hq`` (default) resamples as the
  released ``librosa.load(sr=22050)`` does with librosa >= 0.10; ``kaiser_best`` as with older
  librosa (needs ``resampy``); ``scipy`` is the earlier ``resample_poly`` (``frontends.RESAMPLERS``);
  ``stft_pad=constant``: the STFT's end padding of librosa >= 0.10 (zeros; ``reflect`` before);
* ``n_fft=512``, ``hop=353``: log(|STFT| + 1e-7) -> ``audio`` [1, 257, 188], no normalisation;
* ``fps=1``, ``n_frames=1``: one frame per clip, the first of the 1-fps extraction. ``frame_order``:
  ``sorted`` (default, the first by file name: ``00000.jpg``; the same on every machine) or
  ``listdir`` (the released loaders draw random indices but then read the first entries of the
  unsorted ``os.listdir``, which depends on the filesystem: ``00030.jpg`` for 14 of 15 clips on ext4);
* ``size=224``, ``normalize=true``: resized to 224 x 224 (the papers' *test* transform) and
  ImageNet-normalised -> ``visual`` [3 * n_frames, 224, 224] (frames stacked on the channel axis).
  Training augmentation (the papers' RandomResizedCrop(224) + horizontal flip) is applied at train
  time by the engine (``augment=true``, the default of prepared data sets, ``loader=stream``;
  ``augment=false`` turns it off), cut from the stored 224 x 224 frame;
* ``crop_geometry=original``, ``frame_size=auto``: where that crop is drawn. ``original`` (default,
  the released transform's geometry): drawn as the released ``RandomResizedCrop(224)`` draws it on the
  original frame (area 8-100%, aspect [3/4, 4/3] in original pixels; the same box from the same torch
  draws) and resampled from that region of the stored frame (:mod:`mmbench.frame_crop`; what differs
  is resolution: the stored frame has fewer pixels). The original size is ``frame_size`` (``WxH``,
  480x360 for CREMA-D's videos) or, with ``auto``, that of the first listed clip's first frame; it
  is in the cache's ``notes.frame_size``, and a clip whose frames have another size is skipped,
  naming it. ``stored``: drawn on the stored, squashed 224 x 224 frame (the earlier behaviour): its
  aspect range [3/4, 4/3] is [1.00, 1.78] in original pixels;
* ``layout=auto`` (``papers`` | ``distribution``), ``lists=""``: folder holding ``train.csv`` /
  ``test.csv`` (default: ``ROOT`` if they are there; without lists only ``crema-d-speaker`` can be
  used). mmbench does not ship the published lists: they are distributed with the OGM-GE and PMR
  code (``data/CREMAD/train.csv`` and ``test.csv`` in their repositories).

Data sets registered (both read the same cache):

* ``crema-d``: the published 6,698 / 744 split of OGM-GE (from the user's ``train.csv`` /
  ``test.csv``, checked against the published lists' sizes and SHA-256 of their clip names,
  :mod:`mmbench.prepare.cremad_split`; the verdict is in the cache's ``notes.published_split`` and
  printed by ``prepare``); val carved from train, stratified with ``split_seed`` (default 0), as large as
  test (744 of 6,698, the 5,954 / 744 / 744 of ECCV'24 Re-learning). Not speaker-disjoint: all 91
  actors are in both train and test.
* ``crema-d-speaker``: speaker-disjoint, speakers (first field of the clip name) drawn with
  ``split_seed``: 20% test, 10% val, the rest train (about the TFDS 5,144 / 738 / 1,556 proportions).
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.data.splits import group_split, stratified_split
from mmbench.frame_crop import check_crop_geometry, parse_frame_size
from mmbench.prepare import frontends
from mmbench.prepare.cremad_split import check_published
from mmbench.prepare.base import Item, Listing, PreparedCache, Preparer, SkipItem, register_preparer

CLASSES = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]  # the papers' class_dict order
CLIP_NAME = re.compile(r"^(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{1,2})$")
LAYOUTS = ("auto", "papers", "distribution")
VIDEO_DIR, AUDIO_DIR = "VideoFlash", "AudioWAV"


def frames_dir(settings: Dict[str, Any]) -> str:
    """The papers' frame folder for the fps setting: ``Image-{fps:02d}-FPS`` (``Image-01-FPS`` at 1 fps)."""
    return f"Image-{int(settings['fps']):02d}-FPS"
# val as large as test on the published split: 744 of 6,698 train clips
VAL_FRACTION = 744 / 6698
SPEAKER_FRACTIONS = (0.2, 0.1)  # test, val


def read_list(path: Path) -> Dict[str, str]:
    """``clip -> LABEL`` from a ``clip,LABEL`` list; a bad line or a label not in :data:`CLASSES` is a
    ``ValueError`` naming the file and line."""
    out: Dict[str, str] = {}
    with open(path, newline="") as handle:
        for lineno, row in enumerate(csv.reader(handle), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{lineno}: expected 'clip,LABEL', got {','.join(row)!r}")
            clip, label = row[0].strip(), row[1].strip()
            if label not in CLASSES:
                raise ValueError(f"{path}:{lineno}: label {label!r} of clip {clip!r} is not a CREMA-D class "
                                 f"({' '.join(CLASSES)})")
            out[clip] = label
    return out


class CremaD(Preparer):
    name = "crema-d"
    description = "CREMA-D audio (log-STFT) + face frames, 6 emotions; papers' layout or the distribution"
    defaults = {"layout": "auto", "lists": "", "sample_rate": 22050, "seconds": 3.0, "n_fft": 512, "hop": 353,
                "fps": 1.0, "n_frames": 1, "size": 224, "normalize": True, "resampler": "soxr_hq",
                "stft_pad": "constant",
                "frame_order": "sorted", "crop_geometry": "original", "frame_size": "auto"}
    datasets = {"crema-d": "published", "crema-d-speaker": "speaker"}
    rgb_modalities = ("visual",)
    dataset_descriptions = {
        "crema-d": "CREMA-D (prepared cache), published OGM-GE split 6,698 / 744, val carved from train",
        "crema-d-speaker": "CREMA-D (prepared cache), speaker-disjoint split (20% test, 10% val speakers)",
    }

    def requires(self, listing: Listing) -> List[str]:
        return ["soundfile", "soxr", "PIL"] + (["av"] if listing.notes["layout"] == "distribution" else [])

    def crop_frame_size(self, meta: Dict[str, Any]) -> Dict[str, Tuple[int, int]]:
        # A cache prepared before the setting existed drew its crops on the stored frame.
        if meta["settings"]["settings"].get("crop_geometry", "stored") == "stored":
            return {}
        return {"visual": parse_frame_size(meta["notes"]["frame_size"])}

    def _frame_size(self, items: List[Item], settings: Dict[str, Any]) -> Optional[Tuple[int, int]]:
        """``(H_0, W_0)`` the training crop is drawn in (None under ``crop_geometry=stored``): the
        declared ``frame_size``, or with ``auto`` the size of the first frame of the first clip that has one."""
        if check_crop_geometry(settings["crop_geometry"]) == "stored":
            return None
        if settings["frame_size"] != "auto":
            return parse_frame_size(settings["frame_size"])
        for item in items:
            try:
                if "frames" in item.paths:
                    files = frontends.frame_files(Path(item.paths["frames"]), str(settings["frame_order"]))
                    if files:
                        with frontends.require("PIL.Image").open(files[0]) as image:
                            return image.size[1], image.size[0]
                elif Path(item.paths["video"]).exists():
                    with frontends.require("av").open(item.paths["video"]) as container:
                        stream = container.streams.video[0]
                        return stream.codec_context.height, stream.codec_context.width
            except ImportError:
                raise
            except Exception:  # an unreadable clip: process() skips and names it; the size comes from the next
                continue
        raise FileNotFoundError("crema-d: frame_size=auto, but no listed clip has a frame to read the size from; "
                                "set frame_size=WIDTHxHEIGHT or crop_geometry=stored")

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        check_crop_geometry(settings["crop_geometry"])  # bad values are errors before any work
        if settings["frame_size"] != "auto":
            parse_frame_size(settings["frame_size"])
        audio = frontends.spectrogram_shape(settings["sample_rate"], settings["seconds"], settings["n_fft"],
                                            settings["hop"])
        return [ModalitySpec("audio", "image", audio),
                ModalitySpec("visual", "image", tuple(frontends.stack_shape(settings["n_frames"], settings["size"])))]

    def _layout(self, src: Path, settings: Dict[str, Any]) -> str:
        layout = settings["layout"]
        if layout not in LAYOUTS:
            raise ValueError(f"crema-d: layout={layout!r}; expected one of {', '.join(LAYOUTS)}")
        frames = frames_dir(settings)
        if not (src / AUDIO_DIR).is_dir():
            raise FileNotFoundError(f"crema-d: audio folder {str(src / AUDIO_DIR)!r} is missing "
                                    f"(expected {AUDIO_DIR}/ with {frames}/ or {VIDEO_DIR}/ under {str(src)!r})")
        if layout == "auto":
            if (src / frames).is_dir():
                return "papers"
            if (src / VIDEO_DIR).is_dir():
                return "distribution"
            raise FileNotFoundError(f"crema-d: neither {str(src / frames)!r} (papers' layout) nor "
                                    f"{str(src / VIDEO_DIR)!r} (distribution) exists")
        folder = src / (frames if layout == "papers" else VIDEO_DIR)
        if not folder.is_dir():
            raise FileNotFoundError(f"crema-d: layout={layout} needs the folder {str(folder)!r}")
        return layout

    def _lists(self, src: Path, settings: Dict[str, Any]) -> Tuple[Optional[Path], Dict[str, Tuple[str, str]]]:
        """The list folder (``None``: no lists, labels from the clip names) and ``clip -> (split, LABEL)``."""
        if settings["lists"]:
            folder = Path(settings["lists"]).expanduser()
        elif (src / "train.csv").exists() or (src / "test.csv").exists():
            folder = src
        else:
            return None, {}
        listed: Dict[str, Tuple[str, str]] = {}
        for part in ("train", "test"):
            path = folder / f"{part}.csv"
            if not path.exists():
                raise FileNotFoundError(f"crema-d: list file {str(path)!r} is missing (train.csv and test.csv of "
                                        f"'clip,LABEL' lines are read from {str(folder)!r})")
            for clip, label in read_list(path).items():
                if clip in listed:
                    raise ValueError(f"crema-d: clip {clip!r} is in both list files under {str(folder)!r}")
                listed[clip] = (part, label)
        return folder, listed

    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        layout = self._layout(src, settings)
        list_folder, listed = self._lists(src, settings)
        items, skipped = [], []
        for wav in sorted((src / AUDIO_DIR).glob("*.wav")):
            clip = wav.stem
            match = CLIP_NAME.match(clip)
            if clip in listed:
                split, label = listed[clip]
            elif match and match.group(3) in CLASSES:
                split, label = "", match.group(3)
            else:
                skipped.append((str(wav), "unlisted clip whose name has no CREMA-D emotion"))
                continue
            paths = {"audio": str(wav)}
            if layout == "papers":
                paths["frames"] = str(src / frames_dir(settings) / clip)
            else:
                paths["video"] = str(src / VIDEO_DIR / f"{clip}.flv")
            items.append(Item(clip, CLASSES.index(label), split, match.group(1) if match else clip.split("_")[0],
                              paths))
        found = {it.id for it in items}
        skipped += [(str(src / AUDIO_DIR / f"{clip}.wav"), "listed but no audio file")
                    for clip in sorted(listed) if clip not in found]
        notes = {"layout": layout, "lists": str(list_folder) if list_folder else None}
        original = self._frame_size(items, settings) if items else None
        if original is not None:
            notes["frame_size"] = f"{original[1]}x{original[0]}"
            for item in items:
                item.payload = original
        if list_folder is not None:  # are these the published lists? (counts + SHA-256 of the clip names)
            parts = {part: [c for c, (p, _) in listed.items() if p == part] for part in ("train", "test")}
            check = check_published(parts)
            notes["published_split"] = check
        return Listing(items, list(CLASSES), skipped, notes)

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        audio_path = Path(item.paths["audio"])
        audio = frontends.audio_spectrogram(audio_path, int(settings["sample_rate"]), float(settings["seconds"]),
                                            int(settings["n_fft"]), int(settings["hop"]), str(settings["resampler"]),
                                            str(settings["stft_pad"]))
        n, size, norm = int(settings["n_frames"]), int(settings["size"]), bool(settings["normalize"])
        sizes: List[Tuple[str, int, int]] = []
        if "frames" in item.paths:
            visual = frontends.folder_frames(Path(item.paths["frames"]), n, size, norm, str(settings["frame_order"]),
                                             sizes)
        else:
            video = Path(item.paths["video"])
            if not video.exists():
                raise SkipItem("missing video", f"{video}: no such file")
            visual = frontends.video_frames(video, float(settings["fps"]), n, size, norm, sizes)
        original = item.payload  # (H_0, W_0) of crop_geometry=original (list_items), else None
        for name, width, height in sizes:  # the training crop is drawn in this geometry: it must be true
            if original is not None and (height, width) != tuple(original):
                raise SkipItem("frame size", f"{name}: {width}x{height}, but the training crop is drawn on "
                                             f"{original[1]}x{original[0]} frames (crop_geometry=original, "
                                             f"frame_size={settings['frame_size']}); set frame_size or "
                                             f"crop_geometry=stored")
        return {"audio": audio, "visual": visual}

    def split(self, variant: str, cache: PreparedCache, seed: int) -> Dict[str, np.ndarray]:
        ok = cache.ok
        if variant == "published":
            train = np.flatnonzero(ok & (cache.splits == "train"))
            test = np.flatnonzero(ok & (cache.splits == "test"))
            if train.size == 0 or test.size == 0:
                lists = cache.meta["notes"].get("lists")
                where = (f"no prepared clip is in the {'train' if train.size == 0 else 'test'} list ({lists})" if lists
                         else "it was prepared without train.csv / test.csv")
                raise ValueError(f"crema-d: the published split needs its list files, but {where}. They are "
                                 "distributed with the OGM-GE and PMR code (data/CREMAD/train.csv, test.csv): put "
                                 "them in the source folder or prepare with --set lists=DIR; or use "
                                 "crema-d-speaker (speaker-disjoint, needs no lists)")
            inner = stratified_split(cache.labels[train], fractions=(1 - VAL_FRACTION, VAL_FRACTION, 0.0), seed=seed)
            return {"train": np.sort(train[inner["train"]]), "val": np.sort(train[inner["val"]]), "test": test}
        if variant == "speaker":
            speakers = sorted(set(cache.groups[ok].tolist()))
            if len(speakers) < 3:
                raise ValueError(f"crema-d-speaker: {len(speakers)} speakers prepared; a speaker-disjoint "
                                 f"train/val/test split needs at least 3")
            order = [speakers[i] for i in np.random.default_rng(seed).permutation(len(speakers))]
            n_test = max(1, round(SPEAKER_FRACTIONS[0] * len(speakers)))
            n_val = max(1, round(SPEAKER_FRACTIONS[1] * len(speakers)))
            split = group_split(np.where(ok, cache.groups, ""), order[:n_test], order[n_test:n_test + n_val])
            split["train"] = split["train"][ok[split["train"]]]  # skipped clips are in no split
            return split
        raise ValueError(f"crema-d: unknown split variant {variant!r}")


register_preparer(CremaD())
