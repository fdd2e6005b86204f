"""CASIA-SURF (Zhang et al. CVPR 2019; the ChaLearn face anti-spoofing challenge) from its list files.

Layout under ``root`` (the challenge release; list paths are relative to ``root``)::

    train_list.txt              <rgb path> <depth path> <ir path> <label>     label 1 = live, 0 = spoof
    val_private_list.txt        same form (the public val list has no labels; val_list.txt also accepted)
    test_private_list.txt       same form (test_list.txt also accepted)
    Training/real_part/CLKJ_AS0137/real.rar_unzip/profile/0001.jpg   ...   (RGB)
    Training/real_part/CLKJ_AS0137/real.rar_unzip/depth/0001.jpg     ...
    Training/real_part/CLKJ_AS0137/real.rar_unzip/ir/0001.jpg        ...

Each line is one aligned RGB / depth / IR triple (one image each). Classes ``["spoof", "live"]``, so
label 1 is live as in the list files. Reported with APCER / BPCER / ACER (ISO/IEC 30107-3, see
:mod:`mmbench.metrics.anti_spoofing`) beside accuracy, for every modality combination.
"""
from __future__ import annotations

from pathlib import Path

from mmbench.data.layouts.common import (Clip, Layout, LayoutError, bad_line, carve_val, check_splits, read_lines,
                                         require_dir)

CLASSES = ["spoof", "live"]
MODALITIES = ("rgb", "depth", "ir")
LISTS = {"train": ("train_list.txt",), "val": ("val_private_list.txt", "val_list.txt"),
         "test": ("test_private_list.txt", "test_list.txt")}
FORM = "'<rgb path> <depth path> <ir path> <label 0|1>'"


def _parse(root: Path, path: Path, split: str, skipped: list) -> list:
    clips = []
    for number, line in read_lines(path, f"CASIA-SURF {split} list"):
        fields = line.split()
        if len(fields) == 3:
            raise LayoutError(f"{str(path)!r} line {number}: no label column; this is a public (unlabelled) list, "
                              f"use the *_private_list.txt with labels (form {FORM})")
        if len(fields) != 4:
            raise bad_line(path, number, line, FORM)
        if fields[3] not in ("0", "1"):
            raise LayoutError(f"{str(path)!r} line {number}: label {fields[3]!r} is not in the class list "
                              "(0 = spoof, 1 = live)")
        paths = {m: root / p for m, p in zip(MODALITIES, fields[:3])}
        missing = [m for m, p in paths.items() if not p.is_file()]
        if missing:
            skipped.append((str(paths[missing[0]]), f"{missing[0]} image missing"))
            continue
        clips.append(Clip(Path(fields[0]).as_posix(), int(fields[3]), split, paths))
    return clips


def scan_casia_surf(root, val_fraction: float = 0.1, split_seed: int = 0) -> Layout:
    """Scan CASIA-SURF under ``root`` (module docstring for the layout).

    Args:
        root: the data set folder.
        val_fraction: share of train moved to val when no labelled val list exists. Default 0.1.
        split_seed: seed of that carve. Default 0.

    Returns:
        a :class:`Layout` with ``paths = {"rgb": image, "depth": image, "ir": image}``.

    Raises:
        FileNotFoundError: the folder, ``train_list.txt`` or every test list name is missing.
        LayoutError: a line without a label, with a label other than 0 / 1, or with the wrong field count.
    """
    root = require_dir(Path(root).expanduser(), "CASIA-SURF")
    clips, skipped, notes = [], [], []
    for split, names in LISTS.items():
        found = next((root / n for n in names if (root / n).is_file()), None)
        if found is None and split != "val":
            tried = " or ".join(repr(str(root / n)) for n in names)
            raise FileNotFoundError(f"CASIA-SURF {split} list is missing: expected {tried}")
        if found is not None:
            clips += _parse(root, found, split, skipped)
            notes.append(f"{split}: {found.name}")
    if not any(c.split == "val" for c in clips):
        clips = carve_val(clips, val_fraction, split_seed)
        if val_fraction:
            notes.append(f"no labelled val list: val carved from train ({val_fraction:.0%}, seed {split_seed})")
    return check_splits(Layout("casia-surf", root, list(CLASSES), clips, skipped, notes))
