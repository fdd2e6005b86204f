"""UCF101 through the CLI: RGB + TV-L1 flow fixture -> prepare (split setting) -> run."""
import numpy as np
import pytest

from field_fixtures import write_ucf101
from mmbench.cli import main
from mmbench.data import clear_cache, load_dataset


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    clear_cache()
    yield tmp_path / "cache"
    clear_cache()


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_prepare_and_train(capsys, tmp_path):
    fx = write_ucf101(tmp_path / "UCF101", frames=4)
    code, report = cli(capsys, "prepare", "ucf101", "--src", tmp_path / "UCF101", "--workers", 1,
                       "--set", "size=16", "flow_frames=2", "n_frames=2", "val_groups=1")
    assert code == 0, report
    assert "v_Archery_g11_c99" in report  # listed, never extracted: in the skipped report
    data = load_dataset("ucf101")
    assert {s.name: s.shape for s in data.specs} == {"rgb": (6, 16, 16), "flow": (4, 16, 16)}
    assert data.class_names == fx["classes"]
    # split 1: train groups 8-11 with 11 held out for val, test groups 1-2; 3 classes, one clip a group
    assert {k: len(v) for k, v in data.split.items()} == {"train": 9, "val": 3, "test": 6}
    flow = np.asarray(data.arrays["flow"])
    assert flow.min() >= -1.0 and flow.max() <= 1.0  # the 128-centred jpg bytes mapped to [-1, 1]
    code, out = cli(capsys, "run", "--method", "joint", "--dataset", "ucf101", "--set", "epochs=1",
                    "--out", tmp_path / "results")
    assert code == 0, out
    assert "rgb+flow" in out


def test_the_split_setting_reads_the_other_official_lists(capsys, tmp_path):
    write_ucf101(tmp_path / "UCF101")
    code, report = cli(capsys, "prepare", "ucf101", "--src", tmp_path / "UCF101", "--workers", 1,
                       "--set", "size=8", "flow_frames=1", "split=2", "val_groups=0")
    assert code == 0, report
    data = load_dataset("ucf101")
    assert len(data.split["test"]) == 12  # split 2 of the fixture tests on the 4 groups split 1 trains on
    code, err = cli(capsys, "prepare", "ucf101", "--src", tmp_path / "UCF101", "--set", "split=4")
    assert code == 2 and "split must be 1, 2 or 3, got 4" in err


def test_missing_class_index_names_the_file(capsys, tmp_path):
    write_ucf101(tmp_path / "UCF101")
    (tmp_path / "UCF101" / "ucfTrainTestlist" / "classInd.txt").unlink()
    code, err = cli(capsys, "prepare", "ucf101", "--src", tmp_path / "UCF101", "--workers", 1)
    assert code == 2 and "classInd.txt" in err and "missing" in err
