"""The user's CREMA-D lists are checked against the published split (counts + SHA-256), not shipped."""
from __future__ import annotations

import hashlib

import pytest
from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

from mmbench.cli import main
from mmbench.prepare import cremad_split
from mmbench.prepare.cremad_split import PUBLISHED, check_published, clip_digest

CLIPS = cremad_clips()


def test_digest_is_sha256_of_sorted_unique_names():
    assert clip_digest(["b", "a", "b"]) == hashlib.sha256(b"a\nb").hexdigest()
    assert {part: count for part, (count, _) in PUBLISHED.items()} == {"train": 6698, "test": 744}
    assert all(len(digest) == 64 for _, digest in PUBLISHED.values())


def test_other_lists_are_not_the_published_split_and_the_reason_is_given(monkeypatch):
    check = check_published({"train": CLIPS[:40], "test": CLIPS[40:]})
    assert not check["published"] and check["train"]["clips"] == 40
    assert "train.csv has 40 clips, the published list 6698" in check["message"]
    # same counts, other names: the digest tells them apart
    monkeypatch.setattr(cremad_split, "PUBLISHED", {"train": (40, "0" * 64), "test": (8, clip_digest(CLIPS[40:]))})
    check = check_published({"train": CLIPS[:40], "test": CLIPS[40:]})
    assert not check["published"] and check["test"]["matches"]
    assert "train.csv has 40 clips as published, but other clip names" in check["message"]


def test_lists_with_the_published_counts_and_digests_are_the_published_split(monkeypatch):
    monkeypatch.setattr(cremad_split, "PUBLISHED", {"train": (40, clip_digest(CLIPS[:40])),
                                                    "test": (8, clip_digest(CLIPS[40:]))})
    check = check_published({"train": list(reversed(CLIPS[:40])), "test": CLIPS[40:]})  # order does not matter
    assert check["published"] and check["message"].startswith("the published OGM-GE split")


def test_prepare_reports_whether_the_lists_are_the_published_split(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "cremad"
    write_cremad_papers(root, CLIPS[:6])
    write_lists(root, CLIPS[:6])
    assert main(["prepare", "crema-d", "--src", str(root), "--workers", "1", "--set", *SMALL_AV]) == 0
    assert "published_split: NOT the published OGM-GE split" in capsys.readouterr().out
