"""Is the user's CREMA-D ``train.csv`` / ``test.csv`` the published OGM-GE split?

mmbench does not ship the published lists (they are distributed with the OGM-GE and PMR code,
``data/CREMAD/train.csv`` and ``test.csv``); it checks the user's copy against their size and a
SHA-256 of their sorted clip names, computed once from the released lists and stored here.

The digest of a list is ``sha256("\\n".join(sorted(set(clip names)))).hexdigest()`` (UTF-8, no
trailing newline; the labels are not hashed: they are checked against the clip names by the
preparer). The published split shares all 91 actors between train and test; ``crema-d-speaker`` is
the speaker-disjoint alternative.
"""
from __future__ import annotations

import hashlib
from typing import Dict, Iterable

#: clips and SHA-256 of the sorted clip names of the released lists (GeWu-Lab/OGM-GE_CVPR2022,
#: data/CREMAD/{train,test}.csv; the PMR repository distributes the same files).
PUBLISHED = {
    "train": (6698, "0f03b406eb943e5da9d322d05ae7f409f0598fb1d9b015e837cc73604b090f9e"),
    "test": (744, "2a5837cebb2d83802e4b9272ec67c5f4d72291abb9bbcb93e56b05c7535585e6"),
}


def clip_digest(clips: Iterable[str]) -> str:
    """SHA-256 (hex) of the sorted, de-duplicated clip names joined by newlines."""
    return hashlib.sha256("\n".join(sorted(set(clips))).encode("utf-8")).hexdigest()


def check_published(lists: Dict[str, Iterable[str]]) -> Dict[str, object]:
    """Compare ``{"train": clips, "test": clips}`` with the published lists.

    Returns ``{"published": bool, "train": {...}, "test": {...}, "message": str}`` where each part
    holds ``clips``, ``sha256`` and ``matches``; the message says whether they are the published
    lists and, if not, in which way they differ (counts or names).
    """
    out: Dict[str, object] = {}
    problems = []
    for part, (count, digest) in PUBLISHED.items():
        clips = sorted(set(lists.get(part, ())))
        got = clip_digest(clips)
        matches = len(clips) == count and got == digest
        out[part] = {"clips": len(clips), "sha256": got, "matches": matches}
        if len(clips) != count:
            problems.append(f"{part}.csv has {len(clips)} clips, the published list {count}")
        elif got != digest:
            problems.append(f"{part}.csv has {count} clips as published, but other clip names (SHA-256 differs)")
    out["published"] = not problems
    out["message"] = ("the published OGM-GE split (6,698 / 744 clips, SHA-256 of the clip names verified)"
                      if not problems else "NOT the published OGM-GE split: " + "; ".join(problems))
    return out
