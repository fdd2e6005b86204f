"""The page of a segmentation data set, and its entry on the overview.

:func:`mmbench.report.site.publish.publish` calls :func:`dataset_sections` for each segmentation data
set in the results folder (:func:`mmbench.report.site.segmentation_inputs.datasets`) and
:func:`index_section` once when there is any; a classification-only folder never reaches this module,
so its site is built exactly as before.

A page holds: what its numbers are and which of the classification pages' conventions apply
(:data:`NUMBERS`, :data:`STATISTICS`); mIoU per method and modality combination (a table per
training pattern and a heatmap per pattern, one colour scale for the data set); pixel accuracy; and
IoU per class (a table per pattern, rows method x combination, and a heatmap of the RGB+depth IoU).
The means are the ones of the leaderboard's segmentation section (same grouping, same runs).
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Callable, List, Optional

from mmbench.report.site import figures
from mmbench.report.site import segmentation_inputs as seg
from mmbench.report.site.publish import Section, _add, _slug

NUMBERS = (
    "Semantic segmentation of RGB-D images, tested with RGB only, depth only and both present. mIoU: "
    "the IoU of each class, TP / (TP + FP + FN), from one confusion matrix summed over all test pixels, "
    "averaged over the classes that occur in the labels or the predictions; void pixels are "
    "left out. Pixel accuracy: the share of non-void pixels labelled right. `mean` and `worst`: over the "
    "three combinations, per run, then averaged over seeds; `masked test`: the pattern's own test masks. "
    "The epoch is selected on a validation split carved from train, as for classification. "
    "A cell reads `mean ± sd (n) [lo, hi]`, in percent, over n seeds."
)

STATISTICS = (
    "Which of the classification pages' conventions apply here. The interval `[lo, hi]` is a 95% t interval "
    "over the seeds only (n - 1 degrees of freedom, exact when the seeds' scores scatter normally; clipped to "
    "[0, 100]; the leaderboard's `†` interval for runs without per-sample outcomes), not the crossed seeds x "
    "test-samples interval: mIoU is a ratio of counts pooled over every test pixel, not a mean of per-image "
    "scores, and the runs keep no per-image record, so the test-image part of the variance cannot be "
    "estimated. The interval covers how much training seeds move the score on this one test split, not which "
    "test images were drawn. One seed: no sd, no interval. No best-or-tied marks (no bold): that verdict is a "
    "max-T test on the same crossed design and needs per-sample outcomes; the rows are ordered by the mean "
    "mIoU over the combinations, which is not a verdict. Not drawn for this task: accuracy against cost (the "
    "`steps` benchmark times the classification methods), the under-optimisation gap (a segmentation run has "
    "no per-modality probe), coefficient traces (no segmentation method records any) and the cross-data-set "
    "ranks."
)


def index_section(datasets: List[str], page_of: Callable[[str], str]) -> Section:
    """The overview's links to the segmentation data sets' pages."""
    s = Section("Segmentation (RGB-D)", "segmentation",
                "mIoU and pixel accuracy per modality combination, and IoU per class, one page per segmentation "
                "data set. The mean mIoU are those of the leaderboard's section `Segmentation: mIoU per modality "
                "combination`.")
    s.links = [(page_of(ds), ds) for ds in datasets]
    return s


def dataset_sections(seg_results: List[dict], dataset: str, img: Path) -> List[Section]:
    """The sections of ``dataset``'s page; plots are written into ``img``."""
    cells = seg.cells(seg_results, dataset)
    patterns = seg.patterns(cells)
    about = [Section("What the numbers are", "numbers", NUMBERS),
             Section("Intervals and verdicts", "statistics", STATISTICS)]
    return about + [_miou_section(cells, patterns, img, dataset), _pixel_acc_section(cells, patterns),
                    _class_iou_section(cells, patterns, img, dataset)]


def _miou_section(cells, patterns, img: Path, ds: str) -> Section:
    s = Section("mIoU per modality combination", "miou",
                "Test mIoU (%) for each modality combination present at test, per training pattern; the heatmaps "
                "show the means with one colour scale for all patterns of the data set.")
    frames = {p: seg.miou_frame(cells, p) for p in patterns}
    values = [v for f in frames.values() for v in f.to_numpy(dtype=float).ravel() if v == v]
    scale = (min(values), max(values)) if values else (None, None)
    for pattern in patterns:
        heads, rows = seg.score_rows(cells, pattern, seg.MIOU_COLUMNS)
        s.tables += _pattern_heading(pattern) + _score_table(heads, rows)
        _add(s, figures.subset_heatmap(frames[pattern], f"trained under {pattern}", *scale, label="test mIoU (%)"),
             img, f"seg-miou-{_slug(ds)}-{_slug(pattern)}",
             f"{ds}, training pattern {pattern}: test mIoU per modality combination, mean over seeds.")
    return s


def _pixel_acc_section(cells, patterns) -> Section:
    s = Section("Pixel accuracy", "pixel-accuracy",
                "Share of the non-void test pixels labelled right (%), per modality combination and training pattern.")
    for pattern in patterns:
        heads, rows = seg.score_rows(cells, pattern, seg.PIXEL_ACC_COLUMNS)
        s.tables += _pattern_heading(pattern) + _score_table(heads, rows)
    return s


def _class_iou_section(cells, patterns, img: Path, ds: str) -> Section:
    s = Section("IoU per class", "class-iou",
                "Test IoU (%) of each class, mean ± sd over the seeds where the class has an IoU (it has none in a "
                "run where it occurs neither in the labels nor in the predictions; `(k)`: in k seeds only, `–`: "
                "in none). One row per method and modality combination. The heatmaps show RGB+depth.")
    names = seg.class_names(cells)
    if not names:
        s.missing.append("the runs stored no per-class IoU")
        return s
    frames = {p: seg.class_iou_frame(cells, p, "rgb+depth", names) for p in patterns}
    values = [v for f in frames.values() for v in f.to_numpy(dtype=float).ravel() if v == v]
    scale = (min(values), max(values)) if values else (None, None)
    for pattern in patterns:
        s.tables += _pattern_heading(pattern) + _class_table(cells, pattern, names)
        _add(s, figures.subset_heatmap(frames[pattern], f"trained under {pattern}, RGB+depth", *scale,
                                       label="test IoU (%)", cell_width=0.42),
             img, f"seg-class-iou-{_slug(ds)}-{_slug(pattern)}",
             f"{ds}, training pattern {pattern}: test IoU per class with both modalities, mean over seeds.")
    return s


def _pattern_heading(pattern: str) -> str:
    return f"<h3>pattern <code>{html.escape(pattern)}</code></h3>"


def format_summary(s: Optional[seg.Summary]) -> str:
    """``mean ± sd (n) [lo, hi]``; ``mean (1)`` for one seed; ``–`` for no value."""
    if s is None:
        return "–"
    if s.sd is None:
        return f"{s.mean:.1f} (1)"
    text = f"{s.mean:.1f} ± {s.sd:.1f} ({s.n})"
    return text + f" [{s.lo:.1f}, {s.hi:.1f}]"


def _table(heads: List[str], body: List[List[str]]) -> str:
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in heads)
    rows = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>" for row in body)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _score_table(heads: List[str], rows: List[dict]) -> str:
    body = [[row["method"], str(row["n"])] + [format_summary(row[h]) for h in heads] for row in rows]
    return _table(["method", "n"] + heads, body)


def _class_table(cells, pattern: str, names: List[str]) -> str:
    body = []
    for cell in (c for c in cells if c.pattern == pattern):
        for combo, heading in seg.COMBINATION_NAMES.items():
            per_class = seg.class_iou(cell, combo, len(names))
            body.append([cell.method, heading, str(len(cell.runs))]
                        + [_class_cell(s, len(cell.runs)) for s in per_class])
    return _table(["method", "test with", "n"] + names, body)


def _class_cell(s: Optional[seg.Summary], seeds: int) -> str:
    """``mean ± sd``, with ``(k)`` when the class has an IoU in only k of the cell's seeds."""
    if s is None:
        return "–"
    text = f"{s.mean:.1f}" + (f" ± {s.sd:.1f}" if s.sd is not None else "")
    return text + (f" ({s.n})" if s.n < seeds else "")
