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

# One colour per method, stable across plots (tab20 cycles after 20 methods).
_CMAP = plt.get_cmap("tab20")


def method_colors(methods: Sequence[str]) -> Dict[str, tuple]:
    return {m: _CMAP(i % 20) for i, m in enumerate(sorted(methods))}


def save(fig, path: Path) -> Path:
    """Write ``fig`` as SVG (text stays text: crisp at any zoom, searchable) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # No date and a fixed salt for the element ids: the same data gives the same bytes, so a rebuilt
    # site diffs cleanly.
    with matplotlib.rc_context({"svg.hashsalt": "mmbench"}):
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


def cost_accuracy(points: pd.DataFrame, dataset: str):
    """Accuracy against step-time cost, one point per method, the Pareto front joined.

    ``points``: columns ``method``, ``cost`` (step time relative to joint training), ``acc`` (%),
    optional ``acc_err`` (half-width of the error bar, %).
    """
    if points.empty:
        return None
    colors = method_colors(points.method)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    err = points["acc_err"].to_numpy() if "acc_err" in points else None
    for i, row in enumerate(points.itertuples()):
        ax.errorbar(row.cost, row.acc, yerr=None if err is None else err[i], fmt="o", color=colors[row.method],
                    ms=5, capsize=2, lw=1)
        ax.annotate(row.method, (row.cost, row.acc), textcoords="offset points", xytext=(4, 3), fontsize=7)
    front = pareto_front(points.cost.to_numpy(), points.acc.to_numpy())
    ax.plot(points.cost.to_numpy()[front], points.acc.to_numpy()[front], "--", color="0.4", lw=1,
            label="Pareto front")
    ax.set_xlabel("step time relative to joint training (x)")
    ax.set_ylabel("fused test accuracy (%)")
    ax.set_title(dataset)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def subset_heatmap(table: pd.DataFrame, title: str):
    """Accuracy (%) per method (rows) and modality subset (columns), values written in the cells."""
    if table.empty:
        return None
    values = table.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 + 0.75 * values.shape[1], 0.8 + 0.3 * values.shape[0]))
    im = ax.imshow(values, aspect="auto", cmap="viridis", vmin=np.nanmin(values), vmax=np.nanmax(values))
    ax.set_xticks(range(values.shape[1]), table.columns, rotation=45, ha="right", fontsize=7)
    ax.set_yticks(range(values.shape[0]), table.index, fontsize=7)
    mid = (np.nanmin(values) + np.nanmax(values)) / 2
    for (r, c), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(c, r, f"{v:.0f}", ha="center", va="center", fontsize=6, color="white" if v < mid else "black")
    fig.colorbar(im, ax=ax, label="test accuracy (%)")
    ax.set_title(title, fontsize=9)
    return fig


def robustness_curves(curves: pd.DataFrame, dataset: str):
    """Accuracy against the missing rate, one line per method.

    ``curves``: columns ``method``, ``eta`` (missing rate at train and test), ``acc`` (%), optional
    ``acc_err``; and ``kind`` in {``"matched"``, ``"complete-trained"``}: trained at the rate it is
    tested at (solid), or trained on complete data and tested at that rate (dashed).
    """
    if curves.empty:
        return None
    colors = method_colors(curves.method)
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for (method, kind), grp in curves.groupby(["method", "kind"]):
        grp = grp.sort_values("eta")
        style = "-o" if kind == "matched" else ":x"
        label = method if kind == "matched" else None
        ax.plot(grp.eta, grp.acc, style, color=colors[method], ms=3, lw=1.2, label=label)
        if "acc_err" in grp and kind == "matched":
            ax.fill_between(grp.eta, grp.acc - grp.acc_err, grp.acc + grp.acc_err, color=colors[method], alpha=0.12)
    ax.set_xlabel("missing rate η (fraction of samples missing modalities)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{dataset}: solid = trained at η, dotted = trained on complete data")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


def gap_bars(gaps: pd.DataFrame, dataset: str):
    """Under-optimisation gap per method and modality: accuracy of the modality trained alone minus its
    probe accuracy inside the multimodal model (points; positive = under-trained).

    ``gaps``: index = methods, columns = modalities, values in points (%).
    """
    if gaps.empty:
        return None
    methods, mods = list(gaps.index), list(gaps.columns)
    width = 0.8 / max(1, len(mods))
    fig, ax = plt.subplots(figsize=(max(6.4, 0.45 * len(methods) * max(1, len(mods)) / 2), 4.0))
    x = np.arange(len(methods))
    for j, mod in enumerate(mods):
        ax.bar(x + (j - (len(mods) - 1) / 2) * width, gaps[mod].to_numpy(dtype=float), width, label=mod)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_xticks(x, methods, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("alone − probe (points)")
    ax.set_title(f"{dataset}: under-optimisation gap per modality")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, title="modality", title_fontsize=7)
    return fig


def coefficient_traces(traces: Dict[str, Dict[str, List[float]]], dataset: str):
    """Balancing coefficients over training: one panel per method, one line per coefficient (values in
    [0, 1] solid on the left axis, other scales dashed on a right axis).

    ``traces``: method -> coefficient name -> values per epoch (mean over the epoch's steps).
    """
    traces = {m: t for m, t in traces.items() if t}
    if not traces:
        return None
    n = len(traces)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, 2.8 * rows), squeeze=False)
    for ax, (method, series) in zip(axes.flat, sorted(traces.items())):
        # shares and weights in [0, 1] on the left axis; anything else (variances, boost weights, log
        # ratios) dashed on a right axis of its own, so neither scale flattens the other
        unit = {n: v for n, v in series.items() if all(0.0 <= x <= 1.0 for x in v)}
        other = {n: v for n, v in series.items() if n not in unit}
        lines = []
        for name, values in sorted(unit.items()):
            lines += ax.plot(range(len(values)), values, lw=1.2, label=name)
        if other:
            right = ax.twinx() if unit else ax
            for name, values in sorted(other.items()):
                lines += right.plot(range(len(values)), values, "--", lw=1.2, label=name)
            right.tick_params(labelsize=7)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(lines, [ln.get_label() for ln in lines], fontsize=6)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{dataset}: coefficients over training (seed 0)", fontsize=10)
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
    """Speedup over the fastest eager formulation against shape, one line per provider (left axis),
    and the percentage of the roofline where known (right panel).

    ``speedups``: columns ``shape``, ``provider``, ``speedup``, optional ``roofline_pct``.
    """
    if speedups.empty:
        return None
    has_roof = "roofline_pct" in speedups and speedups.roofline_pct.notna().any()
    fig, axes = plt.subplots(1, 2 if has_roof else 1, figsize=(11 if has_roof else 6.4, 3.8), squeeze=False)
    shapes = list(dict.fromkeys(speedups["shape"]))
    x = {s: i for i, s in enumerate(shapes)}
    for provider, grp in speedups.groupby("provider"):
        xs = [x[s] for s in grp["shape"]]
        axes[0, 0].plot(xs, grp.speedup, "-o", ms=3, lw=1, label=provider)
        if has_roof:
            axes[0, 1].plot(xs, grp.roofline_pct, "-o", ms=3, lw=1, label=provider)
    axes[0, 0].axhline(1.0, color="black", lw=0.8)
    axes[0, 0].set_ylabel("speedup over fastest eager (x)")
    axes[0, 0].set_yscale("log")
    if has_roof:
        axes[0, 1].set_ylabel("% of roofline (copy bandwidth)")
    for ax in axes.flat:
        ax.set_xticks(range(len(shapes)), shapes, rotation=60, ha="right", fontsize=6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(op, fontsize=10)
    fig.tight_layout()
    return fig
