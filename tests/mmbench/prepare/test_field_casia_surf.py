"""CASIA-SURF through the CLI: RGB / depth / IR fixture -> prepare -> run, with APCER / BPCER / ACER per subset."""
import json

import numpy as np
import pytest

from field_fixtures import write_casia_surf
from mmbench.cli import main
from mmbench.data import clear_cache, load_dataset
from mmbench.data.layouts.casia_surf import MODALITIES


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    clear_cache()
    yield tmp_path / "cache"
    clear_cache()


def cli(capsys, *args, stdout_only=False):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out if stdout_only else out.out + out.err


def test_prepare_and_train_reports_the_anti_spoofing_rates(capsys, tmp_path):
    fx = write_casia_surf(tmp_path / "SURF")
    code, report = cli(capsys, "prepare", "casia-surf", "--src", tmp_path / "SURF", "--workers", 1, "--set", "size=16")
    assert code == 0, report
    assert "skipped, rgb image missing: 1" in report and "profile/9.jpg" in report
    data = load_dataset("casia-surf")
    assert {s.name: s.shape for s in data.specs} == {"rgb": (3, 16, 16), "depth": (1, 16, 16), "ir": (1, 16, 16)}
    assert data.class_names == ["spoof", "live"] and data.meta["extra_metrics"] == "anti_spoofing"
    assert {k: len(v) for k, v in data.split.items()} == fx["sizes"]
    # live (label 1) faces are brighter in the fixture: the labels stayed paired with the images
    depth = np.asarray(data.arrays["depth"]).mean(axis=(1, 2, 3))
    assert depth[data.labels == 1].min() > depth[data.labels == 0].max()
    code, out = cli(capsys, "run", "--method", "joint", "--dataset", "casia-surf", "--set", "epochs=1",
                    "--out", tmp_path / "results", "--json", stdout_only=True)  # progress goes to stderr
    assert code == 0, out
    metrics = json.loads(out)["metrics"]
    rates = metrics["extra"]["anti_spoofing"]
    assert len(rates) == 7 and set(metrics["subset_acc"]) == set(rates)  # every modality combination
    assert all(set(v) == {"apcer", "bpcer", "acer"} for v in rates.values())
    code, out = cli(capsys, "run", "--method", "joint", "--dataset", "casia-surf", "--set", "epochs=1",
                    "--out", tmp_path / "results")
    line = next(ln for ln in out.splitlines() if "anti_spoofing rgb+depth+ir:" in ln)  # the plain report too
    assert all(f"{k} " in line for k in ("apcer", "bpcer", "acer"))


def test_unlabelled_public_list_is_refused_naming_the_file(capsys, tmp_path):
    write_casia_surf(tmp_path / "SURF")
    lines = (tmp_path / "SURF" / "test_private_list.txt").read_text().splitlines()
    (tmp_path / "SURF" / "test_private_list.txt").write_text("\n".join(" ".join(ln.split()[:3]) for ln in lines))
    code, err = cli(capsys, "prepare", "casia-surf", "--src", tmp_path / "SURF", "--workers", 1)
    assert code == 2 and "test_private_list.txt' line 1: no label column" in err


def test_an_unreadable_image_is_skipped_not_fatal(capsys, tmp_path):
    write_casia_surf(tmp_path / "SURF")
    first = (tmp_path / "SURF" / "train_list.txt").read_text().split()[1]  # a depth image
    (tmp_path / "SURF" / first).write_bytes(b"not a jpeg")
    code, report = cli(capsys, "prepare", "casia-surf", "--src", tmp_path / "SURF", "--workers", 1, "--set", "size=8")
    assert code == 0 and "skipped, unreadable image: 1" in report and first in report
    assert len(load_dataset("casia-surf").split["train"]) == 11
    assert set(MODALITIES) == {s.name for s in load_dataset("casia-surf").specs}
