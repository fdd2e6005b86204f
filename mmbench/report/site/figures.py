"""The page's plots, drawn with matplotlib from the leaderboard's own data.

Each function takes already-aggregated data (pandas frames or dicts), draws one figure and returns
it; :func:`save` writes it as SVG. A function returns ``None`` when its data is absent (for example
no robustness runs yet), so the page simply leaves that plot out and says why.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # no display: the page is built headless, in CI too
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mmbench.report.site import method_style  # noqa: E402

# Sized for the page: a figure is at most FIG_W inches wide and its smallest text FONT_SMALL points,
# so that on a 390 px phone (about 350 px of figure) no text renders under 9 px. The page gives any
# figure that cannot fit so a minimum width (it scrolls sideways rather than shrink its text).
FIG_W = 5.2
FONT, FONT_SMALL = 12, 11
plt.rcParams.update({"font.size": FONT_SMALL, "axes.titlesize": FONT, "axes.labelsize": FONT_SMALL,
                     "xtick.labelsize": FONT_SMALL, "ytick.labelsize": FONT_SMALL, "legend.fontsize": FONT_SMALL})

# One colour per method, stable across plots (tab20 cycles after 20 methods).
_CMAP = plt.get_cmap("tab20")


def method_colors(methods: Sequence[str]) -> Dict[str, tuple]:
    return {m: _CMAP(i % 20) for i, m in enumerate(sorted(methods))}


def save(fig, path: Path) -> Path:
    """Write ``fig`` as SVG (text stays text: crisp at any zoom, searchable) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # No date and a fixed salt for the element ids: the same data gives the same bytes, so a rebuilt
    # site diffs cleanly.
    # Text as <text> (not paths): crisp, searchable, and its size can be checked in the browser test.
    with matplotlib.rc_context({"svg.hashsalt": "mmbench", "svg.fonttype": "none"}):
        fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return path


def pareto_front(cost: np.ndarray, acc: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both axes (lower cost, higher accuracy), by cost."""
    order = np.lexsort((-acc, cost))  # cheapest first; among equal cost the most accurate
    front, best = [], -np.inf
    for i in order:
        if acc[i] > best:
            front.append(i)
            best = acc[i]
    return np.asarray(front, dtype=int)


def _rgb(color) -> tuple:
    from matplotlib.colors import to_rgb

    return to_rgb(color)


def _outliers(acc: np.ndarray) -> np.ndarray:
    """Points far below the rest (Q1 - 3 IQR, at least 10 points under the median): drawn apart so
    that one collapsed method does not squash the others into one band."""
    if len(acc) < 5:
        return np.zeros(len(acc), dtype=bool)
    q1, med, q3 = np.percentile(acc, [25, 50, 75])
    fence = min(q1 - 3 * max(q3 - q1, 0.5), med - 10)
    return acc < fence


def cost_accuracy(points: pd.DataFrame, dataset: str):
    """Accuracy against step-time cost, one point per method (its own colour and marker, labelled
    directly, labels never overlapping), the Pareto front joined; outliers far below the others in a
    strip of their own under the main panel.

    ``points``: columns ``method``, ``cost`` (step time relative to joint training), ``acc`` (%),
    optional ``acc_err`` (half-width of the error bar, %).
    """
    if points.empty:
        return None
    points = points.reset_index(drop=True)
    acc, cost = points.acc.to_numpy(dtype=float), points.cost.to_numpy(dtype=float)
    far = _outliers(acc)
    if far.any():
        fig, (ax, low) = plt.subplots(2, 1, figsize=(FIG_W, 5.0), sharex=True,
                                      gridspec_kw={"height_ratios": [5, 1], "hspace": 0.08})
    else:
        fig, ax = plt.subplots(figsize=(FIG_W, 4.4))
        low = None
    err = points["acc_err"].to_numpy(dtype=float) if "acc_err" in points else np.zeros(len(points))
    for i, row in points.iterrows():
        st = method_style.style(row.method)
        target = low if far[i] else ax
        # error bars light and thin: 20+ of them must not hide the points and labels
        target.errorbar(row.cost, row.acc, yerr=err[i], fmt=st["marker"], color=st["color"], ms=st["ms"],
                        capsize=0, lw=0.8, zorder=st["zorder"], ecolor=(*_rgb(st["color"]), 0.3),
                        mfc=st["color"] if st["lw"] > 2 else "none")
    main = ~far
    front = pareto_front(cost[main], acc[main])
    ax.plot(cost[main][front], acc[main][front], "--", color="0.4", lw=1, label="Pareto front", zorder=1)
    span = np.ptp(acc[main]) if main.sum() > 1 else 1.0
    pad = err[main].max()
    ax.set_ylim(acc[main].min() - pad - 0.08 * span - 0.2, acc[main].max() + pad + 0.12 * span + 0.2)
    xspan = max(np.ptp(cost), 0.05)
    ax.set_xlim(cost.min() - 0.06 * xspan, cost.max() + 0.35 * xspan)
    ax.set_ylabel("fused test accuracy (%)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=FONT_SMALL)
    if low is not None:
        low.set_ylim(acc[far].min() - 4, acc[far].max() + 4)
        low.grid(alpha=0.3)
        low.set_ylabel("far\nbelow", fontsize=FONT_SMALL)
        low.set_xlabel("step time relative to joint training (x)")
        for i in np.nonzero(far)[0]:
            low.annotate(f"{points.method[i]} ({acc[i]:.0f}%)", (cost[i], acc[i]), xytext=(8, 0),
                         textcoords="offset points", va="center", fontsize=FONT_SMALL)
        ax.spines["bottom"].set_visible(False)
        low.spines["top"].set_visible(False)
    else:
        ax.set_xlabel("step time relative to joint training (x)")
    fig.canvas.draw()
    method_style.place_labels(ax, [(cost[i], acc[i], points.method[i],
                                    {"color": method_style.style(points.method[i])["color"],
                                     "fontweight": method_style.style(points.method[i])["fontweight"]})
                                   for i in np.nonzero(main)[0]], FONT_SMALL)
    return fig


def subset_heatmap(table: pd.DataFrame, title: str, vmin: Optional[float] = None, vmax: Optional[float] = None,
                   label: str = "test accuracy (%)", cell_width: Optional[float] = None):
    """Accuracy (%) per method (rows) and modality subset (columns), values written in the cells.
    The segmentation page draws its mIoU and per-class IoU with it too (``label``: the colour bar's;
    ``cell_width``: inches per column with no cap on the width, for tables of many classes, which the page
    then scrolls sideways rather than shrink their text).

    ``vmin``/``vmax``: the colour scale, shared by every heatmap of a data set so that one colour is
    one accuracy across them (default: this table's range).
    """
    if table.empty:
        return None
    values = table.to_numpy(dtype=float)
    vmin = np.nanmin(values) if vmin is None else vmin
    vmax = np.nanmax(values) if vmax is None else vmax
    width = min(FIG_W, 1.9 + 0.48 * values.shape[1]) if cell_width is None else 1.9 + cell_width * values.shape[1]
    fig, ax = plt.subplots(figsize=(width, 1.1 + 0.26 * values.shape[0]))
    im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax)
    ax.set_xticks(range(values.shape[1]), [c.replace("+", "+\u200b") for c in table.columns], rotation=45,
                  ha="right", fontsize=FONT_SMALL)
    ax.set_yticks(range(values.shape[0]), table.index, fontsize=FONT_SMALL)
    for tick in ax.get_yticklabels():
        if method_style.is_paper_method(tick.get_text()):
            tick.set_fontweight("bold")
    mid = (vmin + vmax) / 2
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=FONT_SMALL,
                    color="white" if v < mid else "black")
    bar = fig.colorbar(im, ax=ax, fraction=0.06, pad=0.02)
    bar.set_label(label, fontsize=FONT_SMALL)
    bar.ax.tick_params(labelsize=FONT_SMALL)
    ax.set_title(title, fontsize=FONT)
    return fig


def robustness_curves(curves: pd.DataFrame, dataset: str):
    """Accuracy against the missing rate, one line per method, each labelled at its right end.

    ``curves``: columns ``method``, ``eta`` (missing rate at train and test), ``acc`` (%), optional
    ``acc_err``; and ``kind`` in {``"matched"``, ``"complete-trained"``}: trained at the rate it is
    tested at (solid), or trained on complete data and tested at that rate (dotted). The papers'
    methods are drawn thick in strong colours, baselines thin; labels are spread so none overlap.
    """
    if curves.empty:
        return None
    fig, ax = plt.subplots(figsize=(FIG_W, 4.8))
    ends = []
    for (method, kind), grp in curves.groupby(["method", "kind"]):
        grp = grp.sort_values("eta")
        st = method_style.style(method)
        matched = kind == "matched"
        ax.plot(grp.eta, grp.acc, "-" if matched else ":", marker=st["marker"], color=st["color"], ms=st["ms"] - 2,
                lw=st["lw"] if matched else max(1.0, st["lw"] - 0.8), zorder=st["zorder"],
                mfc=st["color"] if st["lw"] > 2 else "none")
        if "acc_err" in grp and matched:
            ax.fill_between(grp.eta, grp.acc - grp.acc_err, grp.acc + grp.acc_err, color=st["color"], alpha=0.08)
        if matched:
            ends.append((method, float(grp.eta.iloc[-1]), float(grp.acc.iloc[-1])))
    if not ends:  # no matched training: label the dotted lines' ends instead
        for method, grp in curves.groupby("method"):
            grp = grp.sort_values("eta")
            ends.append((method, float(grp.eta.iloc[-1]), float(grp.acc.iloc[-1])))
    x_max = float(curves.eta.max())
    x_min = float(curves.eta.min())
    ax.set_xlim(x_min - 0.03, x_max + 0.38 * max(x_max - x_min, 0.1))
    ax.set_xlabel("missing rate η")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    fig.canvas.draw()
    lo, hi = ax.get_ylim()
    height_px = ax.get_window_extent().height
    gap = (FONT_SMALL * 1.3 * fig.dpi / 72) / height_px * (hi - lo)
    placed = method_style.spread([y for _, _, y in ends], gap, lo, hi)
    for (method, x, y), y_label in zip(ends, placed):
        st = method_style.style(method)
        x_text = x_max + 0.05 * max(x_max - x_min, 0.1)
        ax.plot([x, x_text], [y, y_label], color=st["color"], lw=0.6, alpha=0.7)
        ax.text(x_text, y_label, method, va="center", fontsize=FONT_SMALL, color=st["color"],
                fontweight=st["fontweight"])
    from matplotlib.lines import Line2D

    ax.legend([Line2D([], [], color="0.3", ls="-"), Line2D([], [], color="0.3", ls=":")],
              ["trained at η", "trained complete"], fontsize=FONT_SMALL, loc="lower left")
    return fig


def gap_bars(gaps: pd.DataFrame, dataset: str):
    """Under-optimisation gap per method and modality: accuracy of the modality trained alone minus its
    probe accuracy inside the multimodal model (points; positive = under-trained). Methods are rows
    (horizontal bars), so the labels stay readable on a narrow screen.

    ``gaps``: index = methods, columns = modalities, values in points (%).
    """
    if gaps.empty:
        return None
    methods, mods = list(gaps.index), list(gaps.columns)
    height = 0.8 / max(1, len(mods))
    fig, ax = plt.subplots(figsize=(FIG_W, 1.2 + 0.22 * len(methods) * max(1, len(mods)) ** 0.5))
    y = np.arange(len(methods))
    for j, mod in enumerate(mods):
        ax.barh(y + (j - (len(mods) - 1) / 2) * height, gaps[mod].to_numpy(dtype=float), height, label=mod,
                color=plt.get_cmap("Set2")(j % 8))
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(y, methods, fontsize=FONT_SMALL)
    for label in ax.get_yticklabels():
        if method_style.is_paper_method(label.get_text()):
            label.set_fontweight("bold")
    ax.invert_yaxis()
    ax.set_xlabel("alone − probe (points)")
    ax.set_title(f"{dataset}: under-optimisation gap")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=FONT_SMALL, title="modality", title_fontsize=FONT_SMALL, loc="lower right")
    return fig


def coefficient_traces(traces: Dict[str, Dict[str, List[float]]], dataset: str):
    """Balancing coefficients over training: one panel per method (two columns), one line per
    coefficient (values in [0, 1] solid on the left axis, other scales dashed on a right axis), the
    legend under each panel.

    ``traces``: method -> coefficient name -> values per epoch (mean over the epoch's steps).
    """
    traces = {m: t for m, t in traces.items() if t}
    if not traces:
        return None
    n = len(traces)
    cols = min(2, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(FIG_W if cols == 2 else FIG_W / 2 + 0.4, 2.9 * rows), squeeze=False)
    for ax, (method, series) in zip(axes.flat, sorted(traces.items())):
        unit = {n: v for n, v in series.items() if all(0.0 <= x <= 1.0 for x in v)}
        other = {n: v for n, v in series.items() if n not in unit}
        lines = []
        for name, values in sorted(unit.items()):
            lines += ax.plot(range(len(values)), values, lw=1.4, label=name)
        if other:
            right = ax.twinx() if unit else ax
            for name, values in sorted(other.items()):
                lines += right.plot(range(len(values)), values, "--", lw=1.4, label=name)
            right.tick_params(labelsize=FONT_SMALL)
        ax.set_title(method, fontsize=FONT, fontweight=method_style.style(method)["fontweight"])
        ax.set_xlabel("epoch", fontsize=FONT_SMALL)
        ax.tick_params(labelsize=FONT_SMALL)
        ax.grid(alpha=0.3)
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=FONT_SMALL, loc="upper center",
                  bbox_to_anchor=(0.5, -0.32), ncol=min(2, len(lines)), frameon=False)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{dataset}: coefficients over training (seed 0)", fontsize=FONT)
    fig.tight_layout()
    return fig


def control_plot(summary: Dict, title: str):
    """Every method against the control across data sets: stacked bars of P(worse), P(equivalent) and
    P(better) from the Bayesian signed-rank test, a star where Holm's test on mean ranks says better or
    worse. ``summary``: one entry of LEADERBOARD.json's ``ranks``; None when it holds no verdict (fewer
    than 5 independent data-set groups)."""
    methods = [m for m in summary.get("methods", []) if "p_better" in m] if summary.get("verdict") else []
    if not methods:
        return None
    methods = sorted(methods, key=lambda m: (m["p_better"], -m["p_worse"]))
    y = np.arange(len(methods))
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.26 * len(methods)))
    left = np.zeros(len(methods))
    for key, label, color in (("p_worse", "worse", "tab:red"), ("p_equiv", "equivalent (±1 point)", "0.75"),
                              ("p_better", "better", "tab:green")):
        values = np.array([m[key] for m in methods])
        ax.barh(y, values, left=left, color=color, label=label, height=0.7)
        left += values
    for i, m in enumerate(methods):
        if m.get("p_holm", 1.0) <= 0.05:
            ax.text(1.01, i, "*", va="center", fontsize=9)
    ax.set_yticks(y, [m["method"] for m in methods], fontsize=7)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel(f"probability, compared with {summary.get('control', 'joint')}")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    return fig


def kernel_speedups(speedups: pd.DataFrame, op: str):
    """Speedup over the fastest eager formulation against shape, one line per provider, and below it
    the percentage of the roofline where known.

    ``speedups``: columns ``shape``, ``provider``, ``speedup``, optional ``roofline_pct``.
    """
    if speedups.empty:
        return None
    has_roof = "roofline_pct" in speedups and speedups.roofline_pct.notna().any()
    fig, axes = plt.subplots(2 if has_roof else 1, 1, figsize=(FIG_W, 6.4 if has_roof else 4.0), squeeze=False,
                             sharex=True)
    shapes = list(dict.fromkeys(speedups["shape"]))
    x = {s: i for i, s in enumerate(shapes)}
    for provider, grp in speedups.groupby("provider"):
        xs = [x[s] for s in grp["shape"]]
        axes[0, 0].plot(xs, grp.speedup, "-o", ms=4, lw=1.2, label=provider)
        if has_roof:
            axes[1, 0].plot(xs, grp.roofline_pct, "-o", ms=4, lw=1.2, label=provider)
    axes[0, 0].axhline(1.0, color="black", lw=0.8)
    axes[0, 0].set_ylabel("speedup (x)")
    axes[0, 0].set_yscale("log")
    if has_roof:
        axes[1, 0].set_ylabel("% of roofline")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=FONT_SMALL)
    axes[-1, 0].set_xticks(range(len(shapes)), shapes, rotation=60, ha="right", fontsize=FONT_SMALL)
    fig.suptitle(op, fontsize=FONT)
    fig.tight_layout()
    return fig
