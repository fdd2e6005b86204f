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
