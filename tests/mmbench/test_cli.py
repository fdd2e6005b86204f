"""The command line: names are checked, errors are one clear line, the commands work end to end."""
import subprocess
import sys
from pathlib import Path

import pytest

from mmbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


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


# ---------------------------------------------------------------- all: settings checked before any run
@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "epochs=abc"], "epochs='abc' is not allowed: expected an integer >= 1"),
        (["--set", "epochs=0"], "epochs=0 is not allowed"),
        (["--set", "epochs=2.5"], "epochs=2.5 is not allowed"),
        (["--set", "lr=-1"], "lr=-1 is not allowed: expected a number > 0"),
        (["--set", "fusion=bogus"], "fusion='bogus' is not allowed: expected one of concat, film, gated, sum"),
        (["--methods", "arl", "--set", "weights=x"], "weights='x' of method 'arl' is not allowed"),
        (["--patterns", "missing-0.5-zzz"], "drops modality 'zzz', which this data set does not have"),
    ],
)
def test_all_rejects_bad_settings_before_any_run_and_stores_nothing(extra, message, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["all", "--suite", "quick", "--out", str(out), "--no-table"] + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--set", "epochs=0"], "epochs=0 is not allowed: expected an integer >= 1"),
        (["--set", "fusion=bogus"], "fusion='bogus' is not allowed"),
        (["--pattern", "missing-0.5-zzz"], "drops modality 'zzz'"),
    ],
)
def test_run_rejects_bad_settings_and_patterns_and_stores_nothing(extra, message, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["run", "--method", "joint", "--dataset", "synthetic", "--out", str(out)] + extra) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_all_exits_non_zero_and_names_failed_runs(tmp_path, capsys, monkeypatch):
    from mmbench.runner import Runner

    real = Runner._execute

    def fail_unimodal(self, spec, *args, **kwargs):
        if spec.method == "unimodal":
            return {"key": spec.key(), "spec": spec.canonical(), "label": spec.label(), "status": "failed",
                    "error": "RuntimeError: boom"}
        return real(self, spec, *args, **kwargs)

    monkeypatch.setattr(Runner, "_execute", fail_unimodal)
    argv = ["all", "--suite", "quick", "--methods", "joint,unimodal", "--patterns", "complete", "--workers", "1",
            "--out", str(tmp_path), "--no-table"]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "failed: unimodal/synthetic/complete/seed0[epochs=2]: RuntimeError: boom" in captured.out
    assert "1 runs failed or diverged" in captured.err


# ---------------------------------------------------------------- all: one rule for the filters
def _dry(extra, tmp_path, capsys):
    code = main(["all", "--suite", "quick", "--dry-run", "--out", str(tmp_path)] + extra)
    return code, capsys.readouterr()


def test_filters_choose_exact_names_even_outside_the_suite(tmp_path, capsys):
    code, cap = _dry(["--methods", "joint", "--datasets", "mfeat", "--seeds", "5"], tmp_path, capsys)
    assert code == 0
    assert "1 methods x 1 data sets x 2 patterns x 1 seeds = 2 runs" in cap.out
    assert "todo joint/mfeat/complete/seed5[epochs=2]" in cap.out


def test_filters_choose_a_user_data_set_not_in_the_suite(tmp_path, capsys):
    import numpy as np

    from mmbench.data import register_arrays

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 60)
    register_arrays("cli-filter-toy", {"a": rng.normal(size=(60, 3)), "b": rng.normal(size=(60, 2))}, y,
                    split="random", overwrite=True)
    code, cap = _dry(["--methods", "joint", "--datasets", "cli-filter-toy"], tmp_path, capsys)
    assert code == 0 and "= 2 runs" in cap.out and "todo joint/cli-filter-toy/complete/seed0" in cap.out


def test_wildcard_filters_pick_from_the_suite(tmp_path, capsys):
    code, cap = _dry(["--methods", "joint*", "--patterns", "miss*"], tmp_path, capsys)
    assert code == 0 and "4 methods x 1 data sets x 1 patterns x 1 seeds = 4 runs" in cap.out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--patterns", "nosuch"], "unknown pattern 'nosuch'"),
        (["--datasets", "mfeat*"], "--datasets 'mfeat*' selects no data set: a wildcard picks from the suite's data "
                                   "sets (synthetic)"),
        (["--datasets", "user:NAME"], "unknown data set 'user:NAME'"),
        (["--methods", "zzz*"], "--methods 'zzz*' selects no method"),
        (["--seeds", "abc"], "--seeds 'abc': expected a comma list of integers >= 0"),
        (["--seeds", "-1"], "--seeds '-1'"),
        (["--shard=-1/4"], "--shard '-1/4': need 0 <= i < n"),
    ],
)
def test_filter_selecting_nothing_is_an_error_that_says_why(extra, message, tmp_path, capsys):
    code, cap = _dry(extra, tmp_path, capsys)
    assert code == 2 and message in cap.err and "Traceback" not in cap.err


def test_shard_with_negative_index_is_rejected(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["all", "--suite", "quick", "--dry-run", "--shard", "-1/4", "--out", str(tmp_path)])
    assert exit_.value.code == 2 and "--shard" in capsys.readouterr().err


def test_all_help_states_the_filter_rule(capsys):
    with pytest.raises(SystemExit):
        main(["all", "--help"])
    assert "Filters choose, the suite gives the defaults" in " ".join(capsys.readouterr().out.split())


# ---------------------------------------------------------------- pipes and small options
def test_dry_run_into_a_closed_pipe_ends_without_a_traceback(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    shell = f"{sys.executable} -m mmbench all --dry-run --out {tmp_path} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, env=env, cwd=ROOT)
    assert proc.stdout.startswith("suite default:") and len(proc.stdout.splitlines()) == 1
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141


@pytest.mark.parametrize("option", ["--rounds", "--epochs"])
def test_steps_rejects_zero_rounds_and_epochs(option, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["steps", option, "0"])
    assert exit_.value.code == 2 and f"argument {option}: must be an integer >= 1, got '0'" in capsys.readouterr().err


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
    for argv, default in ((["run", "--help"], "(default: results/scratch/run"), (["table", "--help"], "(default: results)")):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert default in out
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "(default: complete)" in capsys.readouterr().out


def test_run_shows_progress_per_epoch(tmp_path, capsys):
    argv = ["run", "--method", "joint", "--dataset", "synthetic", "--set", "epochs=2", "--out", str(tmp_path)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "epoch 1/2" in captured.err and "epoch 2/2" in captured.err and "stored in" in captured.out
    assert "train loss" in captured.err and "val " in captured.err  # each epoch line says how training goes
    fresh_subsets = next(ln for ln in captured.out.splitlines() if ln.strip().startswith("subsets"))
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "epoch" not in captured.err and "cached in" in captured.out
    cached_subsets = next(ln for ln in captured.out.splitlines() if ln.strip().startswith("subsets"))
    assert cached_subsets == fresh_subsets  # one order, cached or fresh
