"""The training crop in the original frame geometry (``crop_geometry=original``) against the released
CREMA-D transform (``RandomResizedCrop(224)`` + flip on the 480 x 360 frame, run by torchvision itself
in ``tests/released_loaders.py``), draw by draw: the same box and flip, pixels within the resolution
lost by storing the frame at 224 x 224; the crop on the stored frame (``stored``) is told apart."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("PIL", reason="Pillow (the video extra) writes and reads the fixture frames")
pytest.importorskip("torchvision", reason="torchvision runs the released transform and the augmentation")

from released_loaders import crop_side_by_side, original_frames  # noqa: E402

from mmbench.data.base import ModalitySpec  # noqa: E402
from mmbench.frame_crop import OriginalGeometryCrop, check_crop_geometry, parse_frame_size  # noqa: E402
from mmbench.streaming import StackedFrames, paper_augmentation  # noqa: E402

SEEDS = range(16)


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    return crop_side_by_side(original_frames(tmp_path_factory.mktemp("frames"), count=2), SEEDS)


def test_every_box_and_flip_is_the_released_draw(table):
    draws = 2 * len(SEEDS)
    assert table[f"CREMA-D train crop, crop_geometry=original: box and flip equal to the released draw (of {draws})"] \
        == draws


def test_pixels_differ_only_by_the_resolution_of_the_stored_frame(table):
    # Measured on these frames: max 0.19, mean 0.018 (normalised units; ImageNet std ~0.225, so 0.018 is
    # about one grey level: the max is the original's pixel noise, which the 224 x 224 copy averaged
    # away). The crop on the stored frame (another region and aspect): max 4.46, mean 1.14.
    assert table["CREMA-D train crop, crop_geometry=original: max |diff|"] < 0.5
    assert table["CREMA-D train crop, crop_geometry=original: mean |diff|"] < 0.05
    assert table["CREMA-D train crop, crop_geometry=stored: mean |diff|"] \
        > 5 * table["CREMA-D train crop, crop_geometry=original: mean |diff|"]


def test_the_resampling_is_torchvisions_bilinear_resized_crop_when_nothing_was_stored_smaller():
    """With the stored frame = the original (frame_size = stored size) the box is in whole pixels, and the
    crop equals torchvision's tensor ``resized_crop`` without antialiasing (both bilinear, half-pixel
    centres, edge-clamped), for crops enlarged and shrunk."""
    from torchvision.transforms.v2 import functional as TF

    x = torch.rand(2, 3, 30, 40, generator=torch.Generator().manual_seed(0))
    crop = OriginalGeometryCrop((24, 36), (30, 40))
    for params in [(0, 0, 30, 40), (3, 5, 12, 9), (10, 0, 20, 40), (0, 21, 7, 19), (29, 39, 1, 1)]:
        want = TF.resized_crop(x, *params, [24, 36], antialias=False)
        torch.testing.assert_close(crop.crop(x, params), want, rtol=0, atol=1e-5, msg=str(params))


def test_the_box_is_mapped_by_each_axis_own_factor():
    crop = OriginalGeometryCrop((224, 224), (360, 480))
    top, left, height, width = crop.stored_box((36, 48, 180, 240), (224, 224))
    assert (top, height) == pytest.approx((36 * 224 / 360, 180 * 224 / 360))
    assert (left, width) == pytest.approx((48 * 224 / 480, 240 * 224 / 480))
    # a square box of the original frame is 4/3 taller than wide on the squashed stored frame
    _, _, height, width = crop.stored_box((0, 0, 180, 180), (224, 224))
    assert (height / width) == pytest.approx(4 / 3)


def test_the_aspect_ratio_in_original_pixels_stays_in_the_released_range():
    crop = OriginalGeometryCrop((224, 224), (360, 480))
    torch.manual_seed(0)
    aspects = []
    for _ in range(500):
        top, left, height, width = crop.params()
        assert 0 <= top and top + height <= 360 and 0 <= left and left + width <= 480
        aspects.append(width / height)
    # rounding of w and h to whole pixels moves the bound by at most about one pixel in the smallest crops
    assert 0.70 < min(aspects) and max(aspects) < 1.40
    assert min(aspects) < 0.8 and max(aspects) > 1.25  # and the draw covers the range


def test_stacked_frames_share_one_draw_and_keep_their_shape():
    spec = ModalitySpec("visual", "image", (6, 32, 32))
    transform = paper_augmentation(spec, True, (360, 480))
    frame = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(3)
    out = transform(torch.cat([frame, frame]))
    assert isinstance(transform, StackedFrames) and out.shape == (6, 32, 32)
    torch.testing.assert_close(out[:3], out[3:])


def test_settings_errors_name_the_value():
    assert parse_frame_size("480x360") == (360, 480)
    for bad in ("480", "480x", "0x360", "ax360", "480x360x3"):
        with pytest.raises(ValueError, match="frame_size"):
            parse_frame_size(bad)
    with pytest.raises(ValueError, match="crop_geometry='squashed'"):
        check_crop_geometry("squashed")
    with pytest.raises(ValueError, match="positive"):
        OriginalGeometryCrop((224, 224), (0, 480))
