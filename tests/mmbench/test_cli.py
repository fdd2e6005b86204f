"""The command line: names are checked, errors are one clear line, the commands work end to end."""
import subprocess
import sys

import pytest

from mmbench.cli import main


def test_list_commands(capsys):
    assert main(["list", "methods"]) == 0
    out = capsys.readouterr().out
    assert "joint" in out and "modality-dropout" in out
    assert main(["list", "patterns"]) == 0
    assert "missing-<eta>" in capsys.readouterr().out
    assert main(["list", "datasets", "mfeat*"]) == 0
    assert "mfeat-pix-mor" in capsys.readouterr().out
    assert main(["list", "suites"]) == 0
    assert "default" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--method", "jiont", "--dataset", "synthetic"], "unknown method 'jiont'"),
        (["run", "--method", "joint", "--dataset", "mfeat-pix-mro"], "mfeat-pix-mro"),
        (["run", "--method", "joint", "--dataset", "synthetic", "--pattern", "half"], "unknown pattern 'half'"),
        (["run", "--method", "joint", "--dataset", "synthetic", "--set", "lrr=1"], "unknown setting 'lrr'"),
        (["all", "--suite", "nope"], "neither a bundled suite"),
    ],
)
def test_bad_names_give_one_clear_line(argv, message, capsys, tmp_path):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_then_cached_then_table(tmp_path, capsys):
    argv = ["run", "--method", "joint", "--dataset", "synthetic", "--set", "epochs=1", "--out", str(tmp_path)]
    assert main(argv) == 0
    assert "test acc" in capsys.readouterr().out
    assert main(argv) == 0  # from the cache
    assert main(["table", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "LEADERBOARD.md").exists()


def test_all_dry_run_lists_grid(tmp_path, capsys):
    assert main(["all", "--suite", "quick", "--methods", "joint,unimodal", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "= 4 runs" in out and "todo joint/synthetic/complete/seed0[epochs=2]" in out


def test_module_entry_point():
    proc = subprocess.run([sys.executable, "-m", "mmbench", "list", "patterns"], capture_output=True, text=True)
    assert proc.returncode == 0 and "complete" in proc.stdout


def test_bench_passes_its_options_to_the_kernel_benchmark(tmp_path, capsys):
    """`python -m mmbench bench --quick --ops ... --out ...` (options first) reaches the benchmark."""
    assert main(["bench", "--quick", "--ops", "pme_sample_kl", "--modes", "fwd", "--device", "cpu",
                 "--out", str(tmp_path)]) == 0
    csv = (tmp_path / "kernels.csv").read_text()
    assert "pme_sample_kl" in csv and "eager" in csv
    assert (tmp_path / "KERNELS.md").exists()
    assert "[1/1] pme_sample_kl" in capsys.readouterr().err  # progress, one line per op


def test_list_without_argument_lists_everything(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("# methods", "# datasets", "# patterns", "# suites"):
        assert kind in out
    assert "arl" in out and "watch" in out and "missing-0.5" in out and "default" in out


def test_show_prints_hyperparameters_and_per_dataset_defaults(capsys):
    from mmbench.methods import get_method

    assert main(["show", "arl", "--dataset", "watch"]) == 0
    out = capsys.readouterr().out
    for key, value in get_method("arl").hparams.items():
        assert any(line.split() == [key, str(value)] for line in out.splitlines()), key
    assert "on data sets matching 'watch'" in out and "resolved for watch" in out
    assert any(line.split() == ["epochs", "12"] for line in out.split("resolved for watch")[1].splitlines())
    assert main(["show", "no-such-method"]) == 2


def test_help_texts_name_defaults_and_every_command(capsys):
    from mmbench.cli import build_parser

    top = build_parser().format_help()
    for command in ("all", "run", "list", "show", "table", "steps", "bench"):
        assert command in top.split("positional arguments")[1]
    assert "steps" in top.split("\n\n")[1]  # the description line names it too
    for argv in (["run", "--help"], ["table", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "(default: results)" in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "(default: complete)" in capsys.readouterr().out


def test_run_shows_progress_per_epoch(tmp_path, capsys):
    argv = ["run", "--method", "joint", "--dataset", "synthetic", "--set", "epochs=2", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "stored in" in captured.out
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "epoch" not in captured.err and "cached in" in captured.out
