"""The leaderboard's segmentation section: mIoU per modality combination, mean over seeds.

The classification tables leave segmentation results out (:func:`mmbench.report.frame.results_frame`);
:func:`segmentation_rows` aggregates them per data set, pattern and settings (the seeds of one
``settings_hash``), and :func:`segmentation_markdown` renders one table per data set and pattern:
mIoU for RGB only, depth only and both, their mean and worst (mean +- standard deviation over seeds,
in percent), and the pixel accuracy with both.
"""
from __future__ import annotations

import statistics
from typing import Any, Dict, Iterable, List

COMBINATIONS = ("rgb", "depth", "rgb+depth")
TASK = "segmentation"


def is_segmentation(result: Dict[str, Any]) -> bool:
    return result.get("task") == TASK


def run_label(spec: Dict[str, Any]) -> str:
    """The row label of a run: the method, with its ``--set`` overrides in brackets (the page uses it too)."""
    overrides = ",".join(f"{k}={v}" for k, v in sorted(spec.get("overrides", {}).items()))
    return f"{spec['method']} [{overrides}]" if overrides else spec["method"]


def segmentation_rows(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per (data set, pattern, settings) of the ``ok`` segmentation results, scores in percent."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in results:
        if is_segmentation(r) and r.get("status") == "ok":
            spec = r["spec"]
            groups.setdefault((spec["dataset"], spec["pattern"], run_label(spec), r.get("settings_hash")), []).append(r)
    rows = []
    for (dataset, pattern, label, _), runs in sorted(groups.items(), key=lambda kv: kv[0][:3]):
        row: Dict[str, Any] = {"dataset": dataset, "pattern": pattern, "method": label, "seeds": len(runs)}
        columns = {f"miou:{c}": [r["metrics"]["subset_miou"][c] for r in runs] for c in COMBINATIONS}
        columns["miou_mean"] = [r["metrics"]["miou_mean"] for r in runs]
        columns["miou_worst"] = [r["metrics"]["miou_worst"] for r in runs]
        columns["pixel_acc:rgb+depth"] = [r["metrics"]["subset_pixel_acc"]["rgb+depth"] for r in runs]
        for name, values in columns.items():
            row[name] = 100 * statistics.fmean(values)
            row[f"{name}_sd"] = 100 * statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows


def _cell(row: Dict[str, Any], name: str) -> str:
    sd = row.get(f"{name}_sd")
    return f"{row[name]:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")


def segmentation_markdown(rows: List[Dict[str, Any]]) -> str:
    """The section's markdown ('' when there is no segmentation result)."""
    if not rows:
        return ""
    lines = ["## Segmentation: mIoU per modality combination", "",
             "mIoU (%) over the classes, void pixels left out, on the test split, for RGB only, depth only and "
             "both; mean ± sd over seeds (n = seeds). Epoch selected on a validation split carved from train.", ""]
    for (dataset, pattern) in dict.fromkeys((r["dataset"], r["pattern"]) for r in rows):
        lines += [f"### {dataset} / {pattern}", "",
                  "| method | n | RGB | depth | RGB+depth | mean | worst | pixel acc (both) |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        part = sorted((r for r in rows if (r["dataset"], r["pattern"]) == (dataset, pattern)),
                      key=lambda r: -r["miou_mean"])
        for r in part:
            cells = [_cell(r, f"miou:{c}") for c in COMBINATIONS] + [_cell(r, "miou_mean"), _cell(r, "miou_worst"),
                                                                    _cell(r, "pixel_acc:rgb+depth")]
            lines.append(f"| {r['method']} | {r['seeds']} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
