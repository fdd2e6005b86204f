"""Ctrl-C during ``all``: a real SIGINT to the process group stops the grid within seconds, cleanly.

The process group is what a terminal signals on Ctrl-C: the main process and its spawned workers.
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start_all(out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    # 300 epochs a run (about a second each here): the grid must still be running when the signal comes
    argv = [sys.executable, "-m", "mmbench", "all", "--suite", "quick", "--out", str(out), "--workers", "2",
            "--no-table", "--set", "epochs=300"]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True,  # its own process group, as a terminal gives a command
                            # and SIGINT at its default, as a terminal gives it (a test runner may ignore it)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_first_result(proc: subprocess.Popen, out: Path, limit: float = 240.0) -> None:
    """Until one run is stored, so the workers are busy with the next ones."""
    deadline = time.time() + limit
    while not list((out / "runs").glob("*.json")):
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "no run finished in time"
        time.sleep(0.2)


def _group_alive(pgid: int) -> list:
    """Processes of the group still running. Zombies are dead: an orphan is reparented to PID 1, which
    in a container may never reap it, so it lingers in the table without running."""
    listed = subprocess.run(["ps", "-e", "-o", "pid=,pgid=,stat=,args="], capture_output=True, text=True).stdout
    rows = [line.split(None, 3) for line in listed.splitlines()]
    return [" ".join(row) for row in rows if len(row) >= 3 and int(row[1]) == pgid and not row[2].startswith("Z")]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
def test_ctrl_c_stops_all_promptly_with_a_summary_and_no_leftovers(tmp_path):
    out = tmp_path / "results"
    proc = _start_all(out)
    try:
        _wait_for_first_result(proc, out)
        os.killpg(proc.pid, signal.SIGINT)
        sent = time.time()
        stdout, stderr = proc.communicate(timeout=30)
        elapsed = time.time() - sent
    finally:
        _stop(proc)
    assert proc.returncode == 130, f"exit {proc.returncode}\nstdout: {stdout[-2000:]}\nstderr: {stderr[-2000:]}"
    assert elapsed < 10, f"took {elapsed:.1f} s to stop"
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    summary = [line for line in stderr.splitlines() if line.startswith("interrupted:")]
    assert len(summary) == 1, stderr
    done = int(summary[0].split()[1])  # "interrupted: <done> of <total> runs done, ..."
    assert done >= 1 and done == len(list((out / "runs").glob("*.json"))), summary[0]
    from mmbench.suite import load_suite

    total = len(load_suite("quick").specs())  # every method x the quick suite's patterns
    assert f" of {total} runs done" in summary[0] and f"{total - done} not done" in summary[0]
    assert f"resume with: python -m mmbench all --suite quick --out {out}" in summary[0]
    time.sleep(1.0)  # the kernel reaps the terminated workers
    assert _group_alive(proc.pid) == [], "processes left behind"
    # Only finished runs were stored, every one complete and readable; nothing half-written.
    import json

    assert not [p.name for p in out.rglob("*") if ".tmp" in p.name], "temporary files of the stopped runs left"
    for path in (out / "runs").glob("*"):
        assert path.suffix == ".json", f"stray file {path.name}"
        assert json.loads(path.read_text())["status"] in ("ok", "failed", "diverged")


def test_interrupted_sequential_grid_stores_no_partial_result(tmp_path, monkeypatch):
    """KeyboardInterrupt inside a run (workers=1 runs in-process) is not stored as a failed run."""
    import mmbench.grid as grid
    from mmbench.config import RunSpec
    from mmbench.engine import trainer

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("mmbench.runner.fit_and_test", interrupted)
    assert trainer  # the real trainer stays importable; only the runner's reference is replaced
    specs = [RunSpec("joint", "synthetic", "complete", s, {"epochs": 1}) for s in range(2)]
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(grid.GridInterrupted) as err:
            grid.run_grid(specs, str(tmp_path), workers=1, show_progress=False)
        assert signal.getsignal(signal.SIGINT) is grid._exit_now  # a second Ctrl-C exits at once
    finally:
        signal.signal(signal.SIGINT, previous)  # run_grid arms "second Ctrl-C exits"; undo it here
    assert err.value.done == 0 and err.value.total == 2
    assert not list(tmp_path.glob("runs/*"))


CHILD = """
import os, sys, time
from mmbench import grid, runner

grid._init_worker()  # the pool worker's signal set-up

class SlowRunner:  # stands for a run that is writing its result when the parent ends it
    def __init__(self, store):
        self.root = str(store.root)

    def run(self, spec):
        from mmbench.results_store import write_text_atomic

        def stalled_fsync(fd):
            print("writing", flush=True)
            time.sleep(60)

        os.fsync = stalled_fsync
        write_text_atomic(os.path.join(self.root, "result.json"), "{}")

runner.Runner = SlowRunner
from mmbench.config import RunSpec
grid._work(RunSpec("joint", "synthetic", "complete", 0, {"epochs": 1}), sys.argv[1])
print("not reached", flush=True)
"""


def test_worker_ended_mid_write_leaves_no_temporary_file(tmp_path):
    """SIGTERM (how the parent ends a run in flight) unwinds the run, removing its temporary file."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)], cwd=ROOT, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "writing"
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # the write is under way
        child.send_signal(signal.SIGTERM)
        stdout, stderr = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signal.SIGTERM and "Traceback" not in stderr, stderr
    # nothing but the run's (empty, reusable) lock file: no temporary or partial result
    left = [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.startswith("cache/locks/run-") for p in left) and "not reached" not in stdout, left


def test_resource_tracker_starts_without_its_leak_warning():
    """After a double Ctrl-C (os._exit) the tracker cleans up silently: no cut-off warning (failure 8).
    In a fresh process, so that the tracker is the one the grid starts."""
    # the tracker's /proc environ is empty while its exec is under way: wait until its command line
    # shows the tracker (exec done), then read its environment
    code = ("import os, time; from multiprocessing import resource_tracker; import mmbench.grid as g; "
            "g._quiet_resource_tracker(); print(os.environ.get('PYTHONWARNINGS')); "
            "pid = resource_tracker._resource_tracker._pid; deadline = time.time() + 30\n"
            "while 'resource_tracker' not in open(f'/proc/{pid}/cmdline').read() and time.time() < deadline:\n"
            "    time.sleep(0.01)\n"
            "print(open(f'/proc/{pid}/environ').read().split(chr(0)))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=120).stdout.splitlines()
    assert out[0] == "None"  # this process (and the workers it starts) keep their warnings
    assert "PYTHONWARNINGS=ignore:resource_tracker:UserWarning" in out[1]


def test_ctrl_c_after_the_last_run_is_stored_finishes_normally(tmp_path, monkeypatch):
    """Nothing is lost or left to resume: the grid returns its counts (and `all` writes the tables)
    instead of reporting an interruption (issue 21, failure 8)."""
    import mmbench.grid as grid
    from mmbench.config import RunSpec
    from mmbench.results_store import ResultsStore
    from mmbench.run_key import identity_key, run_identity

    specs = [RunSpec("joint", "synthetic", "complete", s, {"epochs": 1}) for s in range(2)]

    def store_then_interrupt(self, spec, **kwargs):
        identity = run_identity(spec)
        result = {"key": identity_key(identity), "identity": identity, "spec": spec.canonical(), "status": "ok",
                  "label": spec.label()}
        self.store.save(result)
        if spec.seed == 1:  # Ctrl-C right after the last result was written
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr("mmbench.runner.Runner.run", store_then_interrupt)
    previous = signal.getsignal(signal.SIGINT)
    try:
        counts = grid.run_grid(specs, str(tmp_path), workers=1, show_progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert counts["ok"] == 1 and all(ResultsStore(tmp_path).is_done(s.key()) for s in specs)


def test_tune_gc_raises_the_threshold_and_freezes_the_imports():
    import gc

    from mmbench.grid import tune_gc

    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold()[0] == 50_000 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
