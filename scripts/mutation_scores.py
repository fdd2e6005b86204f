"""Mutation scores per file with mutmut (``pip install -e ".[mutation]"``), for the methods' step, loss
and coefficient code.

Each *group* is scored in its own scratch copy of the repository (the packages, ``tests/`` and the
pytest configuration, with a ``[tool.mutmut]`` section added): mutmut mutates only the group's
files, runs the group's test files once to learn which tests reach which function, then runs, for
each mutant of the selected functions, only those tests (forked from a server that has imported
torch once). ``raise`` statements (error-message text) and ``log_coefficients`` trace calls are not
mutated: neither is part of a method's definition. The C++ extension is off (``MMBENCH_NO_CPP=1``):
the statistics run on the eager reference path. One torch thread per mutant (``OMP_NUM_THREADS=1``):
mutmut runs one mutant per core, and its timeout is a CPU-time limit that spinning threads would use up.

    python scripts/mutation_scores.py --list                 # the groups
    python scripts/mutation_scores.py arl coefficients       # score these groups
    python scripts/mutation_scores.py --all --out docs/mutation-scores.md

The table written by ``--out`` merges every group's last results (``--work``, default
``/tmp/mmbench-mutmut``) with the reasons for the surviving mutants recorded as equivalent in
``docs/mutation-equivalents.yaml`` (keyed by mutant name, which is only stable for a given source:
re-check those reasons after the file changes).
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "docs" / "mutation-equivalents.yaml"
SKIP_LINES = [r"^\s*raise\b", r"log_coefficients\("]


@dataclass
class Group:
    name: str
    files: List[str]
    tests: List[str]
    functions: List[str]  # fnmatch patterns on mutmut's mutant names (step, loss, coefficient code)


def _fn(module: str, *names: str) -> List[str]:
    """Patterns for module-level functions and methods called ``names`` in ``module``."""
    return [f"{module}.*{n}__mutmut_*" for n in names]


def _baseline(name: str, *functions: str) -> Group:
    """Group of ``baselines/<name>.py`` scored by ``tests/baselines/test_<name>.py``."""
    return Group(name, [f"baselines/{name}.py"], [f"tests/baselines/test_{name}.py"], _fn(f"baselines.{name}", *functions))


GROUPS: Dict[str, Group] = {g.name: g for g in [
    Group("arl", ["mmbench/methods/arl.py"], ["tests/mmbench/methods/test_arl.py"],
          _fn("mmbench.methods.arl", "warmup_end", "ce_weights", "scale_gradient", "active", "coefficients",
              "compute_loss")),
    Group("dgl", ["mmbench/methods/dgl.py"], ["tests/mmbench/methods/test_dgl.py"],
          _fn("mmbench.methods.dgl", "_linear_detached", "dgl_logits", "compute_loss")),
    Group("dmrnet", ["mmbench/methods/dmrnet.py"], ["tests/mmbench/methods/test_dmrnet.py"],
          _fn("mmbench.methods.dmrnet", "hcr_weights", "hcr_active", "compute_loss", "_record_variance",
              "on_epoch_end", "select_weak_modality", "select_epochs")),
    Group("mmanet", ["mmbench/methods/mmanet.py"], ["tests/mmbench/methods/test_mmanet.py"],
          _fn("mmbench.methods.mmanet", "label_histogram", "histogram_kl", "begin_epoch", "mining_epoch",
              "compute_loss", "on_epoch_end", "mine", "select_weak_set")),
    Group("osmd", ["mmbench/methods/osmd.py"], ["tests/mmbench/methods/test_osmd.py"],
          _fn("mmbench.methods.osmd", "available_features", "fuse", "restore", "compute_loss", "predict")),
    Group("coefficients", ["kernels/coefficients.py"], ["tests/kernels/test_coefficients.py"],
          _fn("kernels.coefficients", "arl_coefficients", "_shares", "ogm_ge_coefficients", "_log_ratio")),
    # Baselines: the functions that define each method's step, loss and coefficients (not build-time
    # validation, history logging or evaluation helpers shared with every method).
    *[_baseline(name, *funcs) for name, *funcs in [
        ("ogm_ge", "masked_log_mean_exp", "unimodal_logits_ogm", "modulated_tensors", "coefficients",
         "compute_loss", "modulate", "after_backward"),
        ("pmr", "prototype_logits", "class_means", "slower_weights", "compute_prototypes", "pmr_terms",
         "compute_loss"),
        ("agm", "decomposition_matrix", "subset_logits", "responses", "ratios", "coefficients", "compute_loss",
         "after_backward"),
        ("mmpareto", "pareto_weights", "combine", "losses", "gradients", "training_step"),
        ("mla", "owm_update", "project_gradient", "gate_weights", "gate_weights_released", "encode_one",
         "modality_step", "training_step", "fusion_weights", "predict"),
        ("greedy", "gates", "learning_speed", "bdr", "schedule_update", "excited", "training_step", "predict"),
        ("modality_dropout", "drop_modalities", "compute_loss"),
        ("shaspec", "nonempty_subsets", "draw_subsets", "features", "align_loss", "spec_loss", "compute_loss",
         "predict"),
    ]],
]}


def scratch_copy(dest: Path, group: Group) -> None:
    """The packages, the tests and pyproject.toml with the group's ``[tool.mutmut]`` section."""
    if dest.exists():
        shutil.rmtree(dest)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutations")
    for d in ("mmbench", "kernels", "baselines", "tests"):
        shutil.copytree(ROOT / d, dest / d, ignore=ignore)
    write_config(dest, group)


def write_config(dest: Path, group: Group) -> None:
    """``dest/pyproject.toml``: the project's, plus the group's ``[tool.mutmut]`` section."""
    config = {
        "source_paths": ["mmbench/", "kernels/", "baselines/"],
        "only_mutate": group.files,
        "pytest_add_cli_args_test_selection": group.tests,
        "pytest_add_cli_args": ["-p", "no:cacheprovider"],
        "process_isolation": "forkserver",  # torch in the main process is not fork-safe
        "do_not_mutate_patterns": SKIP_LINES,
        # mutmut stops a mutant after (estimated test time + 1 s) x this many seconds of wall time
        # (twice that of CPU time). Its default, 15, ends 0.5 s test selections after 22 s: too short
        # at low CPU priority on a loaded 2-core machine, where a forked mutant's first test (lazy
        # imports, the toy data) takes that long; the timeouts were inconclusive, not hangs.
        "timeout_multiplier": 60.0,
    }
    lines = ["", "[tool.mutmut]"] + [f"{k} = {json.dumps(v)}" for k, v in config.items()]
    (dest / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text() + "\n".join(lines) + "\n")


def run_group(group: Group, work: Path) -> float:
    """Score ``group`` in ``work/<name>``; returns the wall time in seconds."""
    dest = work / group.name
    scratch_copy(dest, group)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the scratch copy's mutants/ must win
    env.update(MMBENCH_NO_CPP="1", MMBENCH_CACHE=str(dest / ".cache"), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    with open(dest / "mutmut-output.txt", "w") as log:
        proc = subprocess.run([sys.executable, "-m", "mutmut", "run", *group.functions], cwd=dest, env=env,
                              stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    (dest / "wall-seconds.txt").write_text(f"{seconds:.0f}\n")
    if proc.returncode != 0:
        print(f"{group.name}: mutmut exited with {proc.returncode}; see {dest / 'mutmut-output.txt'}", file=sys.stderr)
    return seconds


def rescore(group: Group, work: Path) -> float:
    """Re-run only the group's survivors (and timeouts) of its last run, against the current tests
    (after new tests were written to kill them): the tests are copied into the scratch copy again and
    mutmut's statistics (which test reaches which function) are recomputed."""
    dest = work / group.name
    res = results(group, work)
    if res is None:
        raise SystemExit(f"{group.name}: no previous run in {dest}")
    # Timeouts too: mutmut's limit is on CPU time, which a loaded machine inflates (idle OpenMP threads
    # spin), so a timeout is inconclusive and worth a second try.
    survivors = [k for k, v in res["mutants"].items() if v in ("survived", "timeout")]
    if not survivors:
        return 0.0
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutations")
    for target in (dest / "tests", dest / "mutants" / "tests"):
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(ROOT / "tests", target, ignore=ignore)
    (dest / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    write_config(dest, group)  # the current settings (a changed timeout re-classifies timeouts)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(MMBENCH_NO_CPP="1", MMBENCH_CACHE=str(dest / ".cache"), PYTHONDONTWRITEBYTECODE="1", OMP_NUM_THREADS="1")
    start = time.perf_counter()
    with open(dest / "mutmut-rescore.txt", "w") as log:
        subprocess.run([sys.executable, "-m", "mutmut", "run", *survivors], cwd=dest, env=env, stdout=log,
                       stderr=subprocess.STDOUT)
    return time.perf_counter() - start


STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", None: "not checked"}


def results(group: Group, work: Path) -> Optional[dict]:
    """``{"mutants": {name: status}, "seconds": wall}`` of the group's last run, selected functions only."""
    dest = work / group.name
    out: Dict[str, str] = {}
    for f in group.files:
        meta = dest / "mutants" / (f + ".meta")
        if not meta.exists():
            return None
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in codes.items():
            if any(fnmatch.fnmatch(name, p) for p in group.functions):
                out[name] = STATUS.get(code, "suspicious")
    wall = dest / "wall-seconds.txt"
    return {"mutants": out, "seconds": float(wall.read_text()) if wall.exists() else None}


def show(group: Group, work: Path, name: str) -> str:
    """The changed lines of one mutant, read from mutmut's mutants/ copy (original vs mutated function)."""
    import difflib
    import re

    func, _, _ = name.rsplit(".", 1)[-1].partition("__mutmut_")
    for f in group.files:
        src = (work / group.name / "mutants" / f).read_text()

        def body(fname: str) -> List[str]:
            m = re.search(r"^( {4})?def " + re.escape(fname) + r"\(.*?(?=^( {4})?def |\Z)", src, re.S | re.M)
            if not m:
                return []
            # The body ends at the first line indented no deeper than the def (mutmut's registry
            # lines and decorators follow a module-level function).
            indent = len(m.group(1) or "")
            lines = m.group(0).splitlines()[1:]
            end = next((i for i, l in enumerate(lines) if l.strip() and not l.lstrip().startswith(")")
                        and len(l) - len(l.lstrip()) <= indent), len(lines))
            return [l for l in lines[:end] if l.strip()]

        orig, mut = body(func + "__mutmut_orig"), body(name.rsplit(".", 1)[-1])
        if mut:
            diff = difflib.unified_diff(orig, mut, lineterm="", n=0)
            return "\n".join(l[0] + " " + l[1:].strip() for l in diff if l[:1] in "+-" and not l.startswith(("+++", "---")))
    return ""


def function_of(name: str) -> str:
    """``mmbench.methods.arl.xǁARLǁcompute_loss__mutmut_3`` -> ``ARL.compute_loss``."""
    base = name.rsplit(".", 1)[-1].split("__mutmut_")[0]
    return base.lstrip("x").strip("ǁ").replace("ǁ", ".").lstrip("_") if "ǁ" in base else base[2:]


def table(groups: Sequence[Group], work: Path) -> str:
    """The markdown report: per file, per function, and every survivor with its diff and reason."""
    explained = (yaml.safe_load(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else None) or {}
    equivalent = explained.get("equivalent") or {}
    new_kill = explained.get("killed_by_new_test") or {}
    head = ["| file | functions scored | mutants | checked | killed | killed by a new test | equivalent | survived | "
            "timeout | score | wall |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    rows, details = [], []
    for g in groups:
        res = results(g, work)
        if res is None:
            continue
        statuses = res["mutants"]
        n = len(statuses)
        count = {s: sum(v == s for v in statuses.values()) for s in set(statuses.values())}
        checked = n - count.get("not checked", 0)
        survivors = sorted(k for k, v in statuses.items() if v in ("survived", "no tests"))
        eq = [s for s in survivors if s in equivalent]
        late = [s for s in survivors if s in new_kill]
        verified = [s for s in late if new_kill[s].get("verified by")]
        # Score: mutmut's kills plus the new-test kills that were verified (re-run); an unverified one
        # (explained by a new test that checks the term, not re-run) still counts against the score.
        killed = count.get("killed", 0) + len(verified)
        # A timeout (mutmut's CPU limit) is inconclusive on a loaded machine: neither killed nor survived.
        scored = count.get("killed", 0) + len(survivors) - len(eq)
        score = f"{100 * killed / scored:.0f}%" if scored else "-"
        funcs = sorted({function_of(k) for k in statuses})
        wall = f"{res['seconds'] / 60:.0f} min" if res["seconds"] else "stopped"
        rows.append(f"| `{', '.join(g.files)}` | {', '.join(funcs)} | {n} | {checked} | {count.get('killed', 0)} | "
                    f"{len(late)} ({len(verified)} re-run) | {len(eq)} | {len(survivors) - len(eq) - len(late)} | {count.get('timeout', 0)} | "
                    f"{score} | {wall} |")
        if survivors:
            details.append(f"\n### `{', '.join(g.files)}`\n")
            for s in survivors:
                if s in new_kill:
                    k = new_kill[s]
                    why = f"killed by the new test `{k['test']}`" + (
                        f" (verified: curated entry `{k['verified by']}`)" if k.get("verified by")
                        else f" ({k.get('note', 'not re-run')})")
                else:
                    why = "equivalent: " + equivalent[s] if s in equivalent else "**not yet explained**"
                diff = show(g, work, s).replace("\n", " / ")
                details.append(f"- `{s.rsplit('.', 1)[-1]}` ({statuses[s]}): `{diff}`: {why}")
    return "\n".join(head + rows) + "\n" + "\n".join(details) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("groups", nargs="*", help=f"groups to score: {', '.join(GROUPS)}")
    ap.add_argument("--all", action="store_true", help="score every group")
    ap.add_argument("--list", action="store_true", help="list the groups and exit")
    ap.add_argument("--report-only", action="store_true", help="no run: only write the table of the last results")
    ap.add_argument("--rescore", action="store_true",
                    help="re-run only the survivors and timeouts of the last run, current tests")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mmbench-mutmut"))
    ap.add_argument("--out", type=Path, help="write the markdown table here")
    args = ap.parse_args(argv)
    if args.list:
        for g in GROUPS.values():
            print(f"{g.name:14s} {' '.join(g.files)}  <-  {' '.join(g.tests)}")
        return 0
    names = list(GROUPS) if args.all else args.groups
    unknown = [n for n in names if n not in GROUPS]
    if unknown or not names:
        ap.error(f"unknown or no groups: {unknown}; choose from {list(GROUPS)}")
    args.work.mkdir(parents=True, exist_ok=True)
    if args.rescore:
        for n in names:
            print(f"{n}: rescored survivors in {rescore(GROUPS[n], args.work):.0f} s", flush=True)
    elif not args.report_only:
        for n in names:
            print(f"{n}: {run_group(GROUPS[n], args.work):.0f} s", flush=True)
    text = table([GROUPS[n] for n in names] if not args.out else list(GROUPS.values()), args.work)
    print(text)
    if args.out:
        # A hand-written "## Status" section (what was scored, where, what is left) is kept.
        old = args.out.read_text() if args.out.exists() else ""
        start, end = old.find("## Status"), old.find("\n| file |")
        status = old[start:end].rstrip() + "\n\n" if 0 <= start < end else ""
        args.out.write_text("# Mutation scores\n\nGenerated by `python scripts/mutation_scores.py`; see "
                            "[mutation testing](mutation-testing.md).\n\n" + status + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
