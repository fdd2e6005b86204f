"""Workers die with their parent: SIGKILL of the parent ends a child that armed die_with_parent."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The middle process starts a child that arms die_with_parent and then sleeps; the middle prints the
# child's pid and sleeps too, until the test SIGKILLs it.
MIDDLE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(__import__("os").getpid())])
print(child.pid, flush=True)
time.sleep(120)
"""
CHILD = """
import sys, time
from mmbench.parent_death import die_with_parent
die_with_parent(int(sys.argv[1]))
print("armed", flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_child_ends_when_its_parent_is_killed():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    middle = subprocess.Popen([sys.executable, "-c", MIDDLE, CHILD], env=env, stdout=subprocess.PIPE, text=True)
    child = int(middle.stdout.readline())
    try:
        time.sleep(1.0)  # the child arms its signal (it imports only ctypes)
        assert _alive(child)
        middle.send_signal(signal.SIGKILL)
        middle.wait()
        deadline = time.time() + 10
        while _alive(child) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive(child), "the child outlived its parent"
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)


def test_a_child_whose_parent_is_already_gone_exits_at_once():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    code = "from mmbench.parent_death import die_with_parent; die_with_parent(1 << 22); print('not reached')"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM and "not reached" not in done.stdout
