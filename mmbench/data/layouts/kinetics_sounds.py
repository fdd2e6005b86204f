"""Kinetics-Sounds in the layouts the ARL / DGL and the OGM-GE code read.

Layout A, class folders (ARL / DGL ``KSDataset``)::

    class.txt                                         ONE line: the class names, comma-separated
    audio/train/<class>/<clip>.wav                    test audio under audio/test/
    visual/train_img/Image-01-FPS/<class>/<clip>/*.jpg   test frames under visual/val_img/Image-01-FPS/

  Folder names are the class names with spaces replaced by ``_`` (as that loader maps them). Audio and
  frames are paired by clip name (``<clip>.wav`` with ``<clip>/`` or ``<clip>.mp4/``), not by sorted
  position as that loader does, so one missing clip cannot shift every later pair.

Layout B, list files (OGM-GE ``data/KineticSound``)::

    my_train.txt              <clip>,<seconds>,<class index>   (e.g. ``--4-0ihtnBU_000058_000068,10,4``)
    my_test.txt
    class.txt                 optional, as in layout A: names for the indices
    audio/<clip>.wav          (or audio_spec/<clip>.npy, a pre-extracted spectrogram)
    visual/<clip>/*.jpg       frames at 1 fps

**The 31 / 33 / 34 question** is settled by the list the user has, never by a constant: the class
count is the number of names in ``class.txt`` (33 in the ARL release, whose code nevertheless sizes
the head 34), or, for layout B without ``class.txt``, the number of distinct indices in the lists
(31 for OGM-GE's). The scan's ``notes`` say which list decided it.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Optional

from mmbench.data.layouts.common import (Clip, Layout, LayoutError, bad_line, carve_val, check_splits, image_files,
                                         read_lines, require_dir)

FOLDER_SPLITS = {"train": ("audio/train", "visual/train_img/Image-01-FPS"),
                 "test": ("audio/test", "visual/val_img/Image-01-FPS")}
LIST_SPLITS = {"train": "my_train.txt", "test": "my_test.txt"}
LIST_FORM = "'<clip>,<seconds>,<class index>'"


def read_class_file(path: Path) -> List[str]:
    """Class names of a ``class.txt``: comma-separated on one line (ARL) or one a line; spaces -> ``_``."""
    lines = read_lines(path, "Kinetics-Sounds class list")
    raw = [name for _, line in lines for name in line.split(",")]
    names = ["_".join(n.split()) for n in raw if n.strip()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LayoutError(f"Kinetics-Sounds class list {str(path)!r} names {dupes[0]!r} twice")
    return names


def _frames_ok(frames: Path, min_frames: int, skipped: list) -> bool:
    if not frames.is_dir():
        skipped.append((str(frames), "frames folder missing"))
    elif len(image_files(frames)) < min_frames:
        skipped.append((str(frames), f"fewer than {min_frames} frames"))
    else:
        return True
    return False


def _scan_folders(root: Path, classes: List[str], min_frames: int) -> Layout:
    clips, skipped = [], []
    for split, (audio_rel, visual_rel) in FOLDER_SPLITS.items():
        audio_root = require_dir(root / audio_rel, f"Kinetics-Sounds {split} audio (<class>/<clip>.wav)")
        visual_root = require_dir(root / visual_rel, f"Kinetics-Sounds {split} frames (<class>/<clip>/*.jpg)")
        for folder in sorted(p for p in audio_root.iterdir() if p.is_dir()):
            if folder.name not in classes:
                raise LayoutError(f"Kinetics-Sounds: class folder {str(folder)!r} is not in the class list "
                                  f"{str(root / 'class.txt')!r} ({len(classes)} names)")
            label = classes.index(folder.name)
            for wav in sorted(folder.glob("*.wav")):
                frames = visual_root / folder.name / wav.stem
                if not frames.is_dir() and frames.with_name(f"{wav.stem}.mp4").is_dir():
                    frames = frames.with_name(f"{wav.stem}.mp4")  # frame folders named after the video file
                if _frames_ok(frames, min_frames, skipped):
                    clips.append(Clip(wav.stem, label, split, {"audio": wav, "frames": frames}))
    return Layout("kinetics-sounds", root, classes, clips, skipped)


def _scan_lists(root: Path, classes: Optional[List[str]], min_frames: int) -> Layout:
    rows = []
    for split, name in LIST_SPLITS.items():
        path = root / name
        lines = read_lines(path, f"Kinetics-Sounds {split} list")
        for (number, line), fields in zip(lines, csv.reader(text for _, text in lines)):
            if len(fields) != 3 or not fields[2].strip().isdigit():
                raise bad_line(path, number, line, LIST_FORM)
            rows.append((fields[0], int(fields[2]), split, path, number))
    if classes is None:
        classes = [str(i) for i in range(max(r[1] for r in rows) + 1)]
    clips, skipped = [], []
    for clip_id, label, split, path, number in rows:
        if label >= len(classes):
            raise LayoutError(f"{str(path)!r} line {number}: class index {label} is not in the class list "
                              f"({len(classes)} classes, indices 0..{len(classes) - 1})")
        audio = next((root / rel for rel in (f"audio/{clip_id}.wav", f"audio_spec/{clip_id}.npy")
                      if (root / rel).is_file()), None)
        if audio is None:
            skipped.append((str(root / "audio" / f"{clip_id}.wav"), "audio missing"))
        elif _frames_ok(root / "visual" / clip_id, min_frames, skipped):
            clips.append(Clip(clip_id, label, split, {"audio": audio, "frames": root / "visual" / clip_id}))
    return Layout("kinetics-sounds", root, classes, clips, skipped)


def scan_kinetics_sounds(root, val_fraction: float = 0.1, split_seed: int = 0, min_frames: int = 3) -> Layout:
    """Scan Kinetics-Sounds under ``root`` (module docstring for both layouts).

    Args:
        root: the data set folder.
        val_fraction: share of train moved to val (neither release has a val list). Default 0.1.
        split_seed: seed of that carve. Default 0.
        min_frames: a clip with fewer frames is skipped; 3 because the papers' code samples 3 frames
            (``use_video_frames=3``) and the ARL loader drops clips with fewer. Default 3.

    Returns:
        a :class:`Layout` with ``paths = {"audio": wav or .npy, "frames": folder}``.

    Raises:
        FileNotFoundError: the folder, ``class.txt`` (layout A) or a list file (layout B) is missing.
        LayoutError: a class folder or class index not in the class list, a list line that does not parse.
    """
    root = require_dir(Path(root).expanduser(), "Kinetics-Sounds")
    class_file = root / "class.txt"
    if (root / LIST_SPLITS["train"]).exists():
        classes = read_class_file(class_file) if class_file.exists() else None
        layout = _scan_lists(root, classes, min_frames)
        source = (f"{class_file.name} ({len(layout.classes)} names)" if classes is not None else
                  f"the {len(layout.classes)} class indices in {LIST_SPLITS['train']} / {LIST_SPLITS['test']}")
    elif (root / "audio" / "train").is_dir():
        if not class_file.exists():
            raise FileNotFoundError(f"Kinetics-Sounds class list {str(class_file)!r} is missing (the class folders "
                                    "need it for their label order)")
        layout = _scan_folders(root, read_class_file(class_file), min_frames)
        source = f"{class_file.name} ({len(layout.classes)} names)"
    else:
        raise FileNotFoundError(f"Kinetics-Sounds: under {str(root)!r} found neither {LIST_SPLITS['train']} "
                                "(OGM-GE lists) nor audio/train/<class>/ (ARL class folders)")
    present = len({c.label for c in layout.clips})
    layout.notes.append(f"{len(layout.classes)} classes, from {source}; {present} of them have clips on disk")
    layout.clips = carve_val(layout.clips, val_fraction, split_seed)
    if val_fraction:
        layout.notes.append(f"val carved from train ({val_fraction:.0%}, seed {split_seed})")
    return check_splits(layout)
