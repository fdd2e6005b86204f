"""Tiny copies of the field's data sets in their exact on-disk layouts, for the scanner and prepare tests.

Each ``write_<name>(root, ...)`` writes generated files (wav tones, jpg frames, list files) under
``root`` and returns what a correct scan must find: ``{"classes": [...], "sizes": {split: n},
"skipped": n}``. The signal is learnable on purpose (the tone's pitch and the frames' colour follow
the class), so a short training run can show that labels and inputs stayed paired.

Every writer leaves one listed sample without its files (the skipped-file report must name it) and,
where asked, writes one unreadable audio file (``corrupt=True``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import soundfile
from PIL import Image

AV_CLASSES = ["Bark", "Cat", "Violin"]


def write_wav(path: Path, label: int, seconds: float = 1.0, rate: int = 16000) -> Path:
    """A mono tone whose pitch says the class (220 Hz * (label + 1)), 16-bit PCM."""
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(path, 0.5 * np.sin(2 * np.pi * 220.0 * (label + 1) * t), rate, subtype="PCM_16")
    return path


def write_frame(path: Path, label: int, k: int = 0, size: int = 24, mode: str = "RGB") -> Path:
    """A flat image whose brightness says the class, with a little per-frame variation."""
    value = int(40 + 70 * label + 5 * k) % 256
    channels = {"RGB": (value, 255 - value, value // 2), "L": value}[mode]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), channels).save(path, quality=95)
    return path


def write_frames(folder: Path, label: int, count: int, name: str = "frame_{:05d}.jpg", **kw) -> Path:
    for k in range(count):
        write_frame(folder / name.format(k + 1), label, k, **kw)
    return folder


def corrupt(path: Path) -> Path:
    """Overwrite ``path`` with bytes no decoder accepts (an interrupted download)."""
    path.write_bytes(b"not a media file\x00" * 4)
    return path


def _ids(prefix: str, split: str, label: int, n: int) -> List[str]:
    return [f"{prefix}{split[:2]}{label}x{i}" for i in range(n)]


def write_ave(root: Path, per_class: Dict[str, int] = None, lists: str = "official", frames: int = 4,
              corrupt_audio: bool = False) -> dict:
    """AVE: ``trainSet/valSet/testSet.txt`` (``lists="official"``) or OGM-GE ``my_*.txt`` + ``stat.txt``."""
    root.mkdir(parents=True, exist_ok=True)
    per_class = per_class or {"train": 4, "val": 2, "test": 2}
    files = {"official": {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"},
             "ogm": {"train": "my_train.txt", "test": "my_test.txt"}}[lists]
    sizes = {"train": 0, "val": 0, "test": 0}
    for split, file in files.items():
        lines = ["Category&VideoID&Quality&StartTime&EndTime"] if lists == "official" else []
        for label, name in enumerate(AV_CLASSES):
            for clip in _ids("ave", split, label, per_class[split]):
                lines.append(f"{name}&{clip}&good&0&10" if lists == "official" else f"{name},{clip}")
                write_wav(root / "audio" / f"{clip}.wav", label)
                write_frames(root / "visual" / clip, label, frames)
                sizes[split] += 1
        if split == "train":  # listed, but its files never arrived: the scan must skip and report it
            lines.append("Cat&avemissing&good&0&10" if lists == "official" else "Cat,avemissing")
        (root / file).write_text("\n".join(lines) + "\n")
    if lists == "ogm":
        (root / "stat.txt").write_text("\n".join(AV_CLASSES) + "\n")
    if corrupt_audio:
        corrupt(root / "audio" / f"{_ids('ave', 'train', 0, 1)[0]}.wav")
    return {"classes": sorted(AV_CLASSES), "sizes": sizes, "skipped": 1}


def write_kinetics_sounds(root: Path, layout: str = "folders", class_names: Sequence[str] = None, per_class: int = 4,
                          test_per_class: int = 2, frames: int = 3, corrupt_audio: bool = False) -> dict:
    """Kinetics-Sounds: ARL class folders (``layout="folders"``) or OGM-GE list files (``"lists"``).

    ``class_names`` is what ``class.txt`` lists (one comma-separated line); clips are written for the
    first three only, as a release can list classes it has no clips for (the 33-in-34 case).
    """
    root.mkdir(parents=True, exist_ok=True)
    class_names = list(class_names or ["playing bagpipes", "dog barking", "tapping guitar", "shoveling snow"])
    folders = ["_".join(n.split()) for n in class_names]
    (root / "class.txt").write_text(",".join(class_names) + "\n")
    lines = {"train": [], "test": []}
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label in range(3):
            for clip in _ids("ks", split, label, count):
                if layout == "folders":
                    audio_split, visual_split = ("train", "train_img") if split == "train" else ("test", "val_img")
                    write_wav(root / "audio" / audio_split / folders[label] / f"{clip}.wav", label)
                    write_frames(root / "visual" / visual_split / "Image-01-FPS" / folders[label] / clip, label, frames)
                else:
                    write_wav(root / "audio" / f"{clip}.wav", label)
                    write_frames(root / "visual" / clip, label, frames)
                    lines[split].append(f"{clip},10,{label}")
    if layout == "folders":  # audio whose frames were never extracted: skipped
        write_wav(root / "audio" / "train" / folders[0] / "ksmissing.wav", 0)
    else:
        lines["train"].append("ksmissing,10,1")
        for split, rows in lines.items():
            (root / f"my_{split}.txt").write_text("\n".join(rows) + "\n")
    if corrupt_audio:
        wav = (root / "audio" / "train" / folders[0] if layout == "folders" else root / "audio") / "kstr0x0.wav"
        corrupt(wav)
    return {"classes": folders, "sizes": {"trainval": 3 * per_class, "test": 3 * test_per_class}, "skipped": 1}


def write_vggsound(root: Path, per_class: int = 4, test_per_class: int = 2, frames: int = 4, pad: bool = True) -> dict:
    """VGGSound: ``vggsound.csv`` and OGM-GE's train-/test- audio and 1-fps frame folders.

    ``pad``: name files with the start zero-padded to 6 digits (``abc_000030.wav``), else as written.
    """
    root.mkdir(parents=True, exist_ok=True)
    classes = ["dog barking", "playing violin, fiddle", "people marching"]  # one label has a comma: csv quoting
    rows = []
    dirs = {"train": ("train-audios/train-set", "train-videos/train-set-img/Image-01-FPS"),
            "test": ("test-audios/test-set", "test-videos/test-set-img/Image-01-FPS")}
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label, name in enumerate(classes):
            for i, clip in enumerate(_ids("vgg", split, label, count)):
                start = 10 * i
                stem = f"{clip}_{start:06d}" if pad else f"{clip}_{start}"
                write_wav(root / dirs[split][0] / f"{stem}.wav", label)
                write_frames(root / dirs[split][1] / f"{stem}.mp4", label, frames)
                rows.append(f'{clip},{start},"{name}",{split}')
    rows.append('vggmissing,0,"dog barking",train')
    (root / "vggsound.csv").write_text("\n".join(rows) + "\n")
    return {"classes": sorted(classes), "written": classes, "skipped": 1,
            "sizes": {"trainval": 3 * per_class, "test": 3 * test_per_class}}


UCF_CLASSES = ["ApplyEyeMakeup", "Archery", "BabyCrawling"]


def write_ucf101(root: Path, frames: int = 3, train_groups=range(8, 12), test_groups=range(1, 3)) -> dict:
    """UCF101: ``ucfTrainTestlist`` (classInd, three train/test lists), ``jpegs_256``, ``tvl1_flow/{u,v}``.

    Split 1 uses ``train_groups`` / ``test_groups``; splits 2 and 3 swap them (test = the train
    groups), so a test can tell which split was read. One clip (group 9) per class.
    """
    root.mkdir(parents=True, exist_ok=True)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(UCF_CLASSES)))
    ids = {}
    for label, name in enumerate(UCF_CLASSES):
        for g in list(train_groups) + list(test_groups):
            clip = f"v_{name}_g{g:02d}_c01"
            ids[clip] = (label, g)
            write_frames(root / "jpegs_256" / clip, label, frames, name="frame{:06d}.jpg")
            for axis in ("u", "v"):
                write_frames(root / "tvl1_flow" / axis / clip, label, frames, name="frame{:06d}.jpg", mode="L")
    for split in (1, 2, 3):
        tr, te = (train_groups, test_groups) if split == 1 else (test_groups, train_groups)
        train = [f"{UCF_CLASSES[lab]}/{c}.avi {lab + 1}" for c, (lab, g) in ids.items() if g in tr]
        test = [f"{UCF_CLASSES[lab]}/{c}.avi" for c, (lab, g) in ids.items() if g in te]
        train.append(f"Archery/v_Archery_g{max(tr):02d}_c99.avi 2")  # listed, never extracted: skipped
        (lists / f"trainlist0{split}.txt").write_text("\n".join(train) + "\n")
        (lists / f"testlist0{split}.txt").write_text("\n".join(test) + "\n")
    return {"classes": UCF_CLASSES, "train_groups": list(train_groups), "test_groups": list(test_groups), "skipped": 1}


def write_casia_surf(root: Path, per_class: Dict[str, int] = None, size: int = 16) -> dict:
    """CASIA-SURF: ``train_list.txt``, ``val_private_list.txt``, ``test_private_list.txt`` + RGB/depth/IR jpgs."""
    root.mkdir(parents=True, exist_ok=True)
    per_class = per_class or {"train": 6, "val": 3, "test": 3}
    files = {"train": "train_list.txt", "val": "val_private_list.txt", "test": "test_private_list.txt"}
    top = {"train": "Training", "val": "Val", "test": "Testing"}
    for split, file in files.items():
        lines = []
        for label, part in ((1, "real"), (0, "fake")):
            for i in range(per_class[split]):
                base = f"{top[split]}/{part}_part/CLKJ_{split}{i:04d}/{part}.rar_unzip"
                rels = [f"{base}/{m}/0001.jpg" for m in ("profile", "depth", "ir")]
                for rel, mode in zip(rels, ("RGB", "L", "L")):
                    write_frame(root / rel, label, i, size=size, mode=mode)
                lines.append(" ".join(rels) + f" {label}")
        if split == "train":
            lines.append("Training/x/profile/9.jpg Training/x/depth/9.jpg Training/x/ir/9.jpg 1")
        (root / file).write_text("\n".join(lines) + "\n")
    return {"classes": ["spoof", "live"], "sizes": {s: 2 * n for s, n in per_class.items()}, "skipped": 1}
