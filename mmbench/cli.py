"""``python -m mmbench <command>``: all, run, list, show, table, steps, bench, publish, prepare, verify, simulate,
build-ext.

One argparse parser, one class per subcommand (torchtune's layout). Answering at once: this module
imports nothing heavy (torch, pandas, the registries); each command imports what it needs when it
runs, and only the chosen command's options are built (``bench`` and ``prepare`` read theirs from
the kernel benchmark and the preparer registry).
"""
from __future__ import annotations

import abc
import argparse
import json
import os
import sys
import time
from typing import List, Optional


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1 (zero rounds or epochs would measure nothing)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return value


class DefaultsFormatter(argparse.HelpFormatter):
    """argparse's "(default: X)" where it informs: not on required options, not for None or False
    defaults, not when the help already names its default."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or action.required or default is None or default is False or default == []
                or default == argparse.SUPPRESS or not action.option_strings and action.nargs not in ("?", "*")):
            return text
        return f"{text} (default: %(default)s)"


class Command(abc.ABC):
    """One subcommand: its parser arguments and what it does."""

    name = ""
    help = ""
    formatter_class = DefaultsFormatter

    @classmethod
    def create(cls, sub, chosen: bool = True) -> None:
        """Add the subcommand; its options only when ``chosen`` (the command being run, or help on it)."""
        parser = sub.add_parser(cls.name, help=cls.help, description=cls.description() if chosen else cls.help,
                                formatter_class=cls.formatter_class)
        if chosen:
            cls.add_arguments(parser)
        parser.set_defaults(func=cls.execute)

    @classmethod
    def description(cls) -> str:
        return cls.help

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:  # noqa: B027 - optional hook
        """Add this command's options to ``parser`` (none by default)."""

    @staticmethod
    @abc.abstractmethod
    def execute(args) -> int:
        """Run the command; return the process exit status."""


class All(Command):
    name = "all"
    help = ("run a suite (default: every method on every embedded data set, complete + missing-0.5 (+ natural "
            "where a data set has gaps), 5 seeds) and write the tables")

    @classmethod
    def description(cls) -> str:
        from mmbench.suite import FILTER_RULE

        return (f"{cls.help}. {FILTER_RULE} Every data set of the grid is loaded before any run starts: "
                "one that is not prepared is an error naming it, and nothing is written.")

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--suite", default="default", help="bundled suite name or YAML path (default: default)")
        p.add_argument("--out", help="results folder (default: results for the default suite, "
                                     "results/scratch/SUITE for any other)")
        p.add_argument("--workers", type=int, default=2, help="parallel runs (default: 2)")
        picks = "(comma list; wildcards pick from the suite's)"
        p.add_argument("--methods", help=f"these methods instead of the suite's {picks}")
        p.add_argument("--datasets", help=f"these data sets instead of the suite's {picks}")
        p.add_argument("--patterns", help=f"these patterns instead of the suite's {picks}")
        p.add_argument("--seeds", help="these seeds instead of the suite's (comma list of integers)")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override a setting for every run")
        p.add_argument("--shard", help="run only shard i of n (i/n), for several machines sharing --out")
        p.add_argument("--executor", default="local", choices=["local", "dask"], help="where runs execute (default: local processes)")
        p.add_argument("--scheduler", help="Dask scheduler address for --executor dask (default: a local cluster)")
        p.add_argument("--dry-run", action="store_true", help="list the runs and what is cached, run nothing")
        p.add_argument("--no-table", action="store_true", help="do not rebuild the tables at the end")

    @staticmethod
    def execute(args) -> int:
        from mmbench.config import parse_overrides
        from mmbench.data_check import check_datasets
        from mmbench.grid import check_specs, parse_shard, run_grid, select_shard
        from mmbench.output_dirs import announce, suite_out
        from mmbench.results_store import ResultsStore
        from mmbench.suite import apply_filters, load_suite

        suite = apply_filters(load_suite(args.suite), args.methods, args.datasets, args.patterns, args.seeds)
        suite.overrides.update(parse_overrides(args.set))
        specs = select_shard(suite.specs(), parse_shard(args.shard))
        check_specs(specs)  # every setting and pattern of every run: an error before anything runs
        check_datasets(s.dataset for s in specs)  # every data set loads, or one error listing what to prepare
        explicit, args.out = args.out is not None, args.out or suite_out(suite.name)
        store = ResultsStore(args.out)
        done = sum(store.is_done(s.key()) for s in specs)
        if not explicit:
            print(announce(args.out, explicit))
        print(f"suite {suite.name}: {len(suite.methods)} methods x {len(suite.datasets)} data sets x "
              f"{suite.patterns_text()} x {len(suite.seeds)} seeds = {len(specs)} runs, {done} cached")
        if args.dry_run:
            for s in specs:
                print(("done " if store.is_done(s.key()) else "todo ") + s.label())
            return 0
        __import__("mmbench.env_errors", fromlist=["check_writable"]).check_writable(args.out)  # before training
        from mmbench.data.registry import dataset_task

        if done < len(specs) and any(dataset_task(s.dataset) == "classification" for s in specs):  # segmentation: none
            _build_extension_visibly(suite.overrides.get("device", "cpu"))  # once, before the workers start
        start = time.time()
        counts = run_grid(specs, args.out, workers=args.workers, executor=args.executor, scheduler=args.scheduler)
        print(f"finished in {time.time() - start:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        if not args.no_table:
            from mmbench.report import write_tables

            paths = write_tables(args.out, progress=_status_line)
            print(f"tables: {paths['md']}")
        bad = counts.get("failed", 0) + counts.get("diverged", 0)
        if bad:
            print(f"error: {bad} runs failed or diverged (listed above); failed runs are retried on the next "
                  "call, diverged ones are final results (a non-finite training loss is what that method did)",
                  file=sys.stderr)
            return 1
        return 0


class Run(Command):
    name = "run"
    help = "run (or fetch from the cache) one method on one data set"

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--method", required=True, help="a method name (python -m mmbench list methods)")
        p.add_argument("--dataset", required=True,
                       help="a data set name (python -m mmbench list datasets; "
                            "user:NAME for a folder in $MMBENCH_DATA)")
        p.add_argument("--pattern", default="complete",
                       help="missing-modality pattern (python -m mmbench list patterns)")
        p.add_argument("--seed", type=int, default=0, help="run seed (initialisation, batches, masks)")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="engine settings or method hyper-parameters (python -m mmbench show METHOD lists them)")
        p.add_argument("--out",
                       help="results folder (default: results/scratch/run, outside the committed results); a run "
                            "with --set is its own leaderboard row there, never mixed into the default cells")
        p.add_argument("--force", action="store_true", help="rerun even if cached")
        p.add_argument("--json", action="store_true", help="print the whole result as JSON")
        p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines on stderr")

    @staticmethod
    def execute(args) -> int:
        from mmbench.config import RunSpec, parse_overrides, resolve
        from mmbench.data import load_dataset
        from mmbench.grid import check_specs
        from mmbench.methods import get_method
        from mmbench.output_dirs import announce, run_out
        from mmbench.patterns import get_pattern
        from mmbench.data.registry import dataset_task
        from mmbench.runner import Runner

        if dataset_task(args.dataset) == "segmentation":  # the segmentation path: mmbench/segmentation/cli_run.py
            from mmbench.segmentation.cli_run import execute

            return execute(args)
        # Check names up front: a typo is an error, not a "failed" run in the cache.
        get_method(args.method)
        load_dataset(args.dataset)
        get_pattern(args.pattern)
        from mmbench.engine import distributed

        spec = RunSpec(args.method, args.dataset, args.pattern, args.seed, parse_overrides(args.set))
        check_specs([spec])  # unknown or bad settings, a pattern's modality: an error now, not a failed run
        train, _ = resolve(spec, get_method(args.method))
        explicit, args.out = args.out is not None, args.out or run_out()
        runner = Runner(args.out)
        cached = not args.force and runner.store.is_done(spec.key())
        if not cached:
            __import__("mmbench.env_errors", fromlist=["check_writable"]).check_writable(args.out)  # before training
        epochs = int(train["epochs"])
        # Under torchrun (WORLD_SIZE > 1): one run across the processes; rank 0 writes and prints.
        dist_info = distributed.init_from_env(train["device"])
        quiet = args.quiet or not dist_info.is_main

        def progress(epoch: int, record: dict) -> None:
            print(f"  {spec.label()}: epoch {epoch + 1}/{epochs}  train loss {record['loss']:.4f}  "
                  f"val {record['val']:.4f}", file=sys.stderr, flush=True)

        if not cached and not quiet:
            if not explicit:
                print(announce(args.out, explicit), file=sys.stderr, flush=True)
            _build_extension_visibly(train.get("device", "cpu"))  # its own step, never inside a timed run
            print(f"training {spec.label()} ({epochs} epoch{'s' if epochs != 1 else ''})", file=sys.stderr, flush=True)
        try:
            result = runner.run(spec, force=args.force, progress=None if quiet else progress)
        finally:
            distributed.shutdown()
        if not dist_info.is_main:
            return 0 if result["status"] == "ok" else 1
        where = runner.store.run_path(result["key"])
        if args.json:
            print(json.dumps(result, indent=1, default=str))
            return 0 if result["status"] == "ok" else 1
        print(f"{spec.label()}: {result['status']} ({'cached' if cached else 'stored'} in {where})")
        if result["status"] != "ok":
            print(result.get("error", ""))
            return 1
        m, t = result["metrics"], result["throughput"]
        print(f"  test acc {m['test_acc']:.4f}  macro-F1 {m['test_f1']:.4f}  (best epoch {m['best_epoch']}, val {m['val_selection']:.4f})")
        # one order, cached or fresh (a stored result's keys come back sorted): fewest modalities first
        print("  unimodal " + "  ".join(f"{k} {v:.4f}" for k, v in sorted(m["unimodal_acc"].items())))
        print("  subsets  " + "  ".join(f"{k} {m['subset_acc'][k]:.4f}" for k in _subset_order(m["subset_acc"])))
        for kind, per_subset in m.get("extra", {}).items():  # a data set's extra metrics (anti-spoofing rates)
            for subset, values in per_subset.items():
                print(f"  {kind} {subset}: " + "  ".join(f"{k} {v:.4f}" for k, v in values.items()))
        if "masked_test_acc" in m:
            print(f"  masked test acc {m['masked_test_acc']:.4f}")
        print(f"  {t['train_samples_per_s']:.0f} samples/s, {t['step_ms']:.2f} ms/step, peak {t['peak_mem_mb']:.2f} MB ({t['mem_kind']})")
        return 0


class List_(Command):
    name = "list"
    help = "list methods, data sets, patterns and suites (all four without an argument; wildcards allowed)"
    KINDS = ["methods", "datasets", "patterns", "suites"]

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("what", nargs="?", choices=cls.KINDS, help="what to list (default: everything)")
        p.add_argument("pattern", nargs="?", default="*",
                       help="names to show (fnmatch wildcards, comma list; default: all)")

    @staticmethod
    def execute(args) -> int:
        if getattr(args, "memo_argv", None) is not None:  # a shell command line: answer from the memo
            from mmbench.cli_memo import memoized

            return memoized(args.memo_argv,
                            lambda: List_.execute(argparse.Namespace(what=args.what, pattern=args.pattern)))
        if args.what is None:
            for kind in List_.KINDS:
                print(f"# {kind}")
                List_.execute(argparse.Namespace(what=kind, pattern=args.pattern))
                print()
            print("python -m mmbench show METHOD prints a method's hyper-parameters and defaults.")
            return 0
        if args.what == "methods":
            from mmbench.methods import METHODS, list_methods

            for name in list_methods(args.pattern):
                print(f"{name:24s} {METHODS.describe(name)}")
        elif args.what == "datasets":
            from mmbench.data import dataset_info, list_datasets

            for name in list_datasets(args.pattern):
                print(f"{name:24s} {dataset_info(name)}")
        elif args.what == "patterns":
            import fnmatch

            from mmbench.patterns import PATTERNS

            for name, pattern in PATTERNS.items():
                if fnmatch.fnmatch(name, args.pattern):
                    print(f"{name:24s} {pattern.description}")
            print(f"{'missing-<eta>[-<eta_test>][-<modality>]':24s} any missing rate, e.g. missing-0.3-0.7 or missing-0.5-pix")
        else:
            from mmbench.suite import available_suites

            print("\n".join(available_suites()))
        return 0


class Show(Command):
    name = "show"
    help = "a method's hyper-parameters with their defaults, per-data-set defaults and engine settings"

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("method", help="a method name (python -m mmbench list methods), or a data set's: its card")
        p.add_argument("--dataset", help="also print the settings a run on this data set resolves to")

    @staticmethod
    def execute(args) -> int:
        if getattr(args, "memo_argv", None) is not None:  # a shell command line: answer from the memo
            from mmbench.cli_memo import memoized

            return memoized(args.memo_argv, lambda: Show.execute(argparse.Namespace(method=args.method,
                                                                                     dataset=args.dataset)))
        from mmbench.data.card import dataset_card, is_dataset
        from mmbench.method_info import describe_method

        print(dataset_card(args.method) if is_dataset(args.method) else describe_method(args.method, args.dataset))
        return 0


class Table(Command):
    name = "table"
    help = "rebuild LEADERBOARD.{md,csv,json} in the results folder from its runs/"

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--out", default="results",
                       help="results folder: reads OUT/runs/*.json, writes OUT/LEADERBOARD.*")

    @staticmethod
    def execute(args) -> int:
        from mmbench.report import write_tables

        paths = write_tables(args.out, progress=_status_line)
        print("\n".join(str(p) for p in paths.values()))
        return 0


class Steps(Command):
    name = "steps"
    help = ("interleaved step-time benchmark of the methods against joint training "
            "(writes STEPTIME.md and steptime.csv into --out)")

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--methods", default="*", help="methods (comma list, wildcards; default: all)")
        p.add_argument("--datasets", default="mfeat-pix-mor,mfeat-fou-zer-mor,watch,synthetic",
                       help="data sets (comma list, wildcards; default: those of the default suite)")
        p.add_argument("--epochs", type=positive_int, default=3, help="epochs per timed training (default 3)")
        p.add_argument("--rounds", type=positive_int, default=None,
                       help="rounds over all methods (default 5; paper scale: 3 on a GPU, 4 on a CPU)")
        p.add_argument("--out", help="folder for STEPTIME.md and steptime.csv (default: results/scratch/steps; "
                                     "--out results replaces the committed measurement)")
        p.add_argument("--scale", default="suite", choices=["suite", "paper"],
                       help="suite: the default suite's data sets (default); paper: one step of every method at "
                            "CREMA-D shapes with ResNet-18s (writes STEPTIME-paper.md / steptime-paper.csv)")
        p.add_argument("--device", default=None, help="paper scale: cpu or cuda (default: cuda if available)")
        p.add_argument("--batch", type=int, default=None, help="paper scale: batch (default 64 on a GPU, 4 on a CPU)")
        p.add_argument("--steps", type=int, default=None, help="paper scale: timed steps per method and round")
        p.add_argument("--threads", type=int, default=None, help="paper scale: CPU threads (default 1)")
        p.add_argument("--amp", default="off", choices=["off", "bf16", "fp16"], help="paper scale: mixed precision")
        p.add_argument("--channels-last", action="store_true", help="paper scale: channels-last memory format")
        p.add_argument("--profile", action="store_true",
                       help="paper scale: print a torch.profiler table of one step of each method instead of timing")
        p.add_argument("--clock", choices=["wall", "cpu"], default=None,
                       help="paper scale on a CPU: time steps by wall clock or process CPU time (default: cpu)")
        p.add_argument("--task", default="classification", choices=["classification", "segmentation"],
                       help="paper scale: segmentation times the segmentation methods at NYUv2 shapes "
                            "(writes STEPTIME-segmentation-paper.md / steptime-segmentation-paper.csv)")

    @staticmethod
    def execute(args) -> int:
        from mmbench.output_dirs import announce, steps_out

        explicit, args.out = args.out is not None, args.out or steps_out(args.scale)
        if not explicit:
            print(announce(args.out, explicit), flush=True)
        if args.scale == "paper" and args.task == "segmentation":
            return Steps.execute_segmentation_paper(args)
        if args.scale == "paper":
            return Steps.execute_paper(args)
        from mmbench.data import list_datasets
        from mmbench.methods import list_methods
        from mmbench.steptime import measure, write

        methods = list_methods(args.methods)
        datasets = list_datasets(args.datasets)
        start = time.time()
        df = measure(methods, datasets, epochs=args.epochs, rounds=args.rounds or 5, out=args.out,
                     progress=lambda line: print(line, flush=True))
        paths = write(df, args.out, args.epochs)
        print(f"finished in {time.time() - start:.0f} s: {paths['md']}, {paths['csv']}")
        return 0


    @staticmethod
    def execute_segmentation_paper(args) -> int:
        import fnmatch

        import torch

        from mmbench.segmentation import steptime_paper as seg

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        scale = seg.SegmentationPaperScale(device=device) if device.startswith("cuda") else seg.cpu_defaults()
        for field, value in (("rounds", args.rounds), ("batch", args.batch), ("steps", args.steps),
                             ("threads", args.threads)):
            if value is not None:
                setattr(scale, field, value)
        scale.device = device
        patterns = args.methods.split(",")
        methods = [m for m in seg.all_methods() if any(fnmatch.fnmatch(m, p) for p in patterns)]
        if not methods:
            raise SystemExit(f"--methods {args.methods!r} matches no segmentation method "
                             f"(known: {', '.join(seg.all_methods())})")
        start = time.time()
        df = seg.measure(methods, scale, progress=lambda line: print(line, flush=True))
        paths = seg.write(df, args.out, scale)
        print(f"finished in {time.time() - start:.0f} s: {paths['md']}, {paths['csv']}")
        return 0

    @staticmethod
    def execute_paper(args) -> int:
        import torch

        from mmbench.methods import list_methods
        from mmbench.steptime_paper import PaperScale, cpu_defaults, measure, write

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        scale = PaperScale(device=device) if device.startswith("cuda") else cpu_defaults()
        for field, value in (("rounds", args.rounds), ("batch", args.batch), ("steps", args.steps),
                             ("threads", args.threads), ("clock", args.clock)):
            if value is not None:
                setattr(scale, field, value)
        scale.device, scale.amp, scale.channels_last = device, args.amp, args.channels_last
        if args.profile:
            from mmbench.steptime_paper import profile_step

            for method in list_methods(args.methods):
                print(f"== {method}\n{profile_step(method, scale)}", flush=True)
            return 0
        start = time.time()
        df = measure(list_methods(args.methods), scale, progress=lambda line: print(line, flush=True))
        paths = write(df, args.out, scale)
        print(f"finished in {time.time() - start:.0f} s: {paths['md']}, {paths['csv']}")
        return 0


class Bench(Command):
    name = "bench"
    help = ("kernel-vs-eager benchmark of the fused ops (writes kernels.csv and KERNELS.md: into results/ for the "
            "full sweep, results/scratch/bench-quick for --quick)")

    @classmethod
    def add_arguments(cls, p):
        from kernels.benchmark.runner import add_arguments

        add_arguments(p)
        p.set_defaults(out=None)  # chosen in execute: the quick sweep never overwrites the committed tables

    @staticmethod
    def execute(args) -> int:
        from kernels.benchmark.runner import execute
        from mmbench.output_dirs import announce, bench_out

        explicit, args.out = args.out is not None, args.out or bench_out(args.quick)
        if not explicit:
            print(announce(args.out, explicit), flush=True)
        return execute(args)


class Publish(Command):
    name = "publish"
    help = "write the static leaderboard site (results/site/index.html, plots, data) from the results folder"

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--out", default="results", help="results folder to read (default: results)")
        p.add_argument("--site", help="where to write the site (default: <out>/site)")

    @staticmethod
    def execute(args) -> int:
        from mmbench.report.site import publish

        start = time.time()
        index = publish(args.out, args.site, progress=lambda line: print(line, flush=True))
        print(f"site written in {time.time() - start:.0f} s: {index} (open it in a browser, or serve the folder)")
        return 0


class Prepare(Command):
    name = "prepare"
    help = "decode and preprocess a data set on disk once into the cache that --dataset NAME reads"

    @classmethod
    def description(cls) -> str:
        from mmbench.prepare import load_builtin
        from mmbench.prepare.base import PREPARERS

        load_builtin()
        return f"{cls.help}. Data sets: {', '.join(sorted(PREPARERS.names()))}."

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("name", help="data set to prepare (one of those listed above)")
        p.add_argument("--src", required=True, help="the data set's folder (or file) as downloaded")
        p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                       help="preprocessing settings (defaults: the papers'); a changed one makes a new cache")
        p.add_argument("--workers", type=int, help="processes (default: every core)")
        p.add_argument("--force", action="store_true", help="redo a complete cache")

    @staticmethod
    def execute(args) -> int:
        from mmbench.config import parse_overrides
        from mmbench.prepare.run import prepare

        try:
            report = prepare(args.name, args.src, parse_overrides(args.set), workers=args.workers, force=args.force)
        except (ImportError, RuntimeError) as err:  # a decoder extra missing, a worker died: the message says what
            print(f"error: {err}", file=sys.stderr)
            return 2
        print("\n".join(report.lines()))
        return 0


class Verify(Command):
    name = "verify"
    help = "recompute the content hash of every prepared cache (or of NAMEs) and report any that changed"

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("names", nargs="*", help="prepared data sets to check (default: every one prepared)")

    @staticmethod
    def execute(args) -> int:
        from mmbench.prepare.integrity import verify_all

        lines = verify_all(args.names or None)
        print("\n".join(lines) or "no prepared caches")
        return 1 if any(line.startswith("damaged") for line in lines) else 0


class Simulate(Command):
    name = "simulate"
    help = ("simulate the benchmark's design, calibrated from the runs, to check the leaderboard's intervals "
            "and best-or-tied marks (writes OUT/SIMULATION.md and .json)")

    @classmethod
    def add_arguments(cls, p):
        p.add_argument("--out", default="results",
                       help="results folder: calibrates from OUT/runs, writes OUT/SIMULATION.*")
        p.add_argument("--quick", action="store_true", help="a few seconds' version (the test suite's size)")

    @staticmethod
    def execute(args) -> int:
        from mmbench.report.simulate import QUICK, Plan, write_simulation

        command = "python -m mmbench simulate" + (" --quick" if args.quick else "")
        paths = write_simulation(args.out, plan=QUICK if args.quick else Plan(), command=command)
        print("\n".join(str(p) for p in paths.values()))
        return 0



class BuildExt(Command):
    name = "build-ext"
    help = ("build the C++ extension of the fused statistics now (otherwise the first run builds it, with a "
            "message); per environment, under $MMBENCH_CACHE/ext")

    @staticmethod
    def execute(args) -> int:
        from kernels import cpp_ext

        start = time.time()
        ok = cpp_ext.build_announced(lambda line: print(line, flush=True))
        if not ok:
            print(f"error: the C++ extension did not build ({cpp_ext.cpp_unavailable_reason()}); "
                  "runs use the eager path", file=sys.stderr)
            return 1
        print(f"ready in {time.time() - start:.0f} s: {cpp_ext.build_directory()}")
        return 0


COMMANDS = [All, Run, List_, Show, Table, Steps, Bench, Publish, Prepare, Verify, Simulate, BuildExt]


def build_parser(argv: Optional[List[str]] = None) -> argparse.ArgumentParser:
    """The parser; with ``argv``, only the command it names gets its options (the others just a help line)."""
    parser = argparse.ArgumentParser(prog="python -m mmbench", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    for command in COMMANDS:
        command.create(sub, chosen=argv is None or command.name == chosen)
    return parser


def _status_line(line: str) -> None:
    """Progress of a long step (reading runs, statistics), on stderr."""
    print(line, file=sys.stderr, flush=True)


def _subset_order(per_subset: dict) -> list:
    """Subset names with the fewest modalities first, then by name (the same order cached or fresh)."""
    return sorted(per_subset, key=lambda name: (name.count("+"), name))


def _build_extension_visibly(device: str) -> None:
    """Build (or load) the C++ extension now, saying so, so its build is a step of its own."""
    if str(device).startswith("cuda"):
        return  # the GPU path is Triton's; the extension is built there only on demand
    from kernels import cpp_ext

    cpp_ext.build_announced(lambda line: print(line, file=sys.stderr, flush=True))


def main(argv: Optional[List[str]] = None) -> int:
    try:  # Ctrl-C from the first line: during imports and argument parsing too
        from mmbench.grid import GridInterrupted

        line = sys.argv[1:] if argv is None else argv
        args = build_parser(line).parse_args(line)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130
    # list/show from a shell answer from a memo of their output (mmbench.cli_memo); in-process calls
    # (tests, scripts that register their own methods) always compute.
    args.memo_argv = line if argv is None else None
    try:
        return args.func(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        # Bad names, bad settings and missing folders: one clear line, not a traceback.
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2
    except GridInterrupted as err:
        print(f"\n{err}; resume with: {_command_line(argv)}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return 130
    except BrokenPipeError:
        # The reader went away (``... | head``): stop quietly. Point stdout at /dev/null so the
        # interpreter's final flush does not raise (and print) the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # 128 + SIGPIPE, as a shell reports a process ended by a closed pipe
    except OSError as err:  # disk full, read-only or a file in the way: one line naming the path and what to do
        print(f"error: {__import__('mmbench.env_errors', fromlist=['describe']).describe(err)}", file=sys.stderr)
        return 3


def _command_line(argv: Optional[List[str]]) -> str:
    """The command as typed (``python -m mmbench all ...``), to print for resuming."""
    import shlex

    return "python -m mmbench " + shlex.join(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
