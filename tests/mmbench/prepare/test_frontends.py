"""The audio and visual front-ends: the papers' shapes at the defaults, tiling, resampling, frame sampling."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import soundfile
from prepare_fixtures import write_video

from mmbench.prepare import frontends
from mmbench.prepare.base import SkipItem
from mmbench.prepare.cremad import CremaD


def test_default_crema_d_shapes_are_the_papers():
    specs = CremaD().modalities(CremaD.defaults)
    assert [(s.name, s.shape) for s in specs] == [("audio", (1, 257, 188)), ("visual", (3, 224, 224))]


def test_spectrogram_of_a_3s_clip_at_defaults(tmp_path):
    rate, f0 = 16000, 1000.0  # the distributed wavs are 16 kHz; the front-end resamples to 22.05 kHz
    t = np.arange(int(2.0 * rate)) / rate
    soundfile.write(str(tmp_path / "a.wav"), (0.5 * np.sin(2 * np.pi * f0 * t)).astype(np.float32), rate)
    spec = frontends.audio_spectrogram(tmp_path / "a.wav", 22050, 3.0, 512, 353)
    assert spec.shape == (1, 257, 188) and spec.dtype == np.float32
    peak_bin = spec[0, :, 20:-20].mean(axis=1).argmax()
    assert peak_bin == round(f0 * 512 / 22050)  # the tone's frequency survives resampling


def test_short_clip_is_tiled_not_rejected():
    x = np.arange(5, dtype=np.float32)
    assert frontends.tile_crop(x, 12).tolist() == [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]
    # at least 1 s: identical to the papers' np.tile(x, 3)[:3 s]
    y = np.random.default_rng(0).normal(size=1500).astype(np.float32)
    assert np.array_equal(frontends.tile_crop(y, 3000), np.tile(y, 3)[:3000])


def test_log_spectrogram_matches_a_direct_dft():
    x = np.random.default_rng(1).normal(size=1000).astype(np.float32)
    spec = frontends.log_spectrogram(x, 64, 32)
    padded = np.pad(x, 32, mode="reflect")  # centred frames, reflect padding
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(64) / 64)  # periodic Hann
    frame5 = padded[5 * 32: 5 * 32 + 64] * window
    expected = np.log(np.abs(np.fft.rfft(frame5)) + 1e-7)
    assert spec.shape == (1, 33, 1 + 1000 // 32)
    assert np.allclose(spec[0, :, 5], expected, atol=1e-4)


def test_unreadable_audio_is_a_skip_naming_the_file(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"junk")
    with pytest.raises(SkipItem, match="x.wav") as info:
        frontends.read_audio(tmp_path / "x.wav", 16000)
    assert info.value.reason == "unreadable audio"


def test_video_frames_sampled_at_fps(tmp_path):
    # 5 fps video, 2 s, frame k coloured by k: at fps=1 the picks are frames 0 and 5
    import av

    path = tmp_path / "v.mp4"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for k in range(10):
            img = np.full((32, 32, 3), 20 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    frames = frontends.video_frames(path, fps=1, n_frames=3, size=16, normalize=False)
    assert frames.shape == (9, 16, 16)
    levels = [round(float(frames[3 * i:3 * i + 3].mean()) * 255 / 20) for i in range(3)]
    assert levels == [0, 5, 5]  # the 2 s video has 2 one-second samples; the third repeats the last


def test_flv_as_crema_d_ships(tmp_path):
    write_video(tmp_path / "c.flv", label=2, seconds=1.0, seed=0)
    assert frontends.video_frames(tmp_path / "c.flv", 1, 1, 8, True).shape == (3, 8, 8)


def test_missing_decoder_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "av", None)  # what an uninstalled module looks like to import
    with pytest.raises(ImportError, match=r'pip install -e "\.\[video\]"'):
        frontends.require("av")
