"""The segmentation task in the harness: CLI run, stored record, run key, method and setting errors.

Tiny settings throughout (one epoch on the 32 x 32 procedural scenes, a narrow decoder), so the file
costs seconds.
"""
import json

import pytest
import torch

pytest.importorskip("torchvision", reason="the ResNet-34 branches are torchvision's (pip install -e '.[paper]')")

from mmbench.cli import main  # noqa: E402
from mmbench.config import RunSpec  # noqa: E402
from mmbench.data.registry import dataset_task  # noqa: E402
from mmbench.report.frame import results_frame  # noqa: E402
from mmbench.report.tables import write_tables  # noqa: E402
from mmbench.result_check import problem  # noqa: E402
from mmbench.results_store import ResultsStore  # noqa: E402
from mmbench.run_key import run_identity  # noqa: E402
from mmbench.runner import Runner  # noqa: E402
from mmbench.segmentation.datasets import PROCEDURAL  # noqa: E402
from mmbench.segmentation.methods import masked_weighted_cross_entropy  # noqa: E402
from mmbench.segmentation.metrics import VOID_INDEX  # noqa: E402
from tests.fake_results import write_fake_results  # noqa: E402

TINY = ["epochs=1", "decoder_channels=[32,16,8]"]
COMBOS = ("rgb", "depth", "rgb+depth")


@pytest.fixture(autouse=True)
def _private_hash_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "hash-cache"))


def _stored(out):
    runs = list((out / "runs").glob("*.json"))
    assert len(runs) == 1
    return json.loads(runs[0].read_text()), runs[0]


def test_the_task_is_in_the_registration_and_classification_is_the_default():
    assert dataset_task(PROCEDURAL) == "segmentation"
    assert dataset_task("synthetic") == "classification"
    assert dataset_task("no-such-data-set") == "classification"  # its error stays the classification path's


def test_a_registration_names_a_known_task_and_a_segmentation_set_its_fingerprint():
    from mmbench.data.registry import register_dataset

    with pytest.raises(ValueError, match="unknown task 'detection'"):
        register_dataset("test-seg-bad", lambda: None, task="detection")
    with pytest.raises(ValueError, match="declares its fingerprint"):
        register_dataset("test-seg-bad", lambda: None, task="segmentation")
    assert dataset_task("test-seg-bad") == "classification"  # neither was registered


def test_cli_run_trains_selects_tests_and_stores_a_checked_record(tmp_path, capsys):
    out = tmp_path / "x"
    argv = ["run", "--method", "joint", "--dataset", PROCEDURAL, "--pattern", "complete", "--seed", "0",
            "--set", *TINY, "--out", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "mIoU" in printed.out and "epoch 1/1" in printed.err
    record, path = _stored(out)
    assert problem(record, path) is None  # the store's own trust checks: key = identity's key, checksum
    assert record["status"] == "ok" and record["task"] == "segmentation"
    assert record["identity"]["task"] == "segmentation" and record["identity"]["train"]["epochs"] == 1
    m = record["metrics"]
    assert set(m["subset_miou"]) == set(COMBOS) == set(m["subset_pixel_acc"])
    values = [m["subset_miou"][c] for c in COMBOS]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert m["miou_mean"] == pytest.approx(sum(values) / 3) and m["miou_worst"] == min(values)
    assert m["subset_miou"][m["miou_worst_subset"]] == m["miou_worst"]
    assert m["pixel_acc_worst"] == min(m["subset_pixel_acc"].values())
    assert all(len(m["subset_iou"][c]) == 5 for c in COMBOS)
    # selection on the validation split carved from train (25 % of 96), the test split read once
    assert m["split_sizes"] == {"train": 72, "val": 24, "test": 48}
    assert m["best_epoch"] == 0 and m["val_selection"] == record["history"][0]["val"]
    assert len(m["class_weights"]) == 5 and min(m["class_weights"]) > 0
    # a second call is a cache hit: the same stored record, nothing trained
    assert main(argv) == 0
    assert "cached" in capsys.readouterr().out
    assert _stored(out)[0]["finished_at"] == record["finished_at"]


def test_key_is_stable_and_differs_from_a_classification_run():
    spec = RunSpec("joint", PROCEDURAL, "complete", 0, {"epochs": 1})
    key = spec.key()
    assert key == RunSpec("joint", PROCEDURAL, "complete", 0, {"epochs": 1}).key()
    assert run_identity(spec)["task"] == "segmentation"
    assert key != RunSpec("joint", PROCEDURAL, "complete", 1, {"epochs": 1}).key()  # seed
    assert key != RunSpec("joint", PROCEDURAL, "complete", 0, {"epochs": 2}).key()  # a setting
    assert key != RunSpec("unimodal", PROCEDURAL, "complete", 0, {"epochs": 1}).key()  # the method
    classification = RunSpec("joint", "synthetic", "complete", 0, {"epochs": 1})
    assert "task" not in run_identity(classification)  # classification identities are as before
    assert key != classification.key()


@pytest.mark.parametrize("method", ["arl", "dgl", "no-such-method"])
def test_a_method_without_a_segmentation_form_is_a_clear_error(method, tmp_path, capsys):
    code = main(["run", "--method", method, "--dataset", PROCEDURAL, "--set", "epochs=1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"method {method!r} has no segmentation form" in err
    assert "dmrnet, joint, mmanet, modality-dropout, osmd, shaspec, unimodal" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("extra, message", [
    (["fusion=sum"], "unknown setting 'fusion'"),  # a classification engine setting
    (["epochs=0"], "epochs=0 is not allowed"),
    (["encoder_layers=[1,1]"], "encoder_layers=[1, 1] is not allowed"),
])
def test_bad_settings_are_errors_before_anything_runs(extra, message, tmp_path, capsys):
    code = main(["run", "--method", "joint", "--dataset", PROCEDURAL, "--set", *extra, "--out", str(tmp_path)])
    assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_natural_pattern_is_refused_with_the_reason(tmp_path, capsys):
    code = main(["run", "--method", "joint", "--dataset", PROCEDURAL, "--pattern", "natural", "--out", str(tmp_path)])
    assert code == 2 and "does not declare" in capsys.readouterr().err


def test_unimodal_under_missing_rate_stores_the_masked_test_score(tmp_path):
    spec = RunSpec("unimodal", PROCEDURAL, "missing-0.5", 0, {"epochs": 1, "decoder_channels": [32, 16, 8]})
    result = Runner(tmp_path).run(spec)
    assert result["status"] == "ok", result.get("error")
    m = result["metrics"]
    assert 0.0 <= m["masked_test_miou"] <= 1.0
    # its rgb+depth prediction is one of its two networks: equal to the rgb-only or the depth-only score
    assert m["subset_miou"]["rgb+depth"] in (m["subset_miou"]["rgb"], m["subset_miou"]["depth"])
    masks = list((tmp_path / "cache" / "masks").glob("*.npz"))
    assert len(masks) == 1 and "missing-0.5" in masks[0].name  # persisted as for classification


def test_masked_loss_equals_pytorch_weighted_mean_and_drops_unkept_images():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 4, 6, 6, generator=g, requires_grad=True)
    labels = torch.randint(0, 4, (3, 6, 6), generator=g)
    labels[0, :2] = VOID_INDEX
    w = torch.tensor([0.5, 1.0, 2.0, 0.0])
    ref = torch.nn.functional.cross_entropy(logits, labels, weight=w, ignore_index=VOID_INDEX)
    torch.testing.assert_close(masked_weighted_cross_entropy(logits, labels, w, torch.ones(3)), ref)
    keep = torch.tensor([1.0, 0.0, 1.0])
    masked = masked_weighted_cross_entropy(logits, labels, w, keep)
    idx = torch.tensor([0, 2])
    torch.testing.assert_close(masked, torch.nn.functional.cross_entropy(logits[idx], labels[idx], weight=w,
                                                                         ignore_index=VOID_INDEX))
    masked.backward()
    assert logits.grad[1].abs().sum() == 0 and logits.grad[0].abs().sum() > 0  # the dropped image adds nothing


def test_the_same_store_and_tables_hold_both_tasks(tmp_path):
    write_fake_results(tmp_path)  # classification results written by hand (no training)
    store = ResultsStore(tmp_path)
    seg = Runner(store).run(RunSpec("modality-dropout", PROCEDURAL, "complete", 0,
                                    {"epochs": 1, "decoder_channels": [32, 16, 8], "p": 0.3}))
    assert seg["status"] == "ok" and seg["identity"]["method_hparams"] == {"p": 0.3}
    assert seg["key"] in {r["key"] for r in store.all_results()}
    # the classification tables leave the segmentation run out; it has its own section, per combination
    assert set(results_frame(store.all_results())["dataset"]) == {"alpha", "beta"}
    paths = write_tables(str(tmp_path))
    md = paths["md"].read_text()
    section = md[md.index("## Segmentation: mIoU per modality combination"):]
    row = next(line for line in section.splitlines() if line.startswith("| modality-dropout"))
    m = seg["metrics"]
    expected = [m["subset_miou"][c] for c in ("rgb", "depth", "rgb+depth")] + [m["miou_mean"], m["miou_worst"]]
    assert row.split(" | ")[2:7] == [f"{100 * v:.1f}" for v in expected]
    board = json.loads(paths["json"].read_text())
    label = "modality-dropout [decoder_channels=[32, 16, 8],epochs=1,p=0.3]"
    assert [r["method"] for r in board["segmentation"]] == [label]
    assert {r["dataset"] for r in board["aggregate"]} == {"alpha", "beta"}
    # the page: its Tables page renders LEADERBOARD.md with the section, and the data set has its own
    # page (tests/mmbench/report/site/test_segmentation_page.py), from this stored record
    from mmbench.report.site.publish import publish

    site = publish(str(tmp_path)).parent
    assert "Segmentation: mIoU per modality combination" in (site / "tables.html").read_text()
    page = (site / "dataset-procedural-rgbd.html").read_text()
    assert 'href="dataset-procedural-rgbd.html"' in (site / "index.html").read_text()
    assert m["class_names"] == ["wall", "warm-near", "warm-middle", "cool-near", "cool-middle"]
    assert "<th>cool-middle</th>" in page
    assert f"<td>{label}</td><td>1</td><td>{100 * m['subset_miou']['rgb']:.1f} (1)</td>" in page


def test_the_dense_suite_runs_through_the_grid_into_its_table_section(tmp_path, capsys, monkeypatch):
    from kernels import cpp_ext

    def no_build(say):
        raise AssertionError("a segmentation-only grid built the C++ statistics it never uses")

    monkeypatch.setattr(cpp_ext, "build_announced", no_build)
    out = tmp_path / "dense"
    argv = ["all", "--suite", "dense", "--methods", "joint", "--patterns", "complete", "--seeds", "0",
            "--set", *TINY, "--workers", "1", "--out", str(out)]
    assert main(argv) == 0
    record, _ = _stored(out)
    assert record["task"] == "segmentation" and record["status"] == "ok"
    # the grid computed the same key as a `run` of the same spec
    assert record["key"] == RunSpec("joint", PROCEDURAL, "complete", 0,
                                    {"epochs": 1, "decoder_channels": [32, 16, 8]}).key()
    assert "### procedural-rgbd / complete" in (out / "LEADERBOARD.md").read_text()
    capsys.readouterr()
    assert main(argv[:-2] + ["--out", str(out), "--dry-run"]) == 0
    assert "1 cached" in capsys.readouterr().out


def test_show_gives_the_segmentation_card_and_settings(capsys):
    assert main(["show", PROCEDURAL]) == 0
    card = capsys.readouterr().out
    assert "task: segmentation" in card and "val 24" in card
    assert "methods: dmrnet, joint, mmanet, modality-dropout, osmd, shaspec, unimodal" in card
    assert main(["show", "modality-dropout", "--dataset", PROCEDURAL]) == 0
    text = capsys.readouterr().out
    assert "resolved for procedural-rgbd (segmentation)" in text and "val_fraction" in text


def test_registering_the_segmentation_data_sets_imports_no_torch():
    # `import mmbench.data` (and so `table`) stays light: the generator is imported when a set is built
    import subprocess
    import sys

    code = "import sys, mmbench.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_seed_reproduces_its_run_and_a_named_modality_pattern_drops_that_modality(tmp_path):
    spec = RunSpec("modality-dropout", PROCEDURAL, "missing-0.5-depth", 3,
                   {"epochs": 1, "decoder_channels": [32, 16, 8]})
    first = Runner(tmp_path).run(spec, force=True)
    again = Runner(tmp_path).run(spec, force=True)
    assert first["status"] == again["status"] == "ok"
    assert first["history"] == again["history"] and first["metrics"]["subset_miou"] == again["metrics"]["subset_miou"]
    import numpy as np

    (mask_file,) = (tmp_path / "cache" / "masks").glob("*.npz")
    with np.load(mask_file) as masks:  # rgb always there, depth missing for half the images
        assert masks["train"][:, 0].min() == 1 and masks["train"][:, 1].mean() == 0.5
        assert masks["train"].shape == (72, 2) and masks["test"].shape == (48, 2)


def test_a_last_partial_batch_is_dropped_so_no_batch_of_one_reaches_batchnorm(tmp_path):
    # 72 train images in batches of 71: one step per epoch; a trailing batch of one image would make
    # BatchNorm fail on the 1 x 1 pyramid-pooling map
    spec = RunSpec("joint", PROCEDURAL, "complete", 0, {"epochs": 1, "batch_size": 71, "decoder_channels": [32, 16, 8]})
    result = Runner(tmp_path).run(spec)
    assert result["status"] == "ok", result.get("error")
    assert result["throughput"]["steps"] == 1
