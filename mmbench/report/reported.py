"""Numbers the papers report (``results/reported.yaml``), shown beside mmbench's, clearly apart.

The file lists, per entry: ``dataset``, ``method`` (mmbench's name), ``paper_method``, ``metric``
(``acc`` / ``f1``, in %), ``value``, ``source``, ``table``, ``epoch_on_test``, ``setting``, ``checked``.
A data set's reported section appears in the leaderboard only when mmbench has runs on a data set of
that name (or one of its aliases; case and punctuation ignored).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

import yaml
from tabulate import tabulate

REQUIRED = ("dataset", "method", "metric", "value", "source", "epoch_on_test", "checked")


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def load_reported(path: Path | str) -> Dict[str, Any]:
    """The parsed file, checked; ``{}`` when it does not exist. Bad entries raise naming file and entry."""
    path = Path(path)
    if not path.exists():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    for i, entry in enumerate(data.get("entries", [])):
        missing = [k for k in REQUIRED if k not in entry]
        if missing:
            what = f"{entry.get('dataset')}/{entry.get('method')}"
            raise ValueError(f"{path}: entry {i} ({what}) lacks {', '.join(missing)}")
        if entry["metric"] not in ("acc", "f1"):
            raise ValueError(f"{path}: entry {i} has metric {entry['metric']!r} (allowed: acc, f1)")
    return data


def match_dataset(reported: Dict[str, Any], dataset: str) -> Optional[str]:
    """The reported data set key that mmbench's ``dataset`` name is (itself or an alias), else None."""
    for key, info in (reported.get("datasets") or {}).items():
        names = [key] + list((info or {}).get("aliases", []))
        if _norm(dataset) in {_norm(n) for n in names}:
            return key
    return None


# reported metric -> the leaderboard column holding mmbench's own value of it (complete pattern)
OWN_COLUMN = {"acc": "test_acc", "f1": "test_f1"}


def own_value(agg, dataset: Optional[str], method: str, metric: str) -> str:
    """mmbench's mean (%, with n) of ``metric`` for ``method`` (its default row, no overrides) on ``dataset``
    under the complete pattern, from the aggregate frame ``agg``; ``"-"`` when there is none."""
    if agg is None or dataset is None or getattr(agg, "empty", True):
        return "-"
    col = OWN_COLUMN[metric]
    rows = agg[(agg.dataset == dataset) & (agg.pattern == "complete") & (agg.row == method)]
    if rows.empty or f"{col}|mean" not in rows:
        return "-"
    r = rows.iloc[0]
    return f"{100 * r[f'{col}|mean']:.2f} ({int(r[f'{col}|count'])})"


def reported_table(reported: Dict[str, Any], key: str, agg=None, dataset: Optional[str] = None) -> str:
    """Markdown table of the reported numbers for one data set key.

    With ``agg`` (the leaderboard's aggregate frame) and ``dataset`` (mmbench's name of the data set), a
    column gives mmbench's own value of the same metric (accuracy or macro-F1) for the same method, mean
    over seeds with n, beside each reported one.
    """
    rows: List[list] = []
    for e in reported.get("entries", []):
        if e["dataset"] != key:
            continue
        source = e["source"] + (f" ({e['table']})" if e.get("table") else "")
        setting = e.get("setting", "") + (f"; {e['note']}" if e.get("note") else "")
        own = [own_value(agg, dataset, e["method"], e["metric"])] if agg is not None else []
        rows.append([e["method"], e.get("paper_method", ""), e["metric"], f"{e['value']:.2f}"] + own
                    + ["yes" if e["epoch_on_test"] else "no", e["checked"], source, setting])
    own_header = ["mmbench % (n)"] if agg is not None else []
    return tabulate(sorted(rows), headers=["method", "as named there", "metric", "%"] + own_header
                    + ["epoch chosen on test", "checked", "source", "setting"], tablefmt="github",
                    disable_numparse=True)


def reported_sections(reported: Dict[str, Any], datasets: Iterable[str], agg=None) -> List[str]:
    """Markdown lines: one "reported elsewhere" section per run data set that the file lists (with
    mmbench's own accuracy / macro-F1 beside each entry when ``agg`` is given, :func:`reported_table`)."""
    parts: List[str] = []
    for dataset in sorted(datasets):
        key = match_dataset(reported, dataset)
        if key is None:
            continue
        parts += [
            f"## {dataset}: numbers reported elsewhere (not mmbench runs)",
            "",
            "From `results/reported.yaml`. Other splits, encoders, epochs and often test-set model selection: "
            "compare them with each other and with mmbench's only as references, never as one ranking."
            + (" `mmbench % (n)`: this board's value of the same metric (accuracy or macro-F1) for the same "
               "method, complete pattern, mean over n seeds." if agg is not None else ""),
            "",
            reported_table(reported, key, agg, dataset),
            "",
        ]
    return parts
