"""Leaderboard tables: accuracy (mean +- std over seeds), unimodal accuracies, per-subset and
worst-subset accuracy per missing pattern, and throughput relative to joint training.

A cell aggregates only the seeds of runs with identical resolved settings (the ``settings`` hash of
:mod:`mmbench.report.frame`). Each distinct setting is its own row: runs with overrides are labelled
``method [k=v,...]``; if one label still covers several settings (a default or the data changed between
runs), each gets its settings hash appended. Every cell states its n.
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pandas as pd
from tabulate import tabulate

from mmbench.environment import environment, machine_line
from mmbench.report.frame import results_frame
from mmbench.report.imbalance import add_gaps
from mmbench.report.rank_table import rank_section, rank_summary
from mmbench.report.recommend import recommendation
from mmbench.report.simulate import load_summary
from mmbench.report.reported import load_reported, reported_sections
from mmbench.report.traces import all_traces, traces_section
from mmbench.report.significance import GROUP_KEYS as CELL_KEYS
from mmbench.report.significance import STATISTICS_NOTE, attach_statistics, decorate_cell
from mmbench.results_store import ResultsStore, write_json_atomic, write_text_atomic

BASELINE_METHOD = "joint"
REPORTED_FILE = "reported.yaml"  # numbers reported elsewhere, read from the results folder


def _fmt(mean: float, std: float, n: int, scale: float = 100.0, show_n: bool = False) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "-"
    text = f"{mean * scale:.1f} ± {std * scale:.1f}" if n > 1 and not math.isnan(std) else f"{mean * scale:.1f}"
    return f"{text} ({n})" if show_n else text


GROUP_KEYS = ["row"] + CELL_KEYS  # the row label follows from method and overrides


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds of every numeric column, per (row, dataset, pattern, settings).

    ``row`` is made unique per cell: a label covering several settings hashes gets the hash appended.
    """
    ok = df[df.status == "ok"]
    if ok.empty:
        return pd.DataFrame()
    numeric = [c for c in ok.columns if c not in ("seed", "best_epoch", "params") and pd.api.types.is_numeric_dtype(ok[c])]
    grouped = ok.groupby(GROUP_KEYS)[numeric]
    agg = grouped.agg(["mean", "std", "count"])
    agg.columns = [f"{c}|{s}" for c, s in agg.columns]
    agg = agg.reset_index()
    clash = agg.groupby(["row", "dataset", "pattern"]).settings.transform("nunique") > 1
    agg.loc[clash, "row"] = agg.loc[clash, "row"] + " {" + agg.loc[clash, "settings"].str[-6:] + "}"
    return agg


def _cell(row, col: str, show_n: bool = False) -> str:
    text = _fmt(row.get(f"{col}|mean"), row.get(f"{col}|std", float("nan")), int(row.get(f"{col}|count", 0) or 0),
                show_n=show_n)
    return decorate_cell(text, row, col)


def accuracy_table(agg: pd.DataFrame, pattern: str = "complete", metric: str = "test_acc") -> str:
    """Method x data set ``metric`` (%, default the fused test accuracy) under ``pattern``."""
    if agg.empty:
        return "_no finished runs_"
    sub = agg[agg.pattern == pattern]
    if sub.empty:
        return "_no finished runs_"
    datasets = sorted(sub.dataset.unique())
    rows = []
    for label, group in sub.groupby("row"):
        by_ds = {r.dataset: r for _, r in group.iterrows()}
        rows.append([label] + [_cell(by_ds[d], metric, show_n=True) if d in by_ds else "" for d in datasets])
    return tabulate(sorted(rows), headers=["method"] + datasets, tablefmt="github")


def dataset_table(agg: pd.DataFrame, dataset: str, pattern: str) -> str:
    """One data set and pattern: fused acc, F1, unimodal probes, per-subset, mean and worst subset."""
    sub = agg[(agg.dataset == dataset) & (agg.pattern == pattern)]
    if sub.empty:
        return "_no finished runs_"
    # Only this data set's modalities: the frame holds the columns of every data set (NaN elsewhere).
    present = [c[: -len("|mean")] for c in sub.columns if c.endswith("|mean") and sub[c].notna().any()]
    uni = sorted(c for c in present if c.startswith("uni:"))
    diagnostics = sorted(c for c in present if c.startswith(("gap:", "shapley:")))
    diagnostics = linear_probe_columns(present) + diagnostics  # linear probe m, linear-probe gap m
    subsets = [c for c in present if c.startswith("subset:")]
    # the subset of every modality (named in modality order, not the sorted order of `uni`)
    full = next((s for s in subsets if s.count("+") == len(uni) - 1), None) if uni else None
    # the full subset is the fused accuracy already shown
    subsets = sorted((s for s in set(subsets) if s != full), key=lambda s: (-s.count("+"), s))
    masked = "masked_test_acc|mean" in sub.columns and sub["masked_test_acc|mean"].notna().any()
    cols = ["test_acc", "test_f1"] + uni + subsets + ["subset_mean", "subset_worst"] + (["masked_test_acc"] if masked else [])
    headers = (["method", "n", "fused acc", "macro-F1"] + [f"probe {u[4:]}" for u in uni]
               + [f"only {s[7:]}" if "+" not in s else f"subset {s[7:]}" for s in subsets]
               + ["subset mean", "worst subset"] + (["masked test"] if masked else []))
    cols, headers = cols + diagnostics, headers + [diagnostic_header(c) for c in diagnostics]  # gap m, shapley m
    ordered = sub.sort_values("test_acc|mean", ascending=False)
    rows = [[r.row, int(r["test_acc|count"])] + [_cell(r, c) for c in cols] for _, r in ordered.iterrows()]
    return tabulate(rows, headers=headers, tablefmt="github")


def linear_probe_columns(present: Sequence[str]) -> List[str]:
    """The linear-probe columns among ``present``: ``lp:<m>`` then ``lpgap:<m>``, each sorted."""
    return sorted(c for c in present if c.startswith("lp:")) + sorted(c for c in present if c.startswith("lpgap:"))


def diagnostic_header(column: str) -> str:
    """``"lp:a"`` -> ``"linear probe a"``, ``"lpgap:a"`` -> ``"linear-probe gap a"``, else ``"gap a"``."""
    kind, _, modality = column.partition(":")
    names = {"lp": "linear probe", "lpgap": "linear-probe gap", "gap": "shared-head gap"}
    return f"{names.get(kind, kind)} {modality}"


def extra_metric_table(agg: pd.DataFrame, dataset: str, pattern: str, metric: str) -> str:
    """One data set and pattern: an extra metric (``"acer"``, %) for every modality subset, then the mean
    over subsets; rows sorted by that mean, lowest first (the error rates are lower-is-better)."""
    sub = agg[(agg.dataset == dataset) & (agg.pattern == pattern)]
    cols = [c[: -len("|mean")] for c in sub.columns if c.startswith(f"{metric}:") and c.endswith("|mean")
            and sub[c].notna().any()]
    if sub.empty or not cols:
        return "_no finished runs_"
    cols.sort(key=lambda c: (-c.count("+"), c))
    rows = []
    for _, r in sub.iterrows():
        mean = float(pd.Series([r[f"{c}|mean"] for c in cols]).mean())
        rows.append((mean, [r.method] + [_cell(r, c) for c in cols] + [_fmt(mean, float("nan"), 1)]))
    rows.sort(key=lambda pair: pair[0])  # best (lowest) first
    return tabulate([row for _, row in rows], headers=["method"] + [c.split(":", 1)[1] for c in cols] + ["mean"],
                    tablefmt="github")


def throughput_table(agg: pd.DataFrame, pattern: str = "complete") -> str:
    """Step time relative to joint training on the same data set, samples/s and peak memory."""
    columns = ["row", "method", "dataset", "overrides", "step_ms|mean", "step_ms|count", "samples_per_s|mean",
               "peak_mem_mb|mean"]
    # only the columns read here: boolean selections on the whole (wide, many-column) frame dominate otherwise
    sub = agg.loc[agg.pattern == pattern, [c for c in columns if c in agg]]
    if sub.empty:
        return "_no finished runs_"
    rows = []
    baselines = sub[sub.method == BASELINE_METHOD]
    for (label, dataset), group in sub.groupby(["row", "dataset"]):
        r = group.iloc[0]
        # the baseline run with the same overrides (a quick suite's epochs=2 joint for its epochs=2 rows)
        base = baselines[(baselines.dataset == dataset) & (baselines.overrides == r.overrides)]
        rel = r["step_ms|mean"] / base.iloc[0]["step_ms|mean"] if len(base) == 1 else float("nan")
        rows.append([label, dataset, int(r["step_ms|count"]), f"{r['step_ms|mean']:.2f}",
                     f"{rel:.2f}x" if not math.isnan(rel) else "-",
                     f"{r['samples_per_s|mean']:.0f}", f"{r['peak_mem_mb|mean']:.2f}"])
    return tabulate(sorted(rows), headers=["method", "dataset", "n", "step ms (median)", "vs joint", "train samples/s",
                                           "peak mem MB"], tablefmt="github")


def failures_table(df: pd.DataFrame) -> str:
    bad = df[df.status != "ok"]
    if bad.empty:
        return "none"
    rows = [[r.row, r.dataset, r.pattern, r.seed, r.status] for _, r in bad.iterrows()]
    return tabulate(rows, headers=["method", "dataset", "pattern", "seed", "status"], tablefmt="github")


def rank_summaries(agg: pd.DataFrame, cache=None) -> List[Dict]:
    """The across-data-sets comparisons: complete pattern on fused and subset-mean accuracy, every other
    pattern on subset-mean accuracy (the order of the Markdown sections); ``cache``: a
    :class:`~mmbench.report.stats_cache.StatisticsCache` for the Bayesian comparisons."""
    if agg.empty:
        return []
    wanted = [("complete", "test_acc"), ("complete", "subset_mean")] + [
        (p, "subset_mean") for p in sorted(set(agg.pattern) - {"complete"})]
    return [s for s in (rank_summary(agg, p, m, cache=cache) for p, m in wanted) if s]


def build_markdown(df: pd.DataFrame, agg: pd.DataFrame, machine: str, runs_dir: str = "results/runs",
                   unreadable: Sequence[str] = (), reported: Optional[Dict] = None,
                   ranks: Optional[List[Dict]] = None, simulation: Optional[str] = None) -> str:
    """The leaderboard page. ``runs_dir``: the folder named in the header; ``unreadable``: result files
    that could not be read (``"path: why"``), counted and named in the header; ``reported``: numbers
    reported elsewhere (``results/reported.yaml``), shown beside the data sets run here; ``ranks``: the
    across-data-sets comparisons (computed when not given); ``simulation``: the design simulation's
    numbers in one sentence (``results/SIMULATION.json``), quoted in the notes."""
    ranks = rank_summaries(agg) if ranks is None else ranks
    parts: List[str] = ["# mmbench leaderboard", ""]
    if not agg.empty:
        parts += recommendation(agg, ranks)
    seeds = sorted(df.seed.unique().tolist()) if not df.empty else []
    mem_kinds = sorted(df.mem_kind.dropna().unique().tolist()) if "mem_kind" in df else []
    parts += [
        f"Built from {int((df.status == 'ok').sum())} finished runs ({len(df)} in all) in `{runs_dir}/` "
        f"(`python -m mmbench all` writes it, `python -m mmbench table` rebuilds it). Machine: {machine}.",
    ]
    if unreadable:
        parts += ["", f"**{len(unreadable)} result file(s) could not be read or failed validation and are left out:** "
                  + "; ".join(f"`{u}`" for u in unreadable), ""]
    parts += [
        f"Accuracies in %, mean ± std over seeds {seeds}, with the number of runs n of each cell in "
        "parentheses (or an `n` column); model selection on the validation split only; "
        "each test sample scored once. A cell aggregates only runs with identical resolved settings: a run "
        "with overrides is its own row, `method [k=v,...]`, and a `{hash}` suffix separates runs of one "
        "label whose settings or data differ (e.g. made before a default changed). `probe m` = the method's "
        "own unimodal logits for m (shared head, other features zeroed, unless the method has unimodal "
        "heads); `linear probe m` = m's encoder frozen after training with its own linear classifier fitted on "
        "the train split (early-stopped on validation; OGM-GE's and BalanceBenchmark's unimodal accuracy); "
        "`shared-head gap m` / `linear-probe gap m` = the under-optimisation gap (m trained alone minus m in the "
        "multimodal model, same seed) read through the shared-head probe / the linear probe; "
        "`only m` / `subset` = the model evaluated with only those modalities present. Seeds are not "
        "the only spread: the same runs are bit-identical on one machine but can differ on another CPU or "
        "BLAS (README, Reproducibility).",
        "",
        STATISTICS_NOTE + (" " + simulation if simulation else
                           " (`python -m mmbench simulate` checks these statistics on a simulation of the design.)"),
        "",
        "## Fused test accuracy, complete pattern",
        "",
        accuracy_table(agg, "complete"),
        "",
        "## Fused test macro-F1, complete pattern",
        "",
        "Macro-F1 (%, the mean over classes of per-class F1; BalanceBenchmark reports it beside accuracy).",
        "",
        accuracy_table(agg, "complete", "test_f1"),
        "",
    ]
    if agg.empty:
        return "\n".join(parts)
    patterns = sorted(agg.pattern.unique(), key=lambda p: (p != "complete", p))
    for pattern in patterns:
        parts += [
            f"## Mean accuracy over the modality subsets at test, pattern `{pattern}`",
            "",
            "Every non-empty subset of modalities present at test (the others missing), averaged with equal weight.",
            "",
            accuracy_table(agg, pattern, "subset_mean"),
            "",
        ]
    labels = {"test_acc": "fused test accuracy", "subset_mean": "mean accuracy over the modality subsets"}
    for summary in ranks:
        parts += rank_section(agg, summary["pattern"], summary["metric"], labels[summary["metric"]], summary)
    for pattern in patterns:
        for dataset in sorted(agg[agg.pattern == pattern].dataset.unique()):
            parts += [f"## {dataset}, pattern `{pattern}`", "", dataset_table(agg, dataset, pattern), ""]
            if any(c.startswith("acer:") for c in agg.columns):  # anti-spoofing data sets report ACER
                table = extra_metric_table(agg, dataset, pattern, "acer")
                if table != "_no finished runs_":
                    parts += [f"ACER (%, lower is better) per modality combination at test, `{dataset}`, "
                              f"pattern `{pattern}`; mean over the combinations last.", "", table, ""]
    parts += traces_section(df)
    parts += reported_sections(reported or {}, agg.dataset.unique(), agg)
    parts += [
        "## Throughput (complete pattern)",
        "",
        "Step time: the median training step of each run (steps instrumented for memory left out), mean "
        f"over seeds, and its ratio to `{BASELINE_METHOD}` on the same data set. Samples/s: training samples "
        "over the wall time of the training epochs, the methods' between-epoch work included, validation "
        "passes excluded. Runs share the machine and are timed at different moments, so these columns are "
        "far noisier than the accuracies; `python -m mmbench steps` (STEPTIME.md) times the methods against "
        f"joint training in interleaved rounds of one process instead. Peak memory kind: {', '.join(mem_kinds)} (`autograd_saved_per_step` = bytes "
        "autograd keeps for backward in a step, the CPU proxy; `cuda_max_allocated` on GPU).",
        "",
        throughput_table(agg, "complete"),
        "",
        "## Runs that did not finish",
        "",
        failures_table(df),
        "",
    ]
    return "\n".join(parts)


def write_tables(root: str = "results", machine: str = "", progress=None) -> Dict[str, Path]:
    """Rebuild ``LEADERBOARD.md``, ``.csv`` and ``.json`` in ``root`` from ``root/runs``.

    ``progress(line)``, if given, receives short status lines (runs read, statistics groups done).
    The bootstrap statistics of unchanged data-set x pattern groups come from
    ``root/statistics-cache.json`` (:mod:`mmbench.report.stats_cache`); the tables are the same with
    or without it.
    """
    from mmbench.report.stats_cache import StatisticsCache
    from mmbench.segmentation.table import segmentation_markdown, segmentation_rows

    say = progress or (lambda line: None)
    store = ResultsStore(root)
    results = list(store.all_results())
    df = add_gaps(results_frame(results))
    segmentation = segmentation_rows(results)  # the dense task's own section (mIoU per combination)
    for line in store.unreadable:
        print(f"warning: untrusted result file left out of the tables: {line}", file=sys.stderr)
    say(f"tables: {len(df)} runs read from {store.runs}" + (f" (and {sum(r['seeds'] for r in segmentation)} ok "
                                                            "segmentation runs)" if segmentation else ""))
    agg = aggregate(df) if not df.empty else pd.DataFrame()
    cache = StatisticsCache(root)
    # intervals and best-or-tied marks from the per-sample outcomes
    agg = attach_statistics(agg, df, cache=cache,
                            progress=lambda done, total: say(f"tables: statistics {done}/{total} data set x pattern"))
    reported = load_reported(Path(root) / REPORTED_FILE)
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    if not machine:
        machine = _machine_description(df)
    ranks = rank_summaries(agg, cache=cache)
    cache.save()
    md = build_markdown(df if not df.empty else pd.DataFrame(columns=["status", "seed"]), agg, machine,
                        runs_dir=str(store.runs), unreadable=store.unreadable, reported=reported, ranks=ranks,
                        simulation=load_summary(root))
    if segmentation:
        md = md.rstrip("\n") + "\n\n" + segmentation_markdown(segmentation)
    paths = {"md": out / "LEADERBOARD.md", "csv": out / "LEADERBOARD.csv", "json": out / "LEADERBOARD.json"}
    write_text_atomic(paths["md"], md)
    write_text_atomic(paths["csv"], agg.to_csv(index=False) if not agg.empty else "")
    records = json.loads(agg.to_json(orient="records")) if not agg.empty else []
    which = "\n".join(recommendation(agg, ranks)) if not agg.empty else ""  # the page renders it first
    board = {"machine": machine, "recommendation": which, "aggregate": records, "ranks": ranks,
             "coefficient_traces": all_traces(df)}
    if segmentation:  # only then: a classification-only leaderboard is written as before
        board["segmentation"] = segmentation
    write_json_atomic(paths["json"], board)
    return paths


def _machine_description(df: pd.DataFrame) -> str:
    """The machines the finished runs were made on (from their recorded env), else this machine."""
    ok = df[df.status == "ok"] if "status" in df else df
    machines = sorted(ok.machine.dropna().unique().tolist()) if "machine" in ok else []
    return " | ".join(machines) if machines else machine_line(environment())
