"""The curated mutation suite: one-line bugs that break a method's defining property, each of which
a named test selection must catch.

``curated.yaml`` (beside this file) lists the entries::

    - id: arl-entropy-dependence-swapped        # unique
      file: mmbench/methods/arl.py              # path from the repository root
      original: "global_mean(stats.entropy_mean[1:]), global_mean(stats.abs_logit_mean[1:]),"
      replacement: "global_mean(stats.abs_logit_mean[1:]), global_mean(stats.entropy_mean[1:]),"
      breaks: "q must come from the entropies and d from the mean |logit| ..."
      tests: [tests/mmbench/methods/test_arl.py]   # paths or node ids
      k: "entropy_for_q"                          # optional pytest -k expression
      issue: true                                 # optional: one of the 17 bugs of issue 23

``original`` must occur exactly once in ``file`` (else the entry is *stale*: the code drifted and
the entry must be refreshed). Each entry is applied to a scratch copy of the repository (the
package folders and ``tests/``, one copy per worker) and its tests run there in a subprocess with
``PYTHONPATH`` set to the copy; the entry is *caught* when pytest reports a failing test (exit
code 1). Exit code 0 (every selected test passed) is a *survivor*; 5 (no test selected) or any
other code is a broken entry.

Command line (from the repository root)::

    python tests/mutations/curated.py --check          # list stale entries (fast, no tests run)
    python tests/mutations/curated.py                  # run every entry, 2 workers
    python tests/mutations/curated.py --only ID [ID ...] --workers 1 -v
"""
from __future__ import annotations

import argparse
import difflib
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from queue import Queue
from typing import Dict, List, Optional, Sequence, Tuple

import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SUITE = HERE / "curated.yaml"
# What a scratch copy holds: the packages the tests import, the tests (without this folder) and the
# pytest configuration.
COPY_DIRS = ("mmbench", "kernels", "baselines", "tests")
COPY_FILES = ("pyproject.toml",)
REQUIRED = ("id", "file", "original", "replacement", "breaks", "tests")
TIMEOUT_S = 300  # per entry


@dataclass
class Entry:
    id: str
    file: str
    original: str
    replacement: str
    breaks: str
    tests: List[str]
    k: Optional[str] = None
    issue: bool = False

    def pytest_args(self) -> List[str]:
        return list(self.tests) + (["-k", self.k] if self.k else [])


@dataclass
class Outcome:
    entry: Entry
    status: str  # "caught" | "survived" | "error" | "stale"
    returncode: Optional[int]
    seconds: float
    output: str = field(repr=False, default="")


def load(path: Path = SUITE) -> List[Entry]:
    """The entries of ``path``; a malformed entry (missing field, duplicate id) is a ``ValueError``."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a list of entries")
    entries, seen = [], set()
    for i, item in enumerate(raw):
        # every field non-empty, except the replacement (an empty one deletes the snippet)
        missing = [k for k in REQUIRED if item.get(k) is None or (k != "replacement" and not item.get(k))]
        if missing:
            raise ValueError(f"{path}: entry {i} ({item.get('id', '?')}) lacks {missing}")
        unknown = set(item) - set(REQUIRED) - {"k", "issue"}
        if unknown:
            raise ValueError(f"{path}: entry {item['id']} has unknown fields {sorted(unknown)}")
        if item["id"] in seen:
            raise ValueError(f"{path}: duplicate id {item['id']}")
        if item["original"] == item["replacement"]:
            raise ValueError(f"{path}: entry {item['id']} replaces its snippet with itself")
        seen.add(item["id"])
        tests = item["tests"] if isinstance(item["tests"], list) else [item["tests"]]
        entries.append(Entry(item["id"], item["file"], item["original"], item["replacement"], item["breaks"],
                             [str(t) for t in tests], item.get("k"), bool(item.get("issue", False))))
    return entries


def stale(entries: Sequence[Entry], root: Path = ROOT) -> Dict[str, str]:
    """``{id: reason}`` for every entry whose snippet is not found exactly once (or whose file or test
    file is gone): those entries must be refreshed against the current code."""
    bad = {}
    for e in entries:
        path = root / e.file
        if not path.is_file():
            bad[e.id] = f"{e.file} does not exist"
            continue
        text = path.read_text(encoding="utf-8")
        n = text.count(e.original)
        if n != 1:
            bad[e.id] = f"original snippet found {n} times in {e.file} (expected exactly once): {e.original!r}"
            if n == 0:  # help the refresh: the most similar line of the file now
                line, share = closest_line(e.original, text)
                bad[e.id] += f"; closest line now ({share:.0%} of the snippet): {line!r}" if share >= 0.6 else ""
            continue
        for t in e.tests:
            if not (root / t.split("::")[0]).is_file():
                bad[e.id] = f"test file {t.split('::')[0]} does not exist"
    return bad


def closest_line(snippet: str, text: str) -> Tuple[str, float]:
    """The line of ``text`` sharing the most characters (in order) with ``snippet``, and that share."""
    best, share = "", 0.0
    for line in text.splitlines():
        blocks = difflib.SequenceMatcher(None, snippet, line, autojunk=False).get_matching_blocks()
        s = sum(b.size for b in blocks) / max(1, len(snippet))
        if s > share:
            best, share = line.strip(), s
    return best, share


def make_scratch(root: Path, dest: Path) -> Path:
    """Copy the packages, tests and pytest configuration of ``root`` into ``dest`` (no caches)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutations")
    for d in COPY_DIRS:
        shutil.copytree(root / d, dest / d, ignore=ignore)
    for f in COPY_FILES:
        shutil.copy2(root / f, dest / f)
    return dest


def _pytest_cmd(entry: Entry) -> List[str]:
    return ["-q", "-x", "-p", "no:cacheprovider", "--no-header", *entry.pytest_args()]


def _scratch_env(scratch: Path) -> Dict[str, str]:
    # MMBENCH_NO_CPP: the methods' statistics run on the eager reference path (what the mutations of
    # kernels' references target); building or loading the C++ extension in every entry would cost
    # more than the tests themselves (the extension is checked against eager by its own tests).
    return {**os.environ, "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1", "MMBENCH_NO_CPP": "1",
            "MMBENCH_CACHE": str(scratch / ".cache")}


class Worker:
    """One scratch copy and the way its entries are run.

    With ``os.fork`` (Linux, macOS) a small server process imports the heavy third-party libraries
    (torch, scipy, pandas, pytest: most of a test run's start-up time) once; each entry is a fork of
    it that imports the (mutated) project from the scratch copy and runs ``pytest.main``. The server
    never imports the project, so every fork sees the file as mutated. Elsewhere each entry is a
    plain ``python -m pytest`` subprocess.
    """

    def __init__(self, scratch: Path, timeout: float = TIMEOUT_S, fork: Optional[bool] = None):
        self.scratch, self.timeout = scratch, timeout
        self.fork = hasattr(os, "fork") if fork is None else fork
        self.server = None
        if self.fork:
            self.server = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--serve", str(timeout)],
                cwd=scratch, env=_scratch_env(scratch), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )

    def pytest(self, entry: Entry) -> Tuple[Optional[int], str]:
        if self.server is None:
            cmd = [sys.executable, "-m", "pytest", *_pytest_cmd(entry)]
            try:
                proc = subprocess.run(cmd, cwd=self.scratch, env=_scratch_env(self.scratch), capture_output=True,
                                      text=True, timeout=self.timeout)
            except subprocess.TimeoutExpired as exc:
                return None, f"timed out after {self.timeout} s\n{exc.stdout or ''}"
            return proc.returncode, proc.stdout + proc.stderr
        log = self.scratch / ".pytest-output.txt"
        self.server.stdin.write(json.dumps({"args": _pytest_cmd(entry), "log": str(log)}) + "\n")
        self.server.stdin.flush()
        reply = self.server.stdout.readline()
        if not reply:
            raise RuntimeError(f"mutation server for {self.scratch} died")
        rc = json.loads(reply)["rc"]
        out = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return rc, out if rc is not None else f"timed out after {self.timeout} s\n{out}"

    def close(self) -> None:
        if self.server is not None:
            self.server.stdin.close()
            self.server.wait(timeout=30)


def serve(timeout: float) -> None:
    """The fork server (``--serve``): one JSON request per line on stdin, one JSON reply per line."""
    import torch  # noqa: F401  the heavy imports, shared by every fork

    if not torch.cuda.is_available():  # as tests/conftest.py: before triton is first imported
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import pytest
    import scipy.stats  # noqa: F401
    import triton  # noqa: F401

    scratch = os.getcwd()
    sys.path.insert(0, scratch)
    for line in sys.stdin:
        req = json.loads(line)
        pid = os.fork()
        if pid == 0:  # child: run the tests, never return into the server loop
            code = 3
            try:
                fd = os.open(req["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.dup2(fd, 1)
                os.dup2(fd, 2)
                code = int(pytest.main(req["args"]))
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        deadline, rc = time.monotonic() + timeout, None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        sys.stdout.write(json.dumps({"rc": rc}) + "\n")
        sys.stdout.flush()


def run_entry(entry: Entry, worker: Worker) -> Outcome:
    """Apply ``entry`` in the worker's scratch copy, run its tests, restore the file."""
    path = worker.scratch / entry.file
    text = path.read_text(encoding="utf-8")
    if text.count(entry.original) != 1:
        return Outcome(entry, "stale", None, 0.0, f"original found {text.count(entry.original)} times")
    start = time.perf_counter()
    try:
        path.write_text(text.replace(entry.original, entry.replacement), encoding="utf-8")
        rc, out = worker.pytest(entry)
    finally:
        path.write_text(text, encoding="utf-8")
    status = {0: "survived", 1: "caught"}.get(rc, "error")
    return Outcome(entry, status, rc, time.perf_counter() - start, out)


def run_all(entries: Sequence[Entry], root: Path = ROOT, workers: int = 2, log=None,
            fork: Optional[bool] = None) -> List[Outcome]:
    """Run every entry on ``workers`` scratch copies; outcomes in the order of ``entries``."""
    with tempfile.TemporaryDirectory(prefix="mmbench-mutations-") as tmp:
        pool: Queue = Queue()
        started = []
        try:
            for w in range(max(1, workers)):
                worker = Worker(make_scratch(root, Path(tmp) / f"w{w}"), fork=fork)
                started.append(worker)
                pool.put(worker)
            lock = threading.Lock()

            def one(entry: Entry) -> Outcome:
                worker = pool.get()
                try:
                    outcome = run_entry(entry, worker)
                finally:
                    pool.put(worker)
                if log:
                    with lock:
                        log(f"{outcome.status:8s} {outcome.seconds:6.1f}s  {entry.id}")
                return outcome

            with ThreadPoolExecutor(max_workers=max(1, workers)) as ex:
                return list(ex.map(one, entries))
        finally:
            for worker in started:
                worker.close()


def report(outcomes: Sequence[Outcome], tail: int = 3000) -> str:
    """A failure message: every entry that was not caught, with the end of its pytest output."""
    lines = []
    for o in outcomes:
        if o.status != "caught":
            lines.append(f"[{o.status}] {o.entry.id} ({o.entry.file}; rc={o.returncode}): {o.entry.breaks}")
            lines.append(f"    tests: {' '.join(o.entry.pytest_args())}")
            lines.append("    " + o.output[-tail:].replace("\n", "\n    "))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only list stale entries (snippet not found exactly once)")
    ap.add_argument("--only", nargs="+", metavar="ID", help="run these entries only")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-v", "--verbose", action="store_true", help="print the pytest output of entries not caught")
    ap.add_argument("--no-fork", action="store_true", help="one plain pytest subprocess per entry")
    ap.add_argument("--serve", type=float, metavar="TIMEOUT", help=argparse.SUPPRESS)  # internal: the fork server
    args = ap.parse_args(argv)
    if args.serve is not None:
        serve(args.serve)
        return 0
    entries = load()
    if args.only:
        unknown = set(args.only) - {e.id for e in entries}
        if unknown:
            ap.error(f"unknown ids: {sorted(unknown)}")
        entries = [e for e in entries if e.id in args.only]
    bad = stale(entries)
    for eid, why in bad.items():
        print(f"STALE {eid}: {why}")
    if args.check:
        print(f"{len(entries)} entries, {len(bad)} stale")
        return 1 if bad else 0
    runnable = [e for e in entries if e.id not in bad]
    start = time.perf_counter()
    outcomes = run_all(runnable, workers=args.workers, log=print, fork=False if args.no_fork else None)
    caught = sum(o.status == "caught" for o in outcomes)
    print(f"{caught}/{len(outcomes)} caught, {len(bad)} stale, {time.perf_counter() - start:.0f} s with {args.workers} workers")
    if args.verbose:
        print(report(outcomes))
    return 0 if caught == len(outcomes) and not bad else 1


if __name__ == "__main__":
    sys.exit(main())
