"""UCF101 scanner: the three official splits, the group-disjoint val carve, RGB + flow paths."""
import pytest

from field_fixtures import write_ucf101
from mmbench.data.layouts import LayoutError, scan_ucf101
from mmbench.data.layouts.ucf101 import GROUP


def _group(clip):
    return int(GROUP.search(clip.clip_id).group(1))


def test_split_one_and_group_disjoint_val(tmp_path):
    fx = write_ucf101(tmp_path)
    scan = scan_ucf101(tmp_path, split=1, val_groups=1)
    assert scan.classes == fx["classes"]
    groups = {s: {_group(c) for c in scan.clips if c.split == s} for s in ("train", "val", "test")}
    assert groups == {"train": {8, 9, 10}, "val": {11}, "test": {1, 2}}
    assert len(scan.skipped) == 1 and "c99" in scan.skipped[0][0]
    clip = scan.clips[0]
    assert set(clip.paths) == {"frames", "flow_u", "flow_v"}
    assert clip.paths["flow_v"] == tmp_path / "tvl1_flow" / "v" / clip.clip_id
    assert all(scan.classes[c.label] in c.clip_id for c in scan.clips)


def test_split_setting_reads_the_other_lists(tmp_path):
    write_ucf101(tmp_path)
    scan = scan_ucf101(tmp_path, split=2, val_groups=0)
    assert {_group(c) for c in scan.clips if c.split == "test"} == {8, 9, 10, 11}
    with pytest.raises(ValueError, match="split must be 1, 2 or 3, got 4"):
        scan_ucf101(tmp_path, split=4)


def test_errors_name_the_file(tmp_path):
    write_ucf101(tmp_path)
    lists = tmp_path / "ucfTrainTestlist"
    (lists / "testlist03.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testlist03.txt"):
        scan_ucf101(tmp_path, split=3)
    (lists / "testlist01.txt").write_text("Bowling/v_Bowling_g01_c01.avi\n")
    with pytest.raises(LayoutError, match=r"testlist01.txt' line 1: label 'Bowling' is not in the class list"):
        scan_ucf101(tmp_path)
    (lists / "trainlist02.txt").write_text("Archery/v_Archery_g01_c01.avi 1\n")
    with pytest.raises(LayoutError, match="index 1 disagrees with class 'Archery'"):
        scan_ucf101(tmp_path, split=2)
