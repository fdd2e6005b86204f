"""What every layout scanner returns, and the small readers they share.

A *scanner* reads a data set's list files where it lies on disk and returns a :class:`Layout`: the
class names, one :class:`Clip` per listed sample (its id, label, split and the paths of its raw
files), and the listed samples whose files are missing (skipped, with the reason). Scanners decode
nothing: the prepare step decodes. Every problem a user can fix is an error naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

from mmbench.data.base import SPLITS

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


class LayoutError(ValueError):
    """A list file or folder that does not match the documented layout (the message names the file)."""


@dataclass(frozen=True)
class Clip:
    """One listed sample.

    Attributes:
        clip_id: the sample's id as the list file spells it (``"v_ApplyEyeMakeup_g08_c01"``).
        label: class index into :attr:`Layout.classes`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        paths: source name -> path of its raw data: a file (``"audio"``: a wav or a spectrogram;
            ``"rgb"`` / ``"depth"`` / ``"ir"``: one image) or a folder of frames (``"frames"``,
            ``"flow_u"``, ``"flow_v"``).
    """

    clip_id: str
    label: int
    split: str
    paths: Dict[str, Path]


@dataclass
class Layout:
    """A scanned data set: classes, clips in list order, and what was listed but is not on disk.

    Attributes:
        name: the data set's registry name.
        root: the folder scanned.
        classes: class names; a clip's label indexes this list.
        clips: the samples found, in list-file order, train lists first.
        skipped: ``(path, reason)`` for each listed sample left out (a missing file or folder).
        notes: facts the scan resolved that a user should see (the class-list source, say).
    """

    name: str
    root: Path
    classes: List[str]
    clips: List[Clip]
    skipped: List[Tuple[str, str]] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    def split_sizes(self) -> Dict[str, int]:
        """``{"train": n, "val": n, "test": n}`` over :attr:`clips`."""
        return {s: sum(c.split == s for c in self.clips) for s in SPLITS}


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a folder, else ``FileNotFoundError`` naming it and what it should hold."""
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: folder {str(path)!r} does not exist")
    return path


def first_existing(root: Path, candidates: Sequence[str], what: str) -> Path:
    """The first of ``root/candidate`` that exists; ``FileNotFoundError`` listing every name tried."""
    for name in candidates:
        if (root / name).exists():
            return root / name
    tried = ", ".join(repr(str(root / c)) for c in candidates)
    raise FileNotFoundError(f"{what}: none of {tried} exists")


def read_lines(path: Path, what: str) -> List[Tuple[int, str]]:
    """Non-blank, non-comment lines of a list file as ``(line number, stripped text)``.

    Raises:
        FileNotFoundError: naming ``path`` and ``what`` it is (``"AVE training list"``).
        LayoutError: the file is empty or not UTF-8 text.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} {str(path)!r} is missing")
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: lists saved by Windows tools start with a BOM
    except UnicodeDecodeError as err:
        raise LayoutError(f"{what} {str(path)!r} is not UTF-8 text ({err.reason} at byte {err.start})") from None
    lines = [(i, ln.strip()) for i, ln in enumerate(text.splitlines(), 1) if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise LayoutError(f"{what} {str(path)!r} is empty")
    return lines


def bad_line(path: Path, number: int, line: str, expected: str) -> LayoutError:
    """The error for a line that does not parse: file, line number, the line, the expected form."""
    return LayoutError(f"{str(path)!r} line {number}: {line[:120]!r} does not match the expected form {expected}")


def label_index(classes: Sequence[str], name: str, path: Path, number: int) -> int:
    """Index of class ``name``; a ``LayoutError`` naming the list file and line when it is not a class."""
    try:
        return list(classes).index(name)
    except ValueError:
        shown = ", ".join(classes[:8]) + (", ..." if len(classes) > 8 else "")
        raise LayoutError(f"{str(path)!r} line {number}: label {name!r} is not in the class list "
                          f"({len(classes)} classes: {shown})") from None


def image_files(folder: Path) -> List[Path]:
    """The image files of a frames folder, sorted by name (``frame000001.jpg`` ...)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def check_splits(layout: Layout, required: Iterable[str] = ("train", "test")) -> Layout:
    """``layout`` if each required split has a sample; else a ``LayoutError`` saying what was skipped."""
    sizes = layout.split_sizes()
    for split in required:
        if sizes[split] == 0:
            first = layout.skipped[0] if layout.skipped else None
            reasons = f"; {len(layout.skipped)} listed samples skipped, first: {first}" if first else ""
            raise LayoutError(f"{layout.name} under {str(layout.root)!r}: no {split} sample found on disk{reasons}")
    return layout


def carve_val(clips: List[Clip], fraction: float, seed: int) -> List[Clip]:
    """Move a seeded, class-stratified ``fraction`` of the train clips to val (for lists with no val list).

    The test list is never touched: model selection must not see test (most of this literature
    selects on test; mmbench does not).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    train = [i for i, c in enumerate(clips) if c.split == "train"]
    if fraction == 0.0 or not train:
        return clips
    # Local import: splits pulls numpy only, but layouts stay importable without it for listing.
    import numpy as np

    from mmbench.data.splits import stratified_split

    labels = np.array([clips[i].label for i in train])
    val = set(np.asarray(train)[stratified_split(labels, (1 - fraction, fraction, 0.0), seed)["val"]].tolist())
    return [Clip(c.clip_id, c.label, "val", c.paths) if i in val else c for i, c in enumerate(clips)]


def drop_conflicting(rows: List[tuple], source: Path) -> Tuple[List[tuple], List[Tuple[str, str]]]:
    """Rows ``(clip_id, class name, ...)`` with each id once; an id listed with two labels is dropped.

    AVE lists a video once per event, so a video with two events appears twice with two labels;
    the OGM-GE loader drops such videos too (its add/remove toggle), as a single-label benchmark must.
    Returns ``(kept rows, skipped (id, reason))``.
    """
    labels: Dict[str, set] = {}
    for clip_id, name, *_ in rows:
        labels.setdefault(clip_id, set()).add(name)
    kept, skipped, seen = [], [], set()
    for row in rows:
        clip_id = row[0]
        if clip_id in seen:
            continue
        seen.add(clip_id)
        if len(labels[clip_id]) > 1:
            skipped.append((clip_id, f"listed in {source.name} with {len(labels[clip_id])} labels "
                                     f"({', '.join(sorted(labels[clip_id]))})"))
        else:
            kept.append(row)
    return kept, skipped
