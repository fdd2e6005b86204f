"""CASIA-SURF scanner: the challenge's list files, live = 1, public (unlabelled) lists refused."""
import pytest

from field_fixtures import write_casia_surf
from mmbench.data.layouts import LayoutError, scan_casia_surf


def test_scan(tmp_path):
    fx = write_casia_surf(tmp_path)
    scan = scan_casia_surf(tmp_path)
    assert scan.classes == ["spoof", "live"]
    assert scan.split_sizes() == fx["sizes"]
    assert len(scan.skipped) == 1 and scan.skipped[0][0].endswith("profile/9.jpg")
    for clip in scan.clips:
        assert set(clip.paths) == {"rgb", "depth", "ir"}
        assert ("real_part" in clip.clip_id) == (clip.label == 1)


def test_without_a_val_list_val_is_carved_from_train(tmp_path):
    write_casia_surf(tmp_path)
    (tmp_path / "val_private_list.txt").unlink()
    sizes = scan_casia_surf(tmp_path, val_fraction=0.25).split_sizes()
    assert sizes == {"train": 9, "val": 3, "test": 6}


def test_errors_name_the_file(tmp_path):
    write_casia_surf(tmp_path)
    (tmp_path / "test_private_list.txt").unlink()
    with pytest.raises(FileNotFoundError, match="test_private_list.txt.*test_list.txt"):
        scan_casia_surf(tmp_path)
    (tmp_path / "test_list.txt").write_text("a.jpg b.jpg c.jpg\n")
    with pytest.raises(LayoutError, match=r"test_list.txt' line 1: no label column"):
        scan_casia_surf(tmp_path)
    (tmp_path / "test_list.txt").write_text("a.jpg b.jpg c.jpg 2\n")
    with pytest.raises(LayoutError, match="label '2' is not in the class list"):
        scan_casia_surf(tmp_path)
