"""Kinetics-Sounds scanner: both layouts, and the class count read from the list the user has."""
import pytest

from field_fixtures import write_kinetics_sounds
from mmbench.data.layouts import LayoutError, scan_kinetics_sounds


@pytest.mark.parametrize("layout", ["folders", "lists"])
def test_class_count_comes_from_class_txt_not_from_the_clips(tmp_path, layout):
    # class.txt lists 4 names, clips exist for 3: the head is sized by the list (ARL's 33-of-34 case).
    expected = write_kinetics_sounds(tmp_path, layout=layout)
    scan = scan_kinetics_sounds(tmp_path)
    assert scan.classes == expected["classes"] and len(scan.classes) == 4
    assert any("4 classes, from class.txt" in n and "3 of them have clips" in n for n in scan.notes)
    sizes = scan.split_sizes()
    assert sizes["test"] == expected["sizes"]["test"]
    assert sizes["train"] + sizes["val"] == expected["sizes"]["trainval"] and sizes["val"] > 0
    assert len(scan.skipped) == expected["skipped"] and "ksmissing" in scan.skipped[0][0]
    for clip in scan.clips:
        assert clip.clip_id[4] == str(clip.label)


def test_lists_without_class_txt_count_the_indices(tmp_path):
    write_kinetics_sounds(tmp_path, layout="lists")
    (tmp_path / "class.txt").unlink()
    scan = scan_kinetics_sounds(tmp_path)
    assert scan.classes == ["0", "1", "2"]
    assert any("3 class indices in my_train.txt" in n for n in scan.notes)


def test_a_class_folder_or_index_not_in_the_class_list_is_an_error_naming_it(tmp_path):
    write_kinetics_sounds(tmp_path, layout="folders")
    (tmp_path / "class.txt").write_text("playing bagpipes,dog barking\n")
    with pytest.raises(LayoutError, match="class folder .*tapping_guitar' is not in the class list"):
        scan_kinetics_sounds(tmp_path)
    (tmp_path / "class.txt").unlink()
    with pytest.raises(FileNotFoundError, match="class.txt"):
        scan_kinetics_sounds(tmp_path)


def test_list_index_out_of_range_and_bad_line(tmp_path):
    write_kinetics_sounds(tmp_path, layout="lists")
    (tmp_path / "my_test.txt").write_text("kste0x0,10,7\n")
    with pytest.raises(LayoutError, match=r"my_test.txt' line 1: class index 7 is not in the class list"):
        scan_kinetics_sounds(tmp_path)
    (tmp_path / "my_test.txt").write_text("kste0x0 10 1\n")
    with pytest.raises(LayoutError, match="my_test.txt' line 1"):
        scan_kinetics_sounds(tmp_path)


def test_frame_folders_named_after_the_video_file_are_paired_by_name(tmp_path):
    write_kinetics_sounds(tmp_path, layout="folders")
    visual = tmp_path / "visual" / "train_img" / "Image-01-FPS" / "dog_barking"
    (visual / "kstr1x0").rename(visual / "kstr1x0.mp4")
    (visual / "kstr1x1").rename(visual / "kstr1x9")  # frames of a clip with no audio: ignored
    scan = scan_kinetics_sounds(tmp_path, val_fraction=0.0)
    frames = {c.clip_id: c.paths["frames"].name for c in scan.clips}
    assert frames["kstr1x0"] == "kstr1x0.mp4" and "kstr1x1" not in frames and "kstr1x9" not in frames
    assert any("kstr1x1" in path and "frames folder missing" in why for path, why in scan.skipped)
