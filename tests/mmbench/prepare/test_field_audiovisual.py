"""AVE, Kinetics-Sounds and VGGSound through the CLI: fixture in the papers' layout -> prepare -> run.

Small sizes through settings (16 px frames, 0.5 s of 8 kHz audio) keep each prepare + 1-epoch run at
a few seconds; the arrays' shapes follow the settings exactly as they follow the papers' defaults.
"""
import numpy as np
import pytest

from field_fixtures import write_ave, write_kinetics_sounds, write_vggsound
from mmbench.cli import main
from mmbench.data import clear_cache, load_dataset
from mmbench.prepare.cache import find_cache, read_cache

SMALL = ["size=16", "sample_rate=8000", "seconds=0.5", "n_fft=64", "hop=32"]


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    clear_cache()  # loads are cached per name in-process; each test has its own cache folder
    yield tmp_path / "cache"
    clear_cache()


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def prepare_and_train(capsys, tmp_path, name, src, settings=SMALL):
    code, out, err = cli(capsys, "prepare", name, "--src", src, "--workers", 1, "--set", *settings)
    assert code == 0, err
    code, run_out, err = cli(capsys, "run", "--method", "joint", "--dataset", name, "--set", "epochs=1",
                             "--out", tmp_path / "results")
    assert code == 0, run_out + err
    assert f"joint/{name}/complete/seed0" in run_out and "test acc" in run_out
    return out, load_dataset(name)


def test_ave_official_lists(capsys, tmp_path):
    fx = write_ave(tmp_path / "AVE", corrupt_audio=True)
    report, data = prepare_and_train(capsys, tmp_path, "ave", tmp_path / "AVE")
    # OGM-GE's AVE spectrogram at these settings: 4,000 samples, 64-sample segments every 32 -> [1, 33, 124]
    assert {s.name: s.shape for s in data.specs} == {"audio": (1, 33, 124), "visual": (9, 16, 16)}
    assert data.num_classes == 3 and data.class_names == fx["classes"]
    # the corrupt wav and the listed-but-absent clip are reported by reason, naming the file
    assert "skipped, unreadable audio: 1" in report and "avetr0x0.wav" in report
    assert "skipped, audio missing: 1" in report and "avemissing.wav" in report
    sizes = {k: len(v) for k, v in data.split.items()}
    assert sizes == {"train": fx["sizes"]["train"] - 1, "val": fx["sizes"]["val"], "test": fx["sizes"]["test"]}
    # per-clip standardised spectrogram (the OGM-GE front-end), labels paired with the tone's pitch
    audio = np.asarray(data.arrays["audio"])[data.split["test"]]
    assert np.allclose(audio.mean(axis=(1, 2, 3)), 0, atol=1e-4)
    peak_bin = audio[:, 0].mean(axis=2).argmax(axis=1)  # the tone: 220 Hz * (label + 1)
    assert np.all(np.diff(peak_bin[np.argsort(data.labels[data.split["test"]])]) >= 0)


def test_ave_ogm_lists_and_npy_spectrograms(capsys, tmp_path):
    fx = write_ave(tmp_path / "AVE", lists="ogm")
    src = tmp_path / "AVE"
    # one clip comes as a pre-extracted spectrogram instead of a wav (audio_spec/<id>.npy), 50 frames long
    (src / "audio" / "avete1x0.wav").unlink()
    (src / "audio_spec").mkdir()
    np.save(src / "audio_spec" / "avete1x0.npy", np.ones((33, 50), dtype=np.float32))
    _, data = prepare_and_train(capsys, tmp_path, "ave", src)
    sizes = {k: len(v) for k, v in data.split.items()}
    assert sizes["test"] == fx["sizes"]["test"] and sizes["train"] + sizes["val"] == fx["sizes"]["train"]
    assert sizes["val"] > 0  # OGM-GE's lists have no val list: carved from train
    index = read_cache(find_cache("ave")).ids.index("avete1x0")
    assert np.all(np.asarray(data.arrays["audio"])[index] == 1.0)  # tiled in time to T = 124 (2 x 50 + 24)


@pytest.mark.parametrize("layout", ["folders", "lists"])
def test_kinetics_sounds(capsys, tmp_path, layout):
    fx = write_kinetics_sounds(tmp_path / "KS", layout=layout, corrupt_audio=True)
    report, data = prepare_and_train(capsys, tmp_path, "kinetics-sounds", tmp_path / "KS")
    # 0.5 s at 8 kHz, n_fft 64, hop 32 -> [1, 33, 126]; 3 frames stacked on channels
    assert {s.name: s.shape for s in data.specs} == {"audio": (1, 33, 126), "visual": (9, 16, 16)}
    assert data.num_classes == 4 and data.class_names == fx["classes"]  # class.txt decides, not the clips
    assert "skipped, unreadable audio: 1" in report and "kstr0x0.wav" in report
    assert "ksmissing" in report
    sizes = {k: len(v) for k, v in data.split.items()}
    assert sizes["test"] == fx["sizes"]["test"]
    assert sizes["train"] + sizes["val"] == fx["sizes"]["trainval"] - 1 and sizes["val"] > 0
    assert set(np.unique(data.labels[data.split["test"]])) == {0, 1, 2}
    # which list decided the class count is kept beside the cache
    assert "4 classes, from class.txt" in read_cache(find_cache("kinetics-sounds")).meta["notes"]["scan"][0]


def test_vggsound(capsys, tmp_path):
    fx = write_vggsound(tmp_path / "VGGSound")
    report, data = prepare_and_train(capsys, tmp_path, "vggsound", tmp_path / "VGGSound")
    assert data.class_names == fx["classes"]
    assert "skipped, audio missing: 1" in report and "vggmissing" in report
    sizes = {k: len(v) for k, v in data.split.items()}
    assert sizes["test"] == fx["sizes"]["test"] and sizes["train"] + sizes["val"] == fx["sizes"]["trainval"]
    # the frames' brightness follows the class in the fixture's writing order, so the labels (sorted
    # class names) stayed paired with their frames when the class means rise in that order
    vis = np.asarray(data.arrays["visual"])[data.split["test"]]
    y = data.labels[data.split["test"]]
    means = [vis[y == data.class_names.index(name), 0].mean() for name in fx["written"]]
    assert np.all(np.diff(means) > 0)


def test_missing_list_and_bad_label_are_errors_naming_the_file(capsys, tmp_path):
    write_kinetics_sounds(tmp_path / "KS", layout="lists")
    (tmp_path / "KS" / "my_test.txt").write_text("kste0x0,10,9\n")
    code, _, err = cli(capsys, "prepare", "kinetics-sounds", "--src", tmp_path / "KS", "--workers", 1)
    assert code == 2 and "my_test.txt' line 1: class index 9 is not in the class list" in err
    write_vggsound(tmp_path / "V")
    (tmp_path / "V" / "vggsound.csv").unlink()
    code, _, err = cli(capsys, "prepare", "vggsound", "--src", tmp_path / "V", "--workers", 1)
    assert code == 2 and "vggsound.csv" in err and "missing" in err
    code, _, err = cli(capsys, "prepare", "ave", "--src", tmp_path / "V", "--workers", 1, "--set", "frame_pick=random")
    assert code == 2 and "frame_pick='random'; expected one of first, even" in err


def test_a_changed_setting_makes_a_new_cache(capsys, tmp_path, cache_dir):
    write_vggsound(tmp_path / "V")
    for size in (16, 8):
        settings = [s for s in SMALL if not s.startswith("size=")] + [f"size={size}"]
        assert cli(capsys, "prepare", "vggsound", "--src", tmp_path / "V", "--workers", 1, "--set", *settings)[0] == 0
    assert len(list(cache_dir.glob("vggsound-*/"))) == 2
    assert load_dataset("vggsound").specs[1].shape == (9, 8, 8)
