"""VGGSound scanner: the published csv, padded or unpadded start times, missing videos skipped."""
import pytest

from field_fixtures import write_vggsound
from mmbench.data.layouts import LayoutError, scan_vggsound


@pytest.mark.parametrize("pad", [True, False])
def test_scan(tmp_path, pad):
    expected = write_vggsound(tmp_path, pad=pad)
    scan = scan_vggsound(tmp_path)
    assert scan.classes == expected["classes"]  # sorted; the quoted label with a comma is one class
    sizes = scan.split_sizes()
    assert sizes["test"] == expected["sizes"]["test"]
    assert sizes["train"] + sizes["val"] == expected["sizes"]["trainval"]
    assert len(scan.skipped) == 1 and "vggmissing" in scan.skipped[0][0]
    by_label = {c.clip_id[5]: scan.classes[c.label] for c in scan.clips}
    assert by_label == {"0": "dog barking", "1": "playing violin, fiddle", "2": "people marching"}


def test_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="vggsound.csv"):
        scan_vggsound(tmp_path)
    write_vggsound(tmp_path)
    (tmp_path / "vggsound.csv").write_text("abc,0,dog barking,validation\n")
    with pytest.raises(LayoutError, match=r"vggsound.csv' line 1: .*train\|test"):
        scan_vggsound(tmp_path)


def test_too_few_frames_is_skipped_with_the_reason(tmp_path):
    write_vggsound(tmp_path, frames=2)
    with pytest.raises(LayoutError, match="no train sample found on disk.*fewer than 3 frames"):
        scan_vggsound(tmp_path)
    assert scan_vggsound(tmp_path, min_frames=2).split_sizes()["test"] == 6
