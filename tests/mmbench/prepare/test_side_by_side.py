"""mmbench's CREMA-D front-end against a transcription of the released ``CramedDataset``
(``tests/released_loaders.py``) on fixture clips: the spectrogram within 1e-3 (log units) in every
bin with the released code's resampler and padding, the test image equal with the released frame
order; the old scipy resampler is far off above 8 kHz (so the comparison can tell them apart)."""
from __future__ import annotations

import pytest

pytest.importorskip("soxr", reason="soxr (the audio extra) is the released pipeline's resampler")
pytest.importorskip("soundfile", reason="soundfile (the audio extra) reads the fixture wavs")
pytest.importorskip("PIL", reason="Pillow (the video extra) reads the fixture frames")

from prepare_fixtures import cremad_clips, write_cremad_papers  # noqa: E402
from field_fixtures import write_frames  # noqa: E402
from prepare_fixtures import write_wav  # noqa: E402
from released_loaders import ave_side_by_side, ks_side_by_side, side_by_side  # noqa: E402

CLIPS = cremad_clips()[:5]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    root = tmp_path_factory.mktemp("cremad-side-by-side")
    write_cremad_papers(root, CLIPS, frames=3)
    return side_by_side(root, CLIPS)


def test_spectrogram_equals_the_released_pipeline_in_every_bin(table):
    assert table["CREMA-D audio, resampler=soxr_hq, stft_pad=constant: max |diff| (log)"] < 1e-3


def test_the_old_resampler_and_padding_are_told_apart(table):
    assert table["CREMA-D audio, resampler=scipy, stft_pad=constant: max |diff| (log)"] > 1.0
    ours, released = table["CREMA-D audio, resampler=scipy, stft_pad=constant: mean log-magnitude above 8 kHz, "
                           "mmbench / released"]
    assert ours > released + 3  # resample_poly's leakage above the 16 kHz source's Nyquist
    assert table["CREMA-D audio, resampler=soxr_hq, stft_pad=reflect: max |diff| (log)"] > 1e-2  # edge frames


def test_test_image_equals_the_released_transform_with_its_frame_order(table):
    assert table["CREMA-D test image, frame_order=listdir: max |diff|"] < 1e-5


def test_ave_test_frames_equal_the_released_loader(tmp_path):
    """OGM-GE's AVE loader reads ``frame_0000{seg * i + 1}.jpg`` (``seg = files // 3``); mmbench's
    ``frame_pick=even`` reads the same files (9 frames: 1, 4, 7) with the same transform."""
    for k in range(3):
        write_frames(tmp_path / f"clip{k}", k, 9)
    rows = ave_side_by_side(tmp_path, [f"clip{k}" for k in range(3)])
    assert rows["AVE test frames (3 of 9, frame_pick=even): max |diff|"] < 1e-5


def test_kinetics_sounds_spectrogram_equals_the_released_loader_with_its_crop_at_0(tmp_path):
    """ARL / DGL ``KSDataset``: 16 kHz, doubled to >= 10 s, 5 s from a random start (0 here: the
    cache keeps the first 5 s), STFT 256 / 128; clips of 1.5 s and 3.5 s."""
    wavs = [tmp_path / f"clip{k}.wav" for k in range(2)]
    for k, wav in enumerate(wavs):
        write_wav(wav, k, 1.5 + 2 * k, seed=k)
    assert ks_side_by_side(wavs)["Kinetics-Sounds audio (crop start 0), defaults: max |diff| (log)"] < 1e-3


def test_ave_audio_equals_the_released_extraction(tmp_path):
    """OGM-GE's ``obtain_audio_spectrogram.py`` (the pickles AVE's loader reads): 22,050 Hz, tiled 10 times
    to 160,000 samples, clipped, ``scipy.signal.spectrogram(512, 353)``, log, standardised; clips of 1.5 s
    and 3.5 s."""
    from released_loaders import ave_audio_side_by_side

    wavs = [tmp_path / f"clip{k}.wav" for k in range(2)]
    for k, wav in enumerate(wavs):
        write_wav(wav, k, 1.5 + 2 * k, seed=k)
    (value,) = ave_audio_side_by_side(wavs).values()
    assert value < 1e-3


def test_kinetics_sounds_frames_equal_the_released_loader_in_its_frame_order(tmp_path):
    """``KSDataset`` reads the first 3 entries of an unsorted ``glob``: ``frame_order=listdir`` is that
    order; the default ``sorted`` equals it only where the filesystem lists the frames by name."""
    from released_loaders import ks_frames_side_by_side

    for k in range(3):
        write_frames(tmp_path / f"clip{k}", 10 + k, 6)
    rows = ks_frames_side_by_side(tmp_path, [f"clip{k}" for k in range(3)])
    assert rows["Kinetics-Sounds test frames, frame_order=listdir: max |diff|"] < 1e-5
    shuffled = rows["Kinetics-Sounds fixture: clips whose listdir order is not the sorted one"]
    sorted_diff = rows["Kinetics-Sounds test frames, frame_order=sorted: max |diff|"]
    assert (sorted_diff > 0.1) if shuffled else (sorted_diff < 1e-5)


def test_casia_surf_released_resize_equals_the_released_loader_within_one_grey_level(tmp_path):
    """MMANet / DMRNet ``SURF`` test transform: ``cv2.resize`` to 112 without antialiasing. With
    ``resize=released`` mmbench is within rounding of it; Pillow's antialiased resize is not when a
    textured crop is shrunk (so the comparison can tell them apart)."""
    from released_loaders import surf_side_by_side, textured_images

    rows = surf_side_by_side(textured_images(tmp_path))
    for size in ("downscaled from 200 x 160", "upscaled from 90 x 80"):
        row = f"CASIA-SURF test image, resize=released, {size}: max |diff| (grey levels)"
        assert rows[row] < 1.01  # one grey level of rounding, plus float32 storage
    assert rows["CASIA-SURF test image, resize=pillow, downscaled from 200 x 160: max |diff| (grey levels)"] > 10
