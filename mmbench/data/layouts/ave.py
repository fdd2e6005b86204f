"""AVE (Audio-Visual Event, Tian et al. ECCV 2018) in the layout the OGM-GE / ARL code reads.

Layout under ``root`` (the ECCV release's list files beside the preprocessed audio and 1-fps frames)::

    Annotations.txt            Category&VideoID&Quality&StartTime&EndTime   (header line first)
    trainSet.txt               same form: the official 3,339 / 402 / 402 split
    valSet.txt
    testSet.txt
    audio/<VideoID>.wav        the clip's audio track (OGM-GE pre-processing: video_to_wav.py)
    visual/<VideoID>/*.jpg     frames at 1 fps (OGM-GE: video2frame-1fps.py, frame_00001.jpg ...)

The OGM-GE code's own lists are also accepted in place of the official ones: ``my_train.txt``,
``my_test.txt`` (and ``my_val.txt`` if present) with ``Category,VideoID`` lines, and ``stat.txt`` (one
class name a line). Pre-extracted spectrograms ``audio_spec/<VideoID>.npy`` stand in for a missing wav.

Classes: the 28 event categories, sorted by name (as OGM-GE sorts ``stat.txt``). A video listed with
two different events is left out (reported as skipped), as the OGM-GE loader does.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import List, Tuple

from mmbench.data.layouts.common import (Clip, Layout, bad_line, carve_val, check_splits, drop_conflicting,
                                         image_files, label_index, read_lines, require_dir)

OFFICIAL_LISTS = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
OGM_LISTS = {"train": "my_train.txt", "val": "my_val.txt", "test": "my_test.txt"}
OFFICIAL_FORM = "'Category&VideoID&Quality&StartTime&EndTime'"
OGM_FORM = "'Category,VideoID'"
NUM_CLASSES = 28


def _official_rows(path: Path, split: str) -> List[Tuple[str, str, str, int]]:
    rows = []
    for number, line in read_lines(path, f"AVE {split} list"):
        fields = line.split("&")
        if fields[0] == "Category":  # the header line of Annotations.txt style files
            continue
        if len(fields) != 5 or not fields[1]:
            raise bad_line(path, number, line, OFFICIAL_FORM)
        rows.append((fields[1], fields[0], split, number))
    return rows


def _ogm_rows(path: Path, split: str) -> List[Tuple[str, str, str, int]]:
    lines = read_lines(path, f"AVE {split} list")
    rows = []
    for (number, line), fields in zip(lines, csv.reader(text for _, text in lines)):
        if len(fields) != 2 or not fields[1]:
            raise bad_line(path, number, line, OGM_FORM)
        rows.append((fields[1], fields[0], split, number))
    return rows


def _audio(root: Path, clip_id: str):
    for rel in (f"audio/{clip_id}.wav", f"audio_spec/{clip_id}.npy"):
        if (root / rel).is_file():
            return root / rel
    return None


def scan_ave(root, val_fraction: float = 0.1, split_seed: int = 0, min_frames: int = 1) -> Layout:
    """Scan AVE under ``root`` (module docstring for the layout).

    Args:
        root: the data set folder.
        val_fraction: share of train moved to val when the lists have no val list (OGM-GE's have
            none); the official lists have one and this is unused. Default 0.1.
        split_seed: seed of that carve. Default 0.
        min_frames: a video with fewer frames is skipped. Default 1.

    Returns:
        a :class:`Layout` with ``paths = {"audio": wav or .npy, "frames": folder}``.

    Raises:
        FileNotFoundError: the folder, or every candidate list file, is missing (the names tried).
        LayoutError: a list line that does not parse, or a label outside ``stat.txt``.
    """
    root = require_dir(Path(root).expanduser(), "AVE")
    if (root / OFFICIAL_LISTS["train"]).exists():
        names, reader = OFFICIAL_LISTS, _official_rows
    elif (root / OGM_LISTS["train"]).exists():
        names, reader = OGM_LISTS, _ogm_rows
    else:
        raise FileNotFoundError(f"AVE: no training list under {str(root)!r}: expected {OFFICIAL_LISTS['train']} "
                                f"(official release) or {OGM_LISTS['train']} (OGM-GE lists)")
    if not (root / names["test"]).exists():
        raise FileNotFoundError(f"AVE test list {str(root / names['test'])!r} is missing")
    rows, skipped = [], []
    for split, file in names.items():
        if split == "val" and not (root / file).exists():
            continue
        kept, dropped = drop_conflicting(reader(root / file, split), root / file)
        rows += kept
        skipped += dropped
    stat = root / "stat.txt"
    if stat.exists():
        classes = sorted(line.split(",")[0] for _, line in read_lines(stat, "AVE class list"))
        source = f"class list {stat.name} ({len(classes)} names)"
    else:
        classes = sorted({row[1] for row in rows})
        source = f"the {len(classes)} categories in the lists"
    require_dir(root / "visual", "AVE frames (visual/<VideoID>/*.jpg)")
    list_file = {split: root / file for split, file in names.items()}
    clips = []
    for clip_id, name, split, number in rows:
        label = label_index(classes, name, list_file[split], number)
        audio, frames = _audio(root, clip_id), root / "visual" / clip_id
        if audio is None:
            skipped.append((str(root / "audio" / f"{clip_id}.wav"), "audio missing"))
        elif not frames.is_dir():
            skipped.append((str(frames), "frames folder missing"))
        elif len(image_files(frames)) < min_frames:
            skipped.append((str(frames), f"fewer than {min_frames} frames"))
        else:
            clips.append(Clip(clip_id, label, split, {"audio": audio, "frames": frames}))
    layout = Layout("ave", root, classes, clips, skipped, notes=[f"classes from {source}"])
    if not any(c.split == "val" for c in clips):
        layout.clips = carve_val(clips, val_fraction, split_seed)
        if val_fraction:
            layout.notes.append(f"no val list: val carved from train ({val_fraction:.0%}, seed {split_seed})")
    return check_splits(layout)

