"""VGGSound (Chen et al. ICASSP 2020) in the layout the OGM-GE code reads.

Layout under ``root``::

    vggsound.csv                                            YouTubeID,start seconds,label,train|test
    train-audios/train-set/<YouTubeID>_<start>.wav
    train-videos/train-set-img/Image-01-FPS/<YouTubeID>_<start>.mp4/*.jpg     frames at 1 fps
    test-audios/test-set/<YouTubeID>_<start>.wav
    test-videos/test-set-img/Image-01-FPS/<YouTubeID>_<start>.mp4/*.jpg

``vggsound.csv`` is the list the VGGSound authors publish (about 183k train / 15,446 test rows). The
``<start>`` in a file name is the csv's number as written or zero-padded to 6 digits (both are common
in the wild); the frame folders keep the ``.mp4`` suffix, as OGM-GE's ``video_preprocessing.py`` names
them. About a fifth of the videos can no longer be downloaded: a listed clip whose audio or frames
are missing is reported as skipped, not an error.

Classes: the distinct labels of the csv, sorted by name (309 in the published list).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional

from mmbench.data.layouts.common import (Clip, Layout, bad_line, carve_val, check_splits, image_files, read_lines,
                                         require_dir)

LIST_FILE = "vggsound.csv"
FORM = "'YouTubeID,start seconds,label,train|test'"
DIRS = {"train": ("train-audios/train-set", "train-videos/train-set-img/Image-01-FPS"),
        "test": ("test-audios/test-set", "test-videos/test-set-img/Image-01-FPS")}


def _stem(folder: Path, ytid: str, start: str, suffix: str) -> Optional[Path]:
    """The existing ``<ytid>_<start><suffix>`` in ``folder``, trying the start as written and 6-digit padded."""
    for s in dict.fromkeys((start, start.zfill(6), str(int(start)))):
        path = folder / f"{ytid}_{s}{suffix}"
        if path.exists():
            return path
    return None


def scan_vggsound(root, val_fraction: float = 0.1, split_seed: int = 0, min_frames: int = 3) -> Layout:
    """Scan VGGSound under ``root`` (module docstring for the layout).

    Args:
        root: the data set folder.
        val_fraction: share of train moved to val (the csv has no val split). Default 0.1.
        split_seed: seed of that carve. Default 0.
        min_frames: a clip with fewer frames is skipped (OGM-GE keeps only folders with more than 3
            files; mmbench needs as many as it samples, 3 by default). Default 3.

    Returns:
        a :class:`Layout` with ``paths = {"audio": wav, "frames": folder}``.

    Raises:
        FileNotFoundError: the folder or ``vggsound.csv`` is missing.
        LayoutError: a csv row that does not parse (wrong field count, split not train/test, start not a number).
    """
    root = require_dir(Path(root).expanduser(), "VGGSound")
    path = root / LIST_FILE
    lines = read_lines(path, "VGGSound list")
    rows = []
    for (number, line), fields in zip(lines, csv.reader(text for _, text in lines)):
        fields = [f.strip() for f in fields]
        if len(fields) != 4 or fields[3] not in DIRS or not fields[1].isdigit():
            raise bad_line(path, number, line, FORM)
        rows.append(fields)
    classes = sorted({r[2] for r in rows})
    index = {name: i for i, name in enumerate(classes)}
    clips, skipped = [], []
    for split, (audio_rel, visual_rel) in DIRS.items():
        if not any(r[3] == split for r in rows):
            continue
        audio_dir = require_dir(root / audio_rel, f"VGGSound {split} audio (<YouTubeID>_<start>.wav)")
        visual_dir = require_dir(root / visual_rel, f"VGGSound {split} frames (<YouTubeID>_<start>.mp4/*.jpg)")
        for ytid, start, name, row_split in rows:
            if row_split != split:
                continue
            audio = _stem(audio_dir, ytid, start, ".wav")
            frames = _stem(visual_dir, ytid, start, ".mp4")
            if audio is None:
                skipped.append((str(audio_dir / f"{ytid}_{start}.wav"), "audio missing"))
            elif frames is None or not frames.is_dir():
                skipped.append((str(visual_dir / f"{ytid}_{start}.mp4"), "frames folder missing"))
            elif len(image_files(frames)) < min_frames:
                skipped.append((str(frames), f"fewer than {min_frames} frames"))
            else:
                clips.append(Clip(f"{ytid}_{start}", index[name], split, {"audio": audio, "frames": frames}))
    layout = Layout("vggsound", root, classes, carve_val(clips, val_fraction, split_seed), skipped,
                    notes=[f"{len(classes)} classes, from the labels in {LIST_FILE}"])
    if val_fraction:
        layout.notes.append(f"val carved from train ({val_fraction:.0%}, seed {split_seed})")
    return check_splits(layout)
