"""AVE scanner on fixtures in the official and the OGM-GE list layouts."""
import pytest

from field_fixtures import write_ave
from mmbench.data.layouts import LayoutError, scan_ave


@pytest.mark.parametrize("lists", ["official", "ogm"])
def test_scan_finds_classes_splits_and_reports_the_missing_clip(tmp_path, lists):
    expected = write_ave(tmp_path, lists=lists)
    layout = scan_ave(tmp_path)
    assert layout.classes == expected["classes"]
    sizes = layout.split_sizes()
    if lists == "official":
        assert sizes == expected["sizes"]
    else:  # OGM-GE has no val list: val is carved from train, test untouched
        assert sizes["test"] == expected["sizes"]["test"]
        assert sizes["train"] + sizes["val"] == expected["sizes"]["train"] and sizes["val"] > 0
    assert [p for p, _ in layout.skipped] == [str(tmp_path / "audio" / "avemissing.wav")]
    for clip in layout.clips:  # labels stay paired with their files (ids carry the label index)
        assert clip.clip_id[5] == str(clip.label)
        assert clip.paths["audio"].name == f"{clip.clip_id}.wav" and clip.paths["frames"].is_dir()


def test_a_video_listed_with_two_events_is_skipped(tmp_path):
    write_ave(tmp_path)
    with open(tmp_path / "trainSet.txt", "a") as f:
        f.write("Violin&avetr0x0&good&3&9\n")  # avetr0x0 is a Bark clip: now two labels
    layout = scan_ave(tmp_path)
    assert "avetr0x0" not in {c.clip_id for c in layout.clips}
    assert any(p == "avetr0x0" and "2 labels" in why for p, why in layout.skipped)


def test_missing_list_label_and_bad_line_errors_name_the_file(tmp_path):
    write_ave(tmp_path)
    (tmp_path / "testSet.txt").unlink()
    with pytest.raises(FileNotFoundError, match="testSet.txt"):
        scan_ave(tmp_path)
    write_ave(tmp_path, lists="ogm")
    (tmp_path / "trainSet.txt").unlink()
    (tmp_path / "my_test.txt").write_text("Banjo,avete0x0\n")
    with pytest.raises(LayoutError, match=r"my_test.txt' line 1: label 'Banjo' is not in the class list"):
        scan_ave(tmp_path)
    (tmp_path / "my_test.txt").write_text("Bark;avete0x0\n")
    with pytest.raises(LayoutError, match=r"my_test.txt' line 1: .*expected form 'Category,VideoID'"):
        scan_ave(tmp_path)


def test_no_list_at_all_names_both_forms(tmp_path):
    (tmp_path / "visual").mkdir()
    with pytest.raises(FileNotFoundError, match="trainSet.txt.*my_train.txt"):
        scan_ave(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        scan_ave(tmp_path / "nowhere")
