"""From the stored segmentation results to the numbers of a segmentation data set's page.

The segmentation twin of :mod:`mmbench.report.site.inputs`. It reads the ``ok`` results with
``task: "segmentation"`` (:mod:`mmbench.segmentation.runner` writes them; the classification frame
leaves them out) and groups them as the leaderboard's segmentation section does
(:func:`mmbench.segmentation.table.segmentation_rows`): one *cell* per data set, pattern, method label
(the method and its ``--set`` overrides) and settings hash, its runs the seeds. Every score comes out
in percent: the mean over seeds, the sample standard deviation, and a t interval over the seeds.

Why a seed-only interval (and no best-or-tied verdict): a run's mIoU is read from one confusion
matrix summed over every test pixel, a ratio of pooled counts, and the stored result keeps no
per-image record; so the crossed seeds x test-samples model of :mod:`mmbench.report.intervals`,
which needs per-sample scores, cannot be applied. What can be estimated is the spread between
training seeds on this one test split: :func:`mmbench.report.intervals.seed_interval`, the interval
the leaderboard gives classification runs without per-sample outcomes.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

import pandas as pd

from mmbench.report.intervals import seed_interval
from mmbench.segmentation.table import COMBINATIONS, is_segmentation, run_label

COMBINATION_NAMES = {"rgb": "RGB", "depth": "depth", "rgb+depth": "RGB+depth"}  # as the tables and plots name them
# (column heading, key in the stored metrics, combination or None): per combination, then the summaries
MIOU_COLUMNS = (("RGB", "subset_miou", "rgb"), ("depth", "subset_miou", "depth"),
                ("RGB+depth", "subset_miou", "rgb+depth"), ("mean", "miou_mean", None),
                ("worst", "miou_worst", None), ("masked test", "masked_test_miou", None))
PIXEL_ACC_COLUMNS = (("RGB", "subset_pixel_acc", "rgb"), ("depth", "subset_pixel_acc", "depth"),
                     ("RGB+depth", "subset_pixel_acc", "rgb+depth"), ("mean", "pixel_acc_mean", None),
                     ("worst", "pixel_acc_worst", None), ("masked test", "masked_test_pixel_acc", None))


@dataclass
class Cell:
    """The runs (one per seed) of one method label under one pattern on one data set, same settings."""

    dataset: str
    pattern: str
    method: str
    settings_hash: Optional[str]
    runs: List[Dict[str, Any]] = field(default_factory=list)

    def values(self, key: str, combination: Optional[str] = None) -> List[float]:
        """The stored score ``metrics[key]`` (``[combination]``) of each run that has it, as fractions."""
        out = []
        for r in self.runs:
            v = r["metrics"].get(key)
            if combination is not None:
                v = v.get(combination) if isinstance(v, dict) else None
            if isinstance(v, (int, float)) and math.isfinite(v):
                out.append(float(v))
        return out


@dataclass(frozen=True)
class Summary:
    """Scores of one cell in percent: ``n`` seeds, their mean, sd (None for one seed), 95% seed interval
    ``[lo, hi]`` (None for one seed; clipped to [0, 100], where a t interval over few seeds can reach)."""

    n: int
    mean: float
    sd: Optional[float]
    lo: Optional[float]
    hi: Optional[float]


def summarise(fractions: List[float]) -> Optional[Summary]:
    """:class:`Summary` of per-seed scores given as fractions (None for no value)."""
    if not fractions:
        return None
    pct = [100 * v for v in fractions]
    if len(pct) == 1:
        return Summary(1, pct[0], None, None, None)
    lo, hi = seed_interval(pct)
    return Summary(len(pct), statistics.fmean(pct), statistics.stdev(pct), max(lo, 0.0), min(hi, 100.0))


def segmentation_results(results: Iterable[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """The finished (``status == "ok"``) segmentation results among ``results``."""
    return [r for r in results if is_segmentation(r) and r.get("status") == "ok"]


def datasets(seg_results: List[Dict[str, Any]]) -> List[str]:
    return sorted({r["spec"]["dataset"] for r in seg_results})


def pattern_order(pattern: str) -> tuple:
    """``complete`` first, then by name (as the classification heatmaps)."""
    return pattern != "complete", pattern


def cells(seg_results: List[Dict[str, Any]], dataset: str) -> List[Cell]:
    """The cells of ``dataset``: by pattern (complete first), then by mean mIoU over the combinations,
    best first (the leaderboard section's order; an order, not a verdict)."""
    groups: Dict[tuple, Cell] = {}
    for r in seg_results:
        spec = r["spec"]
        if spec["dataset"] != dataset:
            continue
        key = (spec["pattern"], run_label(spec), r.get("settings_hash"))
        groups.setdefault(key, Cell(dataset, key[0], key[1], key[2])).runs.append(r)
    for cell in groups.values():
        cell.runs.sort(key=lambda r: r["spec"]["seed"])

    def order(cell: Cell):
        mean = cell.values("miou_mean")
        return pattern_order(cell.pattern), -(statistics.fmean(mean) if mean else -1.0), cell.method

    return sorted(groups.values(), key=order)


def patterns(dataset_cells: List[Cell]) -> List[str]:
    return list(dict.fromkeys(c.pattern for c in dataset_cells))


def score_rows(dataset_cells: List[Cell], pattern: str, columns=MIOU_COLUMNS) -> Tuple[List[str], List[dict]]:
    """Column headings and one row per cell of ``pattern``: ``{"method", "n", heading: Summary | None}``.
    A column no cell has (``masked test`` under ``complete``) is left out."""
    part = [c for c in dataset_cells if c.pattern == pattern]
    rows = [{"method": c.method, "n": len(c.runs),
             **{head: summarise(c.values(key, combo)) for head, key, combo in columns}} for c in part]
    kept = [head for head, _, _ in columns if any(row[head] is not None for row in rows)]
    return kept, rows


def class_names(dataset_cells: List[Cell]) -> List[str]:
    """The data set's class names as the runs stored them (``metrics.class_names``), else ``class <i>``
    (results written before the names were stored)."""
    count = max((len(r["metrics"]["subset_iou"]["rgb+depth"]) for c in dataset_cells for r in c.runs
                 if isinstance(r["metrics"].get("subset_iou"), dict) and "rgb+depth" in r["metrics"]["subset_iou"]),
                default=0)
    for c in dataset_cells:
        for r in c.runs:
            names = r["metrics"].get("class_names")
            if isinstance(names, list) and len(names) == count:
                return [str(n) for n in names]
    return [f"class {i}" for i in range(count)]


def class_iou(cell: Cell, combination: str, num_classes: int) -> List[Optional[Summary]]:
    """Per class, the :class:`Summary` of its IoU over the seeds where it has one (a class absent from
    both the labels and the predictions of a run has no IoU there: ``null`` in the stored list), so a
    summary's ``n`` may be below the cell's seed count."""
    per_class: List[List[float]] = [[] for _ in range(num_classes)]
    for r in cell.runs:
        ious = (r["metrics"].get("subset_iou") or {}).get(combination) or []
        for c, v in enumerate(ious[:num_classes]):
            if isinstance(v, (int, float)) and math.isfinite(v):
                per_class[c].append(float(v))
    return [summarise(values) for values in per_class]


def miou_frame(dataset_cells: List[Cell], pattern: str) -> pd.DataFrame:
    """Method labels x combinations: mean mIoU over seeds (%), for the heatmap; rows as :func:`cells`."""
    part = [c for c in dataset_cells if c.pattern == pattern]
    data = {c.method: [_mean_pct(c.values("subset_miou", combo)) for combo in COMBINATIONS] for c in part}
    columns = [COMBINATION_NAMES[c] for c in COMBINATIONS]
    return pd.DataFrame.from_dict(data, orient="index", columns=columns) if data else pd.DataFrame()


def class_iou_frame(dataset_cells: List[Cell], pattern: str, combination: str, names: List[str]) -> pd.DataFrame:
    """Method labels x classes: mean IoU over the seeds where the class has one (%), NaN where none."""
    part = [c for c in dataset_cells if c.pattern == pattern]
    data = {c.method: [s.mean if s is not None else float("nan") for s in class_iou(c, combination, len(names))]
            for c in part}
    return pd.DataFrame.from_dict(data, orient="index", columns=names) if data and names else pd.DataFrame()


def _mean_pct(values: List[float]) -> float:
    return 100 * statistics.fmean(values) if values else float("nan")
