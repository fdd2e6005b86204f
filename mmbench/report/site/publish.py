"""``python -m mmbench publish``: a static, self-contained leaderboard site from the results folder.

Writes ``<results>/site/``::

    index.html          every table of LEADERBOARD.md / STEPTIME.md / KERNELS.md (sortable), the
                        plots with captions, the machines and software of the runs
    img/*.svg           the plots (matplotlib)
    data/*              copies of LEADERBOARD.{csv,json}, steptime.csv, kernels.csv, so the folder
                        can be served from any static host on its own

The tables are the Markdown tables themselves, converted with Python-Markdown, so the page can never
disagree with ``LEADERBOARD.md``: rebuild the tables first (``all`` and ``table`` do), then publish.
No server, no network: the page opens from the file system.
"""
from __future__ import annotations

import html
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import markdown
import pandas as pd

from mmbench.report.frame import results_frame
from mmbench.report.site import figures, inputs
from mmbench.report.site.static import CSS, SORT_JS
from mmbench.results_store import ResultsStore, write_text_atomic

DATA_FILES = ("LEADERBOARD.csv", "LEADERBOARD.json", "steptime.csv", "kernels.csv")
MIN_TRAINING_RATES = 3  # a robustness curve needs a method trained at this many missing rates
TABLE_PAGES = (("LEADERBOARD.md", "Leaderboard"), ("STEPTIME.md", "Step time"), ("KERNELS.md", "Kernels"))


@dataclass
class Section:
    """One block of the page: a heading, an intro, figures (``(src, caption)``), notes on absent plots."""

    title: str
    anchor: str
    intro: str = ""
    figures: List[tuple] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)


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
    results = list(ResultsStore(root).all_results())
    runs = inputs.ok_runs(results_frame(results))
    steptime = _read_csv(root / "steptime.csv")
    sections = [
        _cost_section(runs, steptime, img),
        _heatmap_section(runs, img),
        _robustness_section(runs, img),
        _gap_section(runs, img),
        _traces_section(results, runs, img),
        _ranks_section(root / "LEADERBOARD.json", img),
        _kernel_section(root / "kernels.csv", img),
    ]
    progress(f"{sum(len(s.figures) for s in sections)} plots")
    data = site / "data"
    data.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in DATA_FILES:
        if (root / name).exists():
            shutil.copyfile(root / name, data / name)
            copied.append(name)
    tables = [(title, _markdown_html(root / name)) for name, title in TABLE_PAGES if (root / name).exists()]
    page = _page(sections, tables, copied, _machines(runs))
    index = site / "index.html"
    write_text_atomic(index, page)
    return index


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


def _cost_section(runs, steptime, img) -> Section:
    s = Section("Accuracy against cost", "cost",
                "Fused test accuracy (complete pattern, mean ± std over seeds) against the step time relative "
                "to joint training. The dashed line joins the Pareto front: no other method is both cheaper "
                "and more accurate.")
    for ds in _datasets(runs):
        source = "the interleaved `steps` benchmark" if steptime is not None and (steptime.dataset == ds).any() \
            else "the runs' median step times (noisier)"
        _add(s, figures.cost_accuracy(inputs.cost_points(runs, steptime, ds), ds), img, f"cost-{_slug(ds)}",
             f"{ds}: accuracy against step-time cost; cost from {source}.")
    if not s.figures:
        s.missing.append("no finished complete-pattern runs")
    return s


def _heatmap_section(runs, img) -> Section:
    s = Section("Accuracy per modality subset", "subsets",
                "Every non-empty subset of modalities present at test (the others missing); mean over seeds, %. "
                "Rows sorted by the full set.")
    for ds in _datasets(runs):
        for pattern in sorted(runs[runs.dataset == ds].pattern.unique(), key=lambda p: (p != "complete", p)):
            table = inputs.subset_table(runs, ds, pattern)
            _add(s, figures.subset_heatmap(table, f"{ds}, trained under `{pattern}`"), img,
                 f"subsets-{_slug(ds)}-{_slug(pattern)}", f"{ds}, training pattern {pattern}: test accuracy per subset.")
    return s


def _robustness_section(runs, img) -> Section:
    s = Section("Robustness to missing modalities", "robustness",
                "Accuracy against the missing rate η: solid lines train and test at η (η = 0 is the complete "
                "pattern), dotted lines train on complete data and test at η; shaded: ± std over seeds. From "
                "the `robustness` suite (`python -m mmbench all --suite robustness`): the methods trained at "
                f"{MIN_TRAINING_RATES} or more rates.")
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


def _gap_section(runs, img) -> Section:
    s = Section("Under-optimisation gap", "gap",
                "The accuracy of each modality trained alone (the `unimodal` run of the same seed) minus its "
                "accuracy inside the multimodal model (its probe), points, mean over seeds: the `gap` columns "
                "of the leaderboard. Positive: the multimodal model under-trains that modality, the imbalance "
                "these methods target.")
    for ds in _datasets(runs):
        _add(s, figures.gap_bars(inputs.unimodal_gaps(runs, ds), ds), img, f"gap-{_slug(ds)}",
             f"{ds}: unimodal accuracy minus probe accuracy, complete pattern.")
    if not s.figures:
        s.missing.append("needs `unimodal` runs beside the methods")
    return s


def _traces_section(results, runs, img) -> Section:
    s = Section("Coefficients over training", "traces",
                "What the balancing methods computed, per epoch (mean over the epoch's steps), complete pattern, "
                "seed 0.")
    for ds in _datasets(runs):
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
                "From `python -m mmbench bench` (`kernels.csv`); the device is named in the Kernels table below.")
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


def _page(sections: List[Section], tables, copied: List[str], machines: List[str]) -> str:
    esc = html.escape
    nav = " ".join(f'<a href="#{s.anchor}">{esc(s.title)}</a>' for s in sections)
    nav += " " + " ".join(f'<a href="#table-{_slug(t)}">{esc(t)}</a>' for t, _ in tables)
    parts = [
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>mmbench leaderboard</title>", f"<style>{CSS}</style>", "</head>", "<body>",
        "<header>", "<h1>mmbench leaderboard</h1>",
        "<p>Modality imbalance and missing modalities: every method under the same encoders, data, splits "
        "and protocol (model selection on validation only, several seeds, every modality subset tested).</p>",
        f'<p class="meta">Runs made on: {esc("; ".join(machines) or "unknown")}. Page built '
        f'{time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}. Data: '
        + ", ".join(f'<a href="data/{esc(n)}">{esc(n)}</a>' for n in copied) + "</p>",
        f"<nav>{nav}</nav>", "</header>", "<main>",
    ]
    for s in sections:
        parts.append(f'<section id="{s.anchor}"><h2>{esc(s.title)}</h2><p>{_inline_code(s.intro)}</p>')
        parts.append('<div class="figures">')
        for src, caption in s.figures:
            parts.append(f'<figure><img src="{esc(src)}" alt="{esc(caption)}" loading="lazy">'
                         f"<figcaption>{_inline_code(caption)}</figcaption></figure>")
        parts.append("</div>")
        for note in s.missing:
            parts.append(f'<p class="missing">Not shown: {_inline_code(note)}.</p>')
        parts.append("</section>")
    for title, body in tables:
        parts.append(f'<section id="table-{_slug(title)}"><h2>{esc(title)}</h2>{body}</section>')
    parts += ["</main>", '<footer class="meta"><p>Built by <code>python -m mmbench publish</code>. '
              "Click a column header to sort.</p></footer>", f"<script>{SORT_JS}</script>", "</body>", "</html>"]
    return "\n".join(parts)


def _inline_code(text: str) -> str:
    """Escape ``text`` and render `backticks` as <code>."""
    pieces = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(pieces))
