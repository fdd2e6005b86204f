"""``python -m mmbench publish``: a static, self-contained leaderboard site from the results folder.

Writes ``<results>/site/``::

    index.html          the overview, a few screens: "Which method should I use?" (the section of
                        that name at the top of LEADERBOARD.md), robustness to missing modalities
                        (the main finding), the mean ranks, and links to the pages below
    dataset-<name>.html one per data set: accuracy against cost, accuracy per modality subset (one
                        colour scale for all its heatmaps), under-optimisation gaps, coefficient traces;
                        a segmentation data set (only when the folder holds such runs): mIoU, pixel
                        accuracy and IoU per class (:mod:`mmbench.report.site.segmentation_page`)
    tables.html         every table of LEADERBOARD.md and STEPTIME.md (sortable)
    kernels.html        the kernel speedups and KERNELS.md (timings, compile resources per variant)
    img/*.svg           the plots (matplotlib)
    data/*              copies of LEADERBOARD.{csv,json}, steptime.csv, kernels.csv, so the folder
                        can be served from any static host on its own

Byte-stable: the same results give the same files (the date shown is the newest run's, not the
build's), so publishing twice changes nothing a version control system would see.

The tables are the Markdown tables themselves, converted with Python-Markdown, so the page can never
disagree with ``LEADERBOARD.md``: rebuild the tables first (``all`` and ``table`` do), then publish.
No server, no network: the page opens from the file system.
"""
from __future__ import annotations

import html
import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import markdown
import pandas as pd

from mmbench.environment import machine_line
from mmbench.report.frame import results_frame
from mmbench.report.site import figures, inputs, segmentation_inputs
from mmbench.report.site.static import CSS, SORT_JS
from mmbench.results_store import ResultsStore, write_text_atomic

DATA_FILES = ("LEADERBOARD.csv", "LEADERBOARD.json", "steptime.csv", "kernels.csv")
MIN_TRAINING_RATES = 3  # a robustness curve needs a method trained at this many missing rates
TABLE_PAGES = (("LEADERBOARD.md", "Leaderboard"), ("STEPTIME.md", "Step time"))
SUMMARY_HEADING = "## Which method should I use?"
MIN_TEXT_PX = 9  # no plot text smaller than this on any screen (figures get a minimum width to keep it)
COST_NOTE = (
    "Two cost numbers exist and they measure different things. The plots and the `Step time` table use "
    "the interleaved step-time benchmark (`python -m mmbench steps`, STEPTIME.md): every method trained "
    "in turn in one process, its step time divided by joint training's in the same round, so machine "
    "load cancels. The leaderboard's `Throughput` table is measured inside each run (samples/s, median "
    "step), beside whatever else ran then: good for spotting a slow run, noisier as a comparison. Where "
    "a data set has no step-time benchmark the plots fall back to the runs' median step times and say so."
)


@dataclass
class Section:
    """One block of a page: a heading, an intro, figures (``(src, caption)``), notes on absent plots,
    raw HTML (the summary), links (``(href, text)``) and raw HTML tables (shown before the figures)."""

    title: str
    anchor: str
    intro: str = ""
    figures: List[tuple] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    html: str = ""
    links: List[tuple] = field(default_factory=list)
    tables: str = ""


def publish(root: str | Path = "results", out: Optional[str | Path] = None,
            progress: Callable[[str], None] = lambda _: None) -> Path:
    """Build the site for the results in ``root``; returns the path of ``index.html``."""
    root = Path(root)
    site = Path(out) if out else root / "site"
    if not (root / "runs").is_dir():
        raise FileNotFoundError(f"no runs folder at {root / 'runs'}: run `python -m mmbench all --out {root}` first")
    img = site / "img"
    if img.exists():
        shutil.rmtree(img)  # plots of data sets no longer in the results must not linger
    img.mkdir(parents=True)
    for stale in site.glob("dataset-*.html"):
        stale.unlink()  # pages of data sets no longer in the results
    results = list(ResultsStore(root).all_results())
    runs = inputs.ok_runs(results_frame(results))
    steptime = _read_csv(root / "steptime.csv")
    datasets = _datasets(runs)
    seg_results = segmentation_inputs.segmentation_results(results)  # none: the site is built as before
    seg_datasets = segmentation_inputs.datasets(seg_results)
    if set(seg_datasets) & set(datasets):  # one page per name: the two kinds of page cannot share one
        raise ValueError(f"data set(s) {sorted(set(seg_datasets) & set(datasets))} hold both classification "
                         f"and segmentation runs in {root / 'runs'}; a data set has one task")
    overview = [
        _summary_section(root / "LEADERBOARD.md"),
        _robustness_section(runs, img),
        _ranks_section(root / "LEADERBOARD.json", img),
        _datasets_section(datasets),
    ]
    per_dataset = {ds: [_cost_section(runs, steptime, img, ds), _heatmap_section(runs, img, ds),
                        _gap_section(runs, img, ds), _traces_section(results, runs, img, ds)] for ds in datasets}
    if seg_datasets:
        from mmbench.report.site import segmentation_page

        overview.append(segmentation_page.index_section(seg_datasets, _dataset_page))
        per_dataset.update({ds: segmentation_page.dataset_sections(seg_results, ds, img) for ds in seg_datasets})
    kernels = [_kernel_section(root / "kernels.csv", img)]
    every = overview + [s for sections in per_dataset.values() for s in sections] + kernels
    progress(f"{sum(len(s.figures) for s in every)} plots")
    data = site / "data"
    data.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in DATA_FILES:
        if (root / name).exists():
            shutil.copyfile(root / name, data / name)
            copied.append(name)
    tables = [(title, _markdown_html(root / name)) for name, title in TABLE_PAGES if (root / name).exists()]
    kernels_md = root / "KERNELS.md"
    kernel_tables = [("Kernel benchmark", _markdown_html(kernels_md))] if kernels_md.exists() else []
    pages = [("index.html", "Overview", overview, [])]
    pages += [(_dataset_page(ds), ds, sections, []) for ds, sections in per_dataset.items()]
    pages += [("tables.html", "Tables", [Section("Cost: two numbers", "cost-numbers", COST_NOTE)], tables),
              ("kernels.html", "Kernels", kernels, kernel_tables)]
    nav = [(name, title) for name, title, _, _ in pages]
    machines = sorted(set(_machines(runs)) | {machine_line(r.get("env", {})) for r in seg_results})
    meta = _meta_line(machines, _newest_run(results), copied)
    for name, title, sections, page_tables in pages:
        write_text_atomic(site / name, _page(title, name, nav, sections, page_tables, meta, site))
    return site / "index.html"


def _dataset_page(dataset: str) -> str:
    return f"dataset-{_slug(dataset)}.html"


def _newest_run(results: List[dict]) -> str:
    """When the newest run finished (the page's date: the same results, the same page)."""
    stamps = sorted(str(r.get("finished_at")) for r in results if r.get("finished_at"))
    return stamps[-1] if stamps else ""


def _summary_section(leaderboard_md: Path) -> Section:
    """The "Which method should I use?" section of LEADERBOARD.md, as its tables write it."""
    s = Section("Which method should I use?", "which-method")
    text = leaderboard_md.read_text(encoding="utf-8") if leaderboard_md.exists() else ""
    start = text.find(SUMMARY_HEADING)
    if start < 0:
        s.missing.append("no summary in LEADERBOARD.md yet (`python -m mmbench table` writes it at the top); "
                         "the robustness plots below and the tables show the results meanwhile")
        return s
    body = text[start + len(SUMMARY_HEADING):]
    end = re.search(r"^## ", body, flags=re.M)
    s.html = markdown.markdown(body[:end.start()] if end else body, extensions=["tables"], output_format="html")
    return s


def _datasets_section(datasets: List[str]) -> Section:
    s = Section("Per data set", "datasets",
                "Accuracy against cost, accuracy per modality subset, under-optimisation gaps and coefficient "
                "traces, one page per data set. Every number is in the Tables page; the kernels have their own.")
    s.links = [(_dataset_page(ds), ds) for ds in datasets] + [("tables.html", "Tables"), ("kernels.html", "Kernels")]
    return s


def _read_csv(path: Path) -> Optional[pd.DataFrame]:
    return pd.read_csv(path) if path.exists() and path.stat().st_size else None


def _datasets(runs: pd.DataFrame) -> List[str]:
    return sorted(runs.dataset.unique()) if not runs.empty else []


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in text).strip("-").lower()


def _add(section: Section, fig, img: Path, name: str, caption: str) -> None:
    if fig is None:
        return
    figures.save(fig, img / f"{name}.svg")
    section.figures.append((f"img/{name}.svg", caption))


def _cost_section(runs, steptime, img, ds: str) -> Section:
    s = Section("Accuracy against cost", "cost",
                "Fused test accuracy (complete pattern, mean ± std over seeds) against the step time relative "
                "to joint training. The dashed line joins the Pareto front: no other method is both cheaper "
                "and more accurate. Methods far below the others sit in a strip under the plot. " + COST_NOTE)
    source = "the interleaved `steps` benchmark" if steptime is not None and (steptime.dataset == ds).any() \
        else "the runs' median step times (noisier)"
    _add(s, figures.cost_accuracy(inputs.cost_points(runs, steptime, ds), ds), img, f"cost-{_slug(ds)}",
         f"{ds}: accuracy against step-time cost; cost from {source}.")
    if not s.figures:
        s.missing.append("no finished complete-pattern runs")
    return s


def _heatmap_section(runs, img, ds: str) -> Section:
    s = Section("Accuracy per modality subset", "subsets",
                "Every non-empty subset of modalities present at test (the others missing); mean over seeds, %. "
                "Rows sorted by the full set. One colour scale for all the heatmaps of the data set: one "
                "colour is one accuracy in each of them.")
    patterns = sorted(runs[runs.dataset == ds].pattern.unique(), key=lambda p: (p != "complete", p))
    tables = {p: inputs.subset_table(runs, ds, p) for p in patterns}
    values = [v for t in tables.values() if not t.empty for v in t.to_numpy(dtype=float).ravel() if v == v]
    scale = (min(values), max(values)) if values else (None, None)
    for pattern in patterns:
        table = tables[pattern]
        _add(s, figures.subset_heatmap(table, f"trained under {pattern}", *scale), img,
             f"subsets-{_slug(ds)}-{_slug(pattern)}", f"{ds}, training pattern {pattern}: test accuracy per subset.")
    return s


def _robustness_section(runs, img) -> Section:
    s = Section("Robustness to missing modalities", "robustness",
                "Accuracy against the missing rate η: solid lines train and test at η (η = 0 is the complete "
                "pattern), dotted lines train on complete data and test at η; shaded: ± std over seeds. From "
                "the `robustness` suite (`python -m mmbench all --suite robustness`): the methods trained at "
                f"{MIN_TRAINING_RATES} or more rates.")
    s.intro += (" The papers' methods are drawn thick in strong colours, the baselines thin; every line is "
                "labelled at its end.")
    for ds in _datasets(runs):
        frame = inputs.robustness_frame(runs, ds)
        # only methods trained at several rates (the robustness suite's), so the curves stay readable
        trained_at = frame[frame.kind == "matched"].groupby("method").eta.nunique()
        frame = frame[frame.method.isin(trained_at[trained_at >= MIN_TRAINING_RATES].index)]
        if frame.empty or frame.eta.nunique() < 2:
            continue
        _add(s, figures.robustness_curves(frame, ds), img, f"robustness-{_slug(ds)}",
             f"{ds}: accuracy against the missing rate, per method.")
    if not s.figures:
        s.missing.append("no runs tested at several missing rates yet: run `python -m mmbench all --suite robustness`")
    return s


def _gap_section(runs, img, ds: str) -> Section:
    s = Section("Under-optimisation gap", "gap",
                "The accuracy of each modality trained alone (the `unimodal` run of the same seed) minus its "
                "accuracy inside the multimodal model (its probe), points, mean over seeds: the `gap` columns "
                "of the leaderboard. Positive: the multimodal model under-trains that modality, the imbalance "
                "these methods target.")
    _add(s, figures.gap_bars(inputs.unimodal_gaps(runs, ds), ds), img, f"gap-{_slug(ds)}",
         f"{ds}: unimodal accuracy minus probe accuracy, complete pattern.")
    if not s.figures:
        s.missing.append("needs `unimodal` runs beside the methods")
    return s


def _traces_section(results, runs, img, ds: str) -> Section:
    s = Section("Coefficients over training", "traces",
                "What the balancing methods computed, per epoch (mean over the epoch's steps), complete pattern, "
                "seed 0.")
    _add(s, figures.coefficient_traces(inputs.coefficient_traces(results, ds), ds), img, f"traces-{_slug(ds)}",
         f"{ds}: coefficient traces of the balancing methods.")
    if not s.figures:
        s.missing.append("no run recorded coefficient traces")
    return s


def _ranks_section(leaderboard_json: Path, img) -> Section:
    s = Section("Across data sets: each method against joint training", "ranks",
                "Bayesian signed-rank test (baycomp) of each method against joint training over the independent "
                "data-set groups, with a 1-point region of practical equivalence: P(worse), P(equivalent), "
                "P(better); * = Holm's test on the mean ranks (Demšar 2006, §3.2.2) says better or worse. Drawn "
                "from the rank tables of `LEADERBOARD.json`, so the page and the tables show the same numbers.")
    ranks = json.loads(leaderboard_json.read_text()).get("ranks", []) if leaderboard_json.exists() else []
    for summary in ranks:
        pattern, metric = summary["pattern"], summary["metric"]
        title = f"pattern {pattern}, {metric}: {summary.get('n_groups', 0)} independent groups"
        fig = figures.control_plot(summary, title)
        if fig is None:
            s.missing.append(f"pattern {pattern}, {metric}: {summary.get('reason') or 'no verdict'}")
            continue
        _add(s, fig, img, f"control-{_slug(pattern)}-{_slug(metric)}",
             f"Pattern {pattern}, {metric}: each method against {summary.get('control', 'joint')}.")
    if not ranks:
        s.missing.append("no rank table in LEADERBOARD.json (needs two data sets with the same methods; "
                         "`python -m mmbench table` writes it)")
    return s


def _kernel_section(path: Path, img) -> Section:
    s = Section("Kernels", "kernels",
                "Speedup of each provider over the fastest eager formulation a user would otherwise run, per "
                "shape, and the share of the roofline (bytes the op must move at the measured copy bandwidth). "
                "From `python -m mmbench bench` (`kernels.csv`); the device is named in the table below, "
                "followed by the compile resources of every Triton variant.")
    for op, frame in inputs.kernel_speedups(path).items():
        _add(s, figures.kernel_speedups(frame, op), img, f"kernel-{_slug(op)}", f"{op}: speedup and roofline share.")
    if not s.figures:
        s.missing.append("no kernel benchmark results (`python -m mmbench bench`)")
    return s


def _markdown_html(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # the file's own H1 becomes the section heading on the page
    lines = [ln for ln in text.splitlines() if not ln.startswith("# ")]
    body = markdown.markdown("\n".join(lines), extensions=["tables"], output_format="html")
    return body.replace("<h2>", "<h3>").replace("</h2>", "</h3>")


def _machines(runs: pd.DataFrame) -> List[str]:
    if runs.empty or "machine" not in runs:
        return []
    return sorted(runs.machine.dropna().unique().tolist())


def _meta_line(machines: List[str], newest: str, copied: List[str]) -> str:
    esc = html.escape
    when = f" Newest run: {esc(newest[:16].replace('T', ' '))} UTC." if newest else ""
    return (f'<p class="meta">Runs made on: {esc("; ".join(machines) or "unknown")}.{when} Data: '
            + ", ".join(f'<a href="data/{esc(n)}">{esc(n)}</a>' for n in copied) + "</p>")


def _figure_min_width(svg: Path) -> Optional[int]:
    """CSS px under which the figure's smallest text would render below :data:`MIN_TEXT_PX`, or None.

    The SVG keeps its text as ``<text>`` with ``font: <size>px`` in viewBox units, so the rendered
    size is size x (displayed width / viewBox width).
    """
    try:
        text = svg.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    box = re.search(r'viewBox="0 0 ([0-9.]+) ', text)
    sizes = [float(x) for x in re.findall(r"font(?:-size)?:[^;\"]*?([0-9.]+)px", text)]
    if not box or not sizes:
        return None
    return int(-(-MIN_TEXT_PX * float(box.group(1)) // min(sizes)))  # ceil


def _page(title: str, name: str, nav: List[tuple], sections: List[Section], tables, meta: str, site: Path) -> str:
    esc = html.escape
    current = ' aria-current="page"'
    links = " ".join(f'<a href="{esc(href)}"{current if href == name else ""}>{esc(text)}</a>' for href, text in nav)
    heading = "mmbench leaderboard" if name == "index.html" else f"mmbench: {title}"
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(heading)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<header>", f"<h1>{esc(heading)}</h1>",
        "<p>Modality imbalance and missing modalities: every method under the same protocol.</p>",
        f"<nav>{links}</nav>", "</header>", "<main>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2>')
        if s.intro:
            parts.append(f"<p>{_inline_code(s.intro)}</p>")
        if s.html:
            parts.append(f'<div class="summary">{s.html}</div>')
        if s.links:
            parts.append('<ul class="links">' + "".join(f'<li><a href="{esc(h)}">{esc(t)}</a></li>' for h, t in s.links)
                         + "</ul>")
        if s.tables:
            parts.append(s.tables)
        if s.figures:
            parts.append('<div class="figures">')
            for src, caption in s.figures:
                min_width = _figure_min_width(site / src)
                style = f' style="min-width: {min_width}px"' if min_width else ""
                parts.append(f'<figure><div class="plot"><img src="{esc(src)}" alt="{esc(caption)}"{style}></div>'
                             f"<figcaption>{_inline_code(caption)}</figcaption></figure>")
            parts.append("</div>")
        for note in s.missing:
            parts.append(f'<p class="missing">Not shown: {_inline_code(note)}.</p>')
        parts.append("</section>")
    for table_title, body in tables:
        parts.append(f'<section id="table-{_slug(table_title)}"><h2>{esc(table_title)}</h2>{body}</section>')
    parts += ["</main>", '<footer class="meta">', meta,
              "<p>Every method under the same encoders, data, splits and protocol: model selection on validation "
              "only, several seeds, every modality subset tested. Built by <code>python -m mmbench publish</code>. "
              "Click a column header to sort.</p></footer>", f"<script>{SORT_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts)


def _inline_code(text: str) -> str:
    """Escape ``text`` and render `backticks` as <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
