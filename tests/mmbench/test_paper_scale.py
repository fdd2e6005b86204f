"""Paper scale end to end: every method trains one epoch on CREMA-D-shaped random data through the CLI,
with two ResNet-18s and the DataLoader path; the paper-scale step-time table is written."""
import json

import pandas as pd
import pytest

from mmbench.cli import main
from mmbench.methods import list_methods
from mmbench.results_store import ResultsStore


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("paper")  # shared: teachers (joint, unimodal) are trained once


@pytest.mark.slow
@pytest.mark.parametrize("name", list_methods())
def test_every_method_trains_an_epoch_at_crema_d_shapes_through_the_cli(out_dir, name, capsys):
    assert main(["run", "--method", name, "--dataset", "synthetic-av-paper", "--out", str(out_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["status"] == "ok", result.get("error")
    train = result["config"]["train"]
    assert (train["encoder"], train["feature_dim"], train["loader"], train["epochs"]) == ("resnet18", 512, "stream", 1)
    assert result["throughput"]["steps"] >= 1
    assert ResultsStore(out_dir).is_done(result["key"])


def test_steps_scale_paper_writes_the_table_with_the_device(tmp_path, capsys):
    argv = ["steps", "--scale", "paper", "--device", "cpu", "--methods", "joint,arl", "--rounds", "1",
            "--batch", "2", "--steps", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    df = pd.read_csv(tmp_path / "steptime-paper.csv")
    assert set(df.method) == {"joint", "arl"} and (df.device == "cpu").all() and (df.batch == 2).all()
    assert (df.step_ms > 0).all() and (df[df.method == "joint"].ratio == 1.0).all()
    text = (tmp_path / "STEPTIME-paper.md").read_text()
    assert "Device: **cpu**" in text and "257x188" in text and "3x224x224" in text and "| arl" in text
    # ARL has kernels: timed on what auto resolves to and on eager whenever the two differ
    from mmbench.steptime_paper import _auto_providers

    expected = {"eager"} | ({"auto (" + "+".join(_auto_providers("cpu")) + ")"} if _auto_providers("cpu") != ["eager"]
                            else set())
    assert set(df[df.method == "arl"].path) == expected
