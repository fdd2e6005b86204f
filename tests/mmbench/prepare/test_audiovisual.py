"""The audio-visual front-end pieces: OGM-GE's AVE spectrogram shape, .npy spectrograms, frame picking."""
import numpy as np
import pytest

from mmbench.prepare.audiovisual import AVE, KineticsSounds, ogm_ave_shape, ogm_ave_spectrogram, spectrogram_from_npy
from mmbench.prepare.base import SkipItem
from mmbench.prepare.scanned import centred, middle, spaced


def test_default_shapes_are_the_papers():
    # OGM-GE asserts (257, 1004) for AVE; the ARL / DGL KS loader gives 129 x 626.
    assert AVE().audio_shape(AVE.defaults) == (1, 257, 1004)
    assert KineticsSounds().audio_shape(KineticsSounds.defaults) == (1, 129, 626)
    assert [s.shape for s in AVE().modalities(AVE.defaults)][1] == (9, 224, 224)


def test_ogm_ave_spectrogram_tiles_a_short_clip_instead_of_asserting():
    one_second = np.sin(np.linspace(0, 2000, 22050)).astype(np.float32)  # 1 s, far below 160,000 samples
    spec = ogm_ave_spectrogram(one_second, 22050, 160000, 512, 159)
    assert spec.shape == ogm_ave_shape(160000, 512, 159) == (1, 257, 1004)
    assert abs(spec.mean()) < 1e-4 and abs(spec.std() - 1) < 1e-3  # standardised per clip


def test_npy_spectrogram_is_tiled_in_time_and_a_wrong_frequency_size_is_skipped(tmp_path):
    np.save(tmp_path / "a.npy", np.arange(6, dtype=np.float32).reshape(3, 2))
    out = spectrogram_from_npy(tmp_path / "a.npy", (1, 3, 5))
    assert out.shape == (1, 3, 5) and out[0, 0].tolist() == [0, 1, 0, 1, 0]
    with pytest.raises(SkipItem, match=r"a.npy: shape \(3, 2\), expected \[129, T\]"):
        spectrogram_from_npy(tmp_path / "a.npy", (1, 129, 626))
    (tmp_path / "b.npy").write_bytes(b"junk")
    with pytest.raises(SkipItem) as err:
        spectrogram_from_npy(tmp_path / "b.npy", (1, 3, 5))
    assert err.value.reason == "unreadable spectrogram" and "b.npy" in str(err.value)


def test_frame_picks():
    assert spaced(10, 3) == [0, 3, 6]  # OGM-GE AVE: frame seg*i + 1 (1-based), seg = 10 // 3
    assert spaced(2, 3) == [0, 1, 1]  # too few frames: the last repeats
    assert centred(10, 1) == [5] and centred(10, 2) == [2, 7]
    assert middle(20, 4) == [8, 9, 10, 11] and middle(2, 4) == [0, 1, 1, 1]
