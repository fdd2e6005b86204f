"""How each method looks in every plot of the page, and labels that never overlap.

* The five methods of the papers under study (ARL, DGL, DMRNet, MMANet, one-stage modality
  distillation) get strong, distinct colours, thick lines and filled markers; baselines get muted
  colours and thin lines, each with a marker of its own, so 20+ methods stay tellable apart in
  greyscale too. A method keeps its style in every plot (styles depend on the name only).
* :func:`place_labels` writes a label next to each point or line end and moves it (vertically, or
  around the point) until it overlaps no other label, using the text's real extent on the canvas.
"""
from __future__ import annotations

import hashlib
from typing import Dict, List, Sequence, Tuple

PAPER_METHODS = ("arl", "dgl", "dmrnet", "mmanet", "osmd")
_PAPER_COLORS = {"arl": "#d62728", "dgl": "#1f77b4", "dmrnet": "#2ca02c", "mmanet": "#9467bd", "osmd": "#ff7f0e"}
_PAPER_MARKERS = {"arl": "o", "dgl": "s", "dmrnet": "D", "mmanet": "^", "osmd": "v"}
# muted, still distinguishable from one another and from the papers' colours
_BASELINE_COLORS = ["#6b6b6b", "#8c564b", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#393b79", "#637939",
                    "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#31a354", "#756bb1", "#636363", "#e6550d"]
_BASELINE_MARKERS = ["x", "+", "1", "2", "3", "4", "*", "p", "h", "<", ">", "d", "P", "X", "8", "H"]
_FIXED = {"joint": ("#000000", "x"), "unimodal": ("#7f7f7f", "+")}  # the references every reader looks for


def is_paper_method(method: str) -> bool:
    return method.split(" ")[0].split("[")[0] in PAPER_METHODS


def style(method: str) -> Dict[str, object]:
    """``color``, ``marker``, ``lw``, ``ms``, ``zorder``, ``fontweight`` of ``method``, the same in every plot."""
    base = method.split(" ")[0].split("[")[0]
    if base in _PAPER_COLORS:
        return {"color": _PAPER_COLORS[base], "marker": _PAPER_MARKERS[base], "lw": 2.4, "ms": 7, "zorder": 5,
                "fontweight": "bold"}
    if base in _FIXED:
        color, marker = _FIXED[base]
    else:
        h = int(hashlib.sha1(base.encode()).hexdigest(), 16)
        color = _BASELINE_COLORS[h % len(_BASELINE_COLORS)]
        marker = _BASELINE_MARKERS[(h // 7) % len(_BASELINE_MARKERS)]
    return {"color": color, "marker": marker, "lw": 1.2, "ms": 6, "zorder": 3, "fontweight": "normal"}


def spread(values: Sequence[float], gap: float, low: float = float("-inf"), high: float = float("inf")) -> List[float]:
    """``values`` moved as little as possible so that sorted neighbours are at least ``gap`` apart.

    Used for labels at line ends (one coordinate). Order is kept; the result stays in [low, high]
    when there is room.
    """
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [values[i] for i in order]
    for _ in range(200):  # push apart pairwise until no pair is too close
        moved = False
        for k in range(1, len(placed)):
            overlap = gap - (placed[k] - placed[k - 1])
            if overlap > 1e-9:
                placed[k - 1] -= overlap / 2
                placed[k] += overlap / 2
                moved = True
        if placed and placed[0] < low:
            shift = low - placed[0]
            placed = [p + shift for p in placed]
        if placed and placed[-1] > high and placed[0] - (placed[-1] - high) >= low:
            shift = placed[-1] - high
            placed = [p - shift for p in placed]
        if not moved:
            break
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = placed[rank]
    return out


def place_labels(ax, points: Sequence[Tuple[float, float, str, dict]], fontsize: float) -> list:
    """Label scatter points without overlap: each label tries positions around its point, nearest first,
    and takes the first whose box (in display pixels) overlaps no label placed before and no point.

    ``points``: ``(x, y, text, text_kwargs)``. Returns the text artists.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    point_px = [to_px((x, y)) for x, y, _, _ in points]
    taken: List[Tuple[float, float, float, float]] = [(px - 6, py - 6, px + 6, py + 6) for px, py in point_px]
    axes_box = ax.get_window_extent(renderer)
    artists = []
    # most crowded first would be ideal; highest y first keeps the leaders' labels nearest their points
    order = sorted(range(len(points)), key=lambda i: -points[i][1])
    offsets = [(dx, dy) for r in (6, 12, 20, 30, 42, 56) for dx, dy in
               ((r, 0), (-r, 0), (r, r * 0.6), (r, -r * 0.6), (-r, r * 0.6), (-r, -r * 0.6), (0, r), (0, -r))]
    for i in order:
        x, y, text, kwargs = points[i]
        px, py = point_px[i]
        label = ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset pixels", fontsize=fontsize, **kwargs)
        chosen = None
        for dx, dy in offsets:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            label.set_position((dx, dy))
            label.set_ha(ha)
            label.set_va(va)
            box = label.get_window_extent(renderer)
            rect = (box.x0, box.y0, box.x1, box.y1)
            inside = (rect[0] >= axes_box.x0 - 2 and rect[2] <= axes_box.x1 + 60 and rect[1] >= axes_box.y0 - 2
                      and rect[3] <= axes_box.y1 + 2)
            if inside and not any(_overlap(rect, other) for other in taken):
                chosen = rect
                if abs(dx) > 12 or abs(dy) > 12:  # far from its point: a thin leader line says whose it is
                    label.arrow_patch = None
                    label.remove()
                    label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset pixels", ha=ha, va=va,
                                        fontsize=fontsize, arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"},
                                        **kwargs)
                break
        if chosen is None:  # nowhere free: keep the last (farthest) position, still with a leader line
            box = label.get_window_extent(renderer)
            chosen = (box.x0, box.y0, box.x1, box.y1)
        taken.append(chosen)
        artists.append(label)
    return artists


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
