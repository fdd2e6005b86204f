"""A new user's first commands: help and listings at once, defaults that keep results/ clean, data
checked before anything runs, help texts that say what they mean."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mmbench.cli import main

ROOT = Path(__file__).resolve().parents[2]


def _cli(args, env_extra=None, cwd=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mmbench", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=300)


def test_help_imports_nothing_heavy():
    """``--help`` and a command's help without torch, pandas or the registries (the CPU cost of --help)."""
    code = ("import sys; from mmbench.cli import main\n"
            "for argv in (['--help'], ['run', '--help'], ['all', '--help'], ['table', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "heavy = sorted(m for m in ('torch', 'pandas', 'matplotlib', 'scipy') if m in sys.modules)\n"
            "print('HEAVY', heavy, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "HEAVY []" in out.stderr, out.stderr[-2000:]


def test_table_builds_without_torch(tmp_path):
    """``table`` reads stored results only: rebuilding the tables (the data registry's groups included,
    which load every preparer) never imports torch (1.5 s of its CPU time)."""
    from fake_results import write_fake_results

    write_fake_results(tmp_path)
    code = ("import sys; from mmbench.report import write_tables\n"
            f"write_tables({str(tmp_path)!r})\n"
            "from mmbench.data.registry import dataset_group; dataset_group('watch')\n"
            "print('TORCH', 'torch' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}, cwd=str(tmp_path))
    assert "TORCH False" in out.stderr, out.stderr[-2000:]


def test_list_and_show_answer_from_the_memo_the_second_time(tmp_path):
    env = {"MMBENCH_CACHE": str(tmp_path / "cache")}
    first = _cli(["list", "methods"], env)
    assert first.returncode == 0 and "joint" in first.stdout
    memo = list((tmp_path / "cache" / "cli").glob("*.txt"))
    assert len(memo) == 1
    start = time.perf_counter()
    second = _cli(["list", "methods"], env)
    assert second.stdout == first.stdout
    # no torch import behind it: the answer comes well within the second a torch import alone takes here
    assert time.perf_counter() - start < 10
    assert _cli(["show", "no-such-method"], env).returncode == 2  # errors are answered, never stored
    assert len(list((tmp_path / "cache" / "cli").glob("*.txt"))) == 1


def test_memo_key_follows_sources_environment_and_prepared_data(tmp_path, monkeypatch):
    from mmbench import cli_memo

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path))
    base = cli_memo.memo_key(["list"])
    assert cli_memo.memo_key(["list"]) == base and cli_memo.memo_key(["list", "methods"]) != base
    (tmp_path / "crema-d-abc123").mkdir()  # a prepared data set appears
    assert cli_memo.memo_key(["list"]) != base
    with_data = cli_memo.memo_key(["list"])
    (tmp_path / "cli").mkdir()  # the memo itself and the extension builds are not data
    (tmp_path / "ext").mkdir()
    assert cli_memo.memo_key(["list"]) == with_data
    monkeypatch.setenv("MMBENCH_DATA", str(tmp_path / "user"))
    assert cli_memo.memo_key(["list"]) != with_data
    source = Path(cli_memo.__file__)
    before = cli_memo.memo_key(["list"])
    stat = source.stat()
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # an edited source file
    try:
        assert cli_memo.memo_key(["list"]) != before
    finally:
        os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_help_texts_have_no_empty_defaults_and_prepare_lists_the_data_sets(capsys):
    for argv in (["run", "--help"], ["list", "--help"], ["steps", "--help"], ["bench", "--help"], ["all", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "(default: None)" not in out and "(default: everything) (default" not in out, argv
        assert "(default: [])" not in out and "(default: False)" not in out, argv
    with pytest.raises(SystemExit):
        main(["steps", "--help"])
    steps = capsys.readouterr().out.split("options:")[1]
    assert "--out OUT" in steps and "STEPTIME.md" in steps.split("--out OUT")[1].split("--scale")[0]
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    bench = capsys.readouterr().out.split("options:")[1]
    assert "-v, --verbose" in bench and "print" in bench.split("--verbose")[1][:200]
    with pytest.raises(SystemExit):
        main(["prepare", "--help"])
    assert "crema-d" in capsys.readouterr().out


def test_other_suites_and_run_default_outside_results(tmp_path, capsys):
    """Only the default suite writes into results/ by default; quick goes to results/scratch/quick, named."""
    assert main(["all", "--suite", "quick", "--methods", "joint", "--datasets", "synthetic", "--seeds", "0",
                 "--patterns", "complete", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "writing to " + os.path.join("results", "scratch", "quick") in out


def test_all_without_prepared_data_is_one_error_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "empty-cache"))
    out = tmp_path / "out"
    result = _cli(["all", "--suite", "audio-visual", "--out", str(out)], {"MMBENCH_CACHE": str(tmp_path / "empty")})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "crema-d" in result.stderr and "prepare" in result.stderr and "nothing was run or written" in result.stderr
    assert result.stderr.count("error:") == 1 and "Traceback" not in result.stderr
    assert not out.exists()
