"""Fault injection from the command line (issue 21): each fault is repeated against ``python -m mmbench``
as a user would meet it, with tiny data and one-epoch runs. Marked ``faults`` (``pytest -m faults``).

Disk full and read-only output use small tmpfs mounts; where the machine does not allow mounting
(not root, no CAP_SYS_ADMIN) those tests are skipped with the reason.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[3]
TINY = ["--suite", "quick", "--methods", "joint", "--datasets", "synthetic", "--patterns", "complete"]


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra}


def mmbench(*args, env=None, timeout=180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmbench", *map(str, args)], cwd=ROOT, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


def start(*args, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "mmbench", *map(str, args)], cwd=ROOT, env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def group_alive(pgid: int) -> list:
    listed = subprocess.run(["ps", "-ww", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in listed.splitlines()]
    return [" ".join(r) for r in rows if len(r) >= 3 and int(r[1]) == pgid and not r[2].startswith("Z")]


def one_line_error(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run ended with ``code`` and a single ``error:`` line holding every needle; no traceback."""
    detail = f"rc {proc.returncode}\nstdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == code, detail
    assert "Traceback" not in proc.stderr, detail
    # (a progress bar may end the line before it without a newline)
    errors = [line[line.index("error:"):] for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and all(n in errors[0] for n in needles), detail
    return errors[0]


@pytest.fixture
def mount(tmp_path):
    """``mount(size, ro=False) -> folder``: a tmpfs of ``size``; unmounted at the end."""
    mounted = []

    def make(size: str, ro: bool = False) -> Path:
        folder = tmp_path / f"mnt{len(mounted)}"
        folder.mkdir()
        opts = f"size={size}" + (",ro" if ro else "")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or 'not permitted'}): needs root "
                        "with CAP_SYS_ADMIN")
        mounted.append(folder)
        return folder

    yield make
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A results folder holding two finished one-epoch runs (seeds 0 and 1)."""
    out = tmp_path_factory.mktemp("base") / "results"
    done = mmbench("all", *TINY, "--seeds", "0,1", "--set", "epochs=1", "--workers", "1", "--no-table", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_forged_and_corrupted_results_are_named_and_retrained(two_runs, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(two_runs, out)
    files = sorted((out / "runs").glob("*.json"), key=lambda p: json.loads(p.read_text())["spec"]["seed"])
    seed0, seed1 = files
    shutil.copy(seed0, seed1)  # seed 0's result under seed 1's name
    forged = out / "runs" / "00000000deadbeef.json"
    forged.write_text('{"status": "ok"}')
    again = mmbench("all", *TINY, "--seeds", "0,1", "--set", "epochs=1", "--workers", "1", "--out", out)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"not trusting {seed1}" in again.stderr and "is not its file name" in again.stderr
    assert "cached 1, ok 1" in again.stdout  # seed 1 trained again, seed 0 kept
    assert json.loads(seed1.read_text())["spec"]["seed"] == 1
    # the header: everything before the first results table ("Which method should I use?" opens the file)
    header = (out / "LEADERBOARD.md").read_text().split("\n## Fused")[0]
    assert "00000000deadbeef.json" in header and "1 result file(s)" in header  # the forgery named, left out
    assert "(2)" in (out / "LEADERBOARD.md").read_text()  # joint's cell: n = 2, not 3


def test_sigkill_of_the_parent_leaves_no_orphaned_workers(tmp_path):
    proc = start("all", *TINY, "--seeds", "0,1", "--set", "epochs=500", "--workers", "2", "--no-table",
                 "--out", tmp_path / "results")
    try:
        deadline = time.time() + 120
        while sum("spawn_main" in p for p in group_alive(proc.pid)) < 2:  # both workers started
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.2)
        time.sleep(2.0)  # into their runs
        proc.kill()  # the parent only, as the OOM killer or `kill -9 <pid>` would
        proc.wait()
        deadline = time.time() + 20
        while group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert group_alive(proc.pid) == [], "workers outlived their parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.parametrize("after", [0.3, 1.5])
def test_ctrl_c_during_start_up_is_a_message(tmp_path, after):
    proc = start("all", *TINY, "--seeds", "0", "--set", "epochs=1", "--out", tmp_path / "results")
    try:
        time.sleep(after)  # imports and argument parsing
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr


def test_read_only_out_is_refused_before_training(mount):
    ro = mount("64k", ro=True)
    start_s = time.time()
    done = mmbench("all", *TINY, "--seeds", "0", "--set", "epochs=50", "--out", ro / "results")
    one_line_error(done, 3, str(ro / "results"), "read-only")
    assert "ok 1" not in done.stdout and time.time() - start_s < 120


def test_out_that_is_a_file_is_one_line(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    done = mmbench("all", *TINY, "--seeds", "0", "--set", "epochs=1", "--out", tmp_path / "results")
    one_line_error(done, 3, str(tmp_path / "results"), "is a file")


def test_disk_full_out_is_one_line_and_leaves_nothing_partial(mount):
    small = mount("64k")
    (small / "filler").write_bytes(b"\0" * (64 * 1024 - 8 * 1024))  # a few KiB left: the probe fits, results do not
    done = mmbench("all", *TINY, "--seeds", "0", "--set", "epochs=1", "--workers", "1", "--out", small / "results")
    one_line_error(done, 3, "No space left on device", str(small / "results"))
    assert not [p.name for p in small.rglob("*") if ".tmp" in p.name], "partial files left"


def test_prepare_into_a_full_cache_is_one_line_with_no_sparse_files_or_orphans(mount, tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

    clips = cremad_clips(speakers=(1001, 1002, 1003), sentences=("DFA",))
    src = tmp_path / "src"
    write_cremad_papers(src, clips, frames=1)
    write_lists(src, clips)
    cache = mount("24k")
    proc = start("prepare", "crema-d", "--src", src, "--workers", "2", "--set", *SMALL_AV, env=_env(MMBENCH_CACHE=str(cache)))
    stdout, stderr = proc.communicate(timeout=180)
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    one_line_error(done, 3, "No space left on device", str(cache))
    assert not list(cache.rglob("*.npy")), "sparse or partial arrays left"
    time.sleep(0.5)
    assert group_alive(proc.pid) == []


def test_sigkill_of_prepare_leaves_no_orphaned_workers(tmp_path):
    sys.path.insert(0, str(ROOT / "tests"))
    from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

    clips = cremad_clips(speakers=(1001, 1002, 1003, 1004), sentences=("DFA", "IEO"))
    src = tmp_path / "src"
    write_cremad_papers(src, clips, frames=1)
    write_lists(src, clips)
    proc = start("prepare", "crema-d", "--src", src, "--workers", "2", "--set", *SMALL_AV,
                 env=_env(MMBENCH_CACHE=str(tmp_path / "cache")))
    try:
        deadline = time.time() + 120
        while sum("spawn_main" in p for p in group_alive(proc.pid)) < 2:  # the pool is up
            if proc.poll() is not None:
                pytest.skip("prepare finished before its workers could be seen")
            assert time.time() < deadline
            time.sleep(0.05)
        proc.kill()
        proc.wait()
        deadline = time.time() + 20
        while group_alive(proc.pid) and time.time() < deadline:
            time.sleep(0.2)
        assert group_alive(proc.pid) == [], "prepare workers (or the resource tracker) outlived their parent"
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_poisoned_prepared_cache_is_refused_and_trains_normally_once_restored(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tests"))
    from prepare_fixtures import SMALL_AV, cremad_clips, write_cremad_papers, write_lists

    clips = cremad_clips(speakers=(1001, 1002, 1003), sentences=("DFA",))
    src = tmp_path / "src"
    write_cremad_papers(src, clips, frames=1)
    write_lists(src, clips)
    from mmbench.prepare.run import prepare

    monkeypatch.setenv("MMBENCH_CACHE", str(tmp_path / "cache"))
    env = _env()
    prepare("crema-d", src, dict(x.split("=") for x in SMALL_AV), workers=1, show_progress=False)  # in-process: one start less
    folder = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir() and p.name.startswith("crema-d-"))
    visual = next(p for p in folder.glob("*.npy") if p.stem not in ("labels", "status", "audio"))
    original = visual.read_bytes()
    arr = np.load(visual, mmap_mode="r+")
    arr[:] = np.nan  # same size, same header
    arr.flush()
    del arr
    run = ["run", "--method", "joint", "--dataset", "crema-d", "--set", "epochs=1", "--out", tmp_path / "results"]
    poisoned = mmbench(*run, env=env)
    one_line_error(poisoned, 2, str(folder), "changed since prepare", "--force")
    assert not list((tmp_path / "results").glob("runs/*.json")), "a run on the poisoned cache was stored"
    visual.write_bytes(original)  # restored from a backup
    restored = mmbench(*run, env=env)
    assert restored.returncode == 0 and ": ok (stored" in restored.stdout, restored.stderr[-3000:]


def test_an_edit_that_keeps_size_and_mtime_is_not_served_from_the_cache(tmp_path):
    data = tmp_path / "data" / "d"
    data.mkdir(parents=True)
    rng = np.random.default_rng(0)
    np.save(data / "labels.npy", np.arange(60) % 3)
    np.save(data / "a.npy", rng.normal(size=(60, 4)).astype(np.float32))
    np.save(data / "b.npy", rng.normal(size=(60, 3)).astype(np.float32))
    old = time.time() - 100
    for p in data.iterdir():
        os.utime(p, (old, old))  # older than the hash cache's racy window: its hash is cached
    env = _env(MMBENCH_DATA=str(tmp_path / "data"), MMBENCH_CACHE=str(tmp_path / "cache"))
    args = ["run", "--method", "joint", "--dataset", "user:d", "--set", "epochs=1", "--out", tmp_path / "results"]
    first = mmbench(*args, env=env)
    assert first.returncode == 0 and "stored in" in first.stdout, first.stderr[-2000:]
    stat = (data / "a.npy").stat()
    np.save(data / "a.npy", rng.normal(size=(60, 4)).astype(np.float32))  # new content, same size
    os.utime(data / "a.npy", ns=(stat.st_atime_ns, stat.st_mtime_ns))  # touch -r / cp -p / rsync -t
    second = mmbench(*args, env=env)
    assert second.returncode == 0 and "stored in" in second.stdout and "cached" not in second.stdout, second.stdout
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 2


def test_two_all_on_one_out_never_train_a_run_twice(tmp_path):
    args = ["all", *TINY, "--seeds", "0,1,2", "--set", "epochs=40", "--workers", "1", "--no-table",
            "--out", tmp_path / "results"]
    first, second = start(*args), start(*args)
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outs
    trained = 0
    for stdout, _ in outs:
        summary = next(line for line in stdout.splitlines() if line.startswith("finished in"))
        trained += int(summary.split("ok ")[1].split(",")[0])
    assert trained == 3, outs  # each run trained by exactly one of the two
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 3
