"""UCF101 (Soomro et al. 2012) as RGB frames and TV-L1 optical flow, with the three official splits.

Layout under ``root`` (the common extraction, e.g. the two-stream repositories' ``jpegs_256`` and
``tvl1_flow`` archives)::

    ucfTrainTestlist/classInd.txt        "<index 1..101> <ClassName>"
    ucfTrainTestlist/trainlist01.txt     "<ClassName>/v_<ClassName>_gGG_cCC.avi <index>"   (also 02, 03)
    ucfTrainTestlist/testlist01.txt      "<ClassName>/v_<ClassName>_gGG_cCC.avi"           (also 02, 03)
    jpegs_256/v_<ClassName>_gGG_cCC/frame000001.jpg ...
    tvl1_flow/u/v_<ClassName>_gGG_cCC/frame000001.jpg ...     horizontal flow
    tvl1_flow/v/v_<ClassName>_gGG_cCC/frame000001.jpg ...     vertical flow

Splits: ``split`` (1, 2 or 3) picks the official train / test lists (split 1: 9,537 / 3,783). Val is
carved from train **by group**: the official splits keep each group (``gGG``: clips cut from one
long video, same actor and background) on one side, and a clip-level carve would leak a group into
val; the ``val_groups`` highest-numbered train groups go to val.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from mmbench.data.layouts.common import (Clip, Layout, LayoutError, bad_line, check_splits, image_files, label_index,
                                         read_lines, require_dir)

LISTS = "ucfTrainTestlist"
RGB, FLOW = "jpegs_256", "tvl1_flow"
GROUP = re.compile(r"_g(\d+)_c\d+$")


def read_class_index(path: Path) -> List[str]:
    """Class names in index order from ``classInd.txt`` (1-based ``"<index> <Name>"`` lines)."""
    names: Dict[int, str] = {}
    for number, line in read_lines(path, "UCF101 class index"):
        fields = line.split()
        if len(fields) != 2 or not fields[0].isdigit():
            raise bad_line(path, number, line, "'<index> <ClassName>'")
        names[int(fields[0])] = fields[1]
    if sorted(names) != list(range(1, len(names) + 1)):
        raise LayoutError(f"UCF101 class index {str(path)!r}: indices must run 1..{len(names)} without gaps")
    return [names[i] for i in range(1, len(names) + 1)]


def _list_rows(path: Path, classes: List[str], with_index: bool) -> List[tuple]:
    """``(clip id, label, group)`` per line; the label is checked against the folder name and the index."""
    form = "'<ClassName>/v_<ClassName>_gGG_cCC.avi" + (" <index>'" if with_index else "'")
    rows = []
    for number, line in read_lines(path, f"UCF101 {'train' if with_index else 'test'} list"):
        fields = line.split()
        if len(fields) != (2 if with_index else 1) or "/" not in fields[0]:
            raise bad_line(path, number, line, form)
        folder, video = fields[0].split("/", 1)
        clip_id = Path(video).stem
        group = GROUP.search(clip_id)
        if group is None:
            raise bad_line(path, number, line, form)
        label = label_index(classes, folder, path, number)
        if with_index and int(fields[1]) != label + 1:
            raise LayoutError(f"{str(path)!r} line {number}: index {fields[1]} disagrees with class {folder!r} "
                              f"(index {label + 1} in classInd.txt)")
        rows.append((clip_id, label, int(group.group(1))))
    return rows


def scan_ucf101(root, split: int = 1, val_groups: int = 2, min_frames: int = 1) -> Layout:
    """Scan UCF101 under ``root`` (module docstring for the layout).

    Args:
        root: the data set folder.
        split: the official split, 1, 2 or 3. Default 1.
        val_groups: how many of the train groups (the highest-numbered) become val. Default 2, of
            the 18 train groups each split has (about 11% of train).
        min_frames: a video with fewer RGB or flow frames is skipped. Default 1.

    Returns:
        a :class:`Layout` with ``paths = {"frames": RGB folder, "flow_u": folder, "flow_v": folder}``.

    Raises:
        FileNotFoundError: the folder, a list file or a frames folder is missing.
        LayoutError: ``split`` not 1..3, a list line that does not parse, a class not in ``classInd.txt``.
    """
    if split not in (1, 2, 3):
        raise ValueError(f"UCF101 split must be 1, 2 or 3, got {split!r}")
    root = require_dir(Path(root).expanduser(), "UCF101")
    lists = require_dir(root / LISTS, "UCF101 split lists")
    classes = read_class_index(lists / "classInd.txt")
    train = _list_rows(lists / f"trainlist0{split}.txt", classes, with_index=True)
    test = _list_rows(lists / f"testlist0{split}.txt", classes, with_index=False)
    dirs = {"frames": require_dir(root / RGB, "UCF101 RGB frames (jpegs_256/v_X/*.jpg)"),
            "flow_u": require_dir(root / FLOW / "u", "UCF101 TV-L1 flow u (tvl1_flow/u/v_X/*.jpg)"),
            "flow_v": require_dir(root / FLOW / "v", "UCF101 TV-L1 flow v (tvl1_flow/v/v_X/*.jpg)")}
    train_groups = sorted({g for _, _, g in train})
    if not 0 <= val_groups < len(train_groups):
        raise ValueError(f"UCF101 val_groups must be in [0, {len(train_groups)}) for split {split}, got {val_groups}")
    held = set(train_groups[len(train_groups) - val_groups:])
    clips, skipped = [], []
    for rows, part in ((train, "train"), (test, "test")):
        for clip_id, label, group in rows:
            paths = {k: d / clip_id for k, d in dirs.items()}
            short = [k for k, p in paths.items() if not p.is_dir() or len(image_files(p)) < min_frames]
            if short:
                why = f"{short[0]} folder missing or with fewer than {min_frames} frames"
                skipped.append((str(paths[short[0]]), why))
                continue
            clips.append(Clip(clip_id, label, "val" if part == "train" and group in held else part, paths))
    layout = Layout("ucf101", root, classes, clips, skipped,
                    notes=[f"official split {split}; val = train groups {sorted(held)}"])
    return check_splits(layout)
