"""From the results folder to the inputs of the page's plots.

Everything here reads what ``python -m mmbench all`` / ``steps`` / ``bench`` already wrote (the runs
frame, ``steptime.csv``, ``kernels.csv``); nothing is recomputed by training. Accuracies come out in
percent.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from mmbench.report.imbalance import UNIMODAL_METHOD as UNIMODAL
from mmbench.report.imbalance import add_gaps

BASELINE = "joint"
ROOFLINE_METRICS = ("roofline_pct", "pct_copy_bw")  # percent of the time the op's bytes need at copy bandwidth


def ok_runs(df: pd.DataFrame) -> pd.DataFrame:
    """Finished runs with the suite's own settings (rows labelled with overrides are left out:
    a plot point aggregates identical settings only, as the tables do)."""
    if df.empty or "status" not in df:
        return df.iloc[0:0]
    out = df[df.status == "ok"]
    if "overrides" in out:
        out = out[out.overrides.fillna("") == ""]
    return out


def _mean_err(values: pd.Series) -> tuple:
    values = values.dropna().astype(float)
    if values.empty:
        return float("nan"), float("nan")
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return 100 * float(values.mean()), 100 * std


def cost_points(runs: pd.DataFrame, steptime: Optional[pd.DataFrame], dataset: str) -> pd.DataFrame:
    """``method, cost, acc, acc_err`` for one data set, complete pattern.

    Cost: the median step-time ratio to joint training from the interleaved ``steps`` benchmark when
    it covers the method (its ratios are taken within a round), else the ratio of the runs' median
    step times (noisier: runs timed at different moments)."""
    sub = runs[(runs.dataset == dataset) & (runs.pattern == "complete")]
    if sub.empty:
        return pd.DataFrame(columns=["method", "cost", "acc", "acc_err"])
    ratios: Dict[str, float] = {}
    if steptime is not None and not steptime.empty and "ratio" in steptime:
        st = steptime[steptime.dataset == dataset]
        ratios = st.groupby("method").ratio.median().to_dict()
    joint_ms = sub[sub.method == BASELINE].step_ms.median() if "step_ms" in sub else float("nan")
    rows = []
    for method, grp in sub.groupby("method"):
        cost = ratios.get(method)
        if cost is None:
            cost = float(grp.step_ms.median() / joint_ms) if joint_ms and np.isfinite(joint_ms) else float("nan")
        acc, err = _mean_err(grp.test_acc)
        rows.append({"method": method, "cost": cost, "acc": acc, "acc_err": err})
    out = pd.DataFrame(rows)
    return out[np.isfinite(out.cost) & np.isfinite(out.acc)].reset_index(drop=True)


def subset_table(runs: pd.DataFrame, dataset: str, pattern: str) -> pd.DataFrame:
    """Methods x modality subsets (mean test accuracy over seeds, %), larger subsets first."""
    sub = runs[(runs.dataset == dataset) & (runs.pattern == pattern)]
    cols = [c for c in sub.columns if c.startswith("subset:") and sub[c].notna().any()]
    if sub.empty or not cols:
        return pd.DataFrame()
    cols = sorted(cols, key=lambda c: (-c.count("+"), c))
    table = 100 * sub.groupby("method")[cols].mean()
    table.columns = [c[len("subset:"):] for c in cols]
    return table.sort_values(table.columns[0], ascending=False)


def unimodal_gaps(runs: pd.DataFrame, dataset: str, pattern: str = "complete") -> pd.DataFrame:
    """Methods x modalities: the under-optimisation gap (``gap:<m>`` of :func:`mmbench.report.imbalance.add_gaps`:
    the modality trained alone minus its probe inside the multimodal model, paired by seed), mean over
    seeds, in points. Positive: the multimodal model under-trains that modality."""
    sub = add_gaps(runs[(runs.dataset == dataset) & (runs.pattern == pattern)])
    cols = [c for c in sub.columns if c.startswith("gap:") and sub[c].notna().any()]
    sub = sub[sub.method != UNIMODAL]
    if sub.empty or not cols:
        return pd.DataFrame()
    table = 100 * sub.groupby("method")[cols].mean().dropna(how="all")
    table.columns = [c[len("gap:"):] for c in cols]
    return table.sort_index()


def robustness_frame(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """``method, eta, acc, acc_err, kind`` from runs that were tested at several missing rates.

    A run stores ``masked_test_acc_at`` = {eta_test: acc}. ``matched``: trained at eta (``complete``
    counts as eta 0) and tested at the same eta; ``complete-trained``: trained on complete data and
    tested at eta."""
    col = "masked_test_acc_at"
    sub = runs[runs.dataset == dataset]
    if sub.empty or col not in sub:
        return pd.DataFrame(columns=["method", "eta", "acc", "acc_err", "kind"])
    rows: List[dict] = []
    for (method, pattern), grp in sub.groupby(["method", "pattern"]):
        train_eta = _train_eta(pattern)
        if train_eta is None:
            continue
        per_rate: Dict[float, List[float]] = {}
        for at, full in zip(grp[col], grp.test_acc):
            if not isinstance(at, dict):
                continue
            at = {float(k): v for k, v in at.items()}
            at.setdefault(0.0, full)
            for eta, acc in at.items():
                per_rate.setdefault(eta, []).append(acc)
        for eta, accs in per_rate.items():
            acc, err = _mean_err(pd.Series(accs))
            if abs(eta - train_eta) < 1e-9:
                rows.append({"method": method, "eta": eta, "acc": acc, "acc_err": err, "kind": "matched"})
            if train_eta == 0.0:
                rows.append({"method": method, "eta": eta, "acc": acc, "acc_err": err, "kind": "complete-trained"})
    return pd.DataFrame(rows, columns=["method", "eta", "acc", "acc_err", "kind"])


def _train_eta(pattern: str) -> Optional[float]:
    if pattern == "complete":
        return 0.0
    parts = pattern.split("-")
    if parts[0] == "missing" and len(parts) >= 2:
        try:
            eta = float(parts[1])
        except ValueError:
            return None
        # missing-<eta>-<modality> drops one named modality: another curve, not this one
        if len(parts) == 2 or _is_number(parts[2]):
            return eta
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def coefficient_traces(results: List[dict], dataset: str, seed: int = 0) -> Dict[str, Dict[str, List[float]]]:
    """method -> coefficient -> per-epoch values, for the complete pattern and one seed.

    A run's history entries may hold ``coefficients: {name: value}`` (the per-epoch mean of what the
    balancing method logged)."""
    traces: Dict[str, Dict[str, List[float]]] = {}
    for r in results:
        spec = r.get("spec", {})
        if (r.get("status") != "ok" or spec.get("dataset") != dataset or spec.get("pattern") != "complete"
                or spec.get("seed") != seed or spec.get("overrides")):
            continue
        series: Dict[str, List[float]] = {}
        for entry in r.get("history", []):
            for name, value in (entry.get("coefficients") or {}).items():
                if isinstance(value, (int, float)):
                    series.setdefault(name, []).append(float(value))
        if series:
            traces[spec["method"]] = series
    return traces


def kernel_speedups(path: Path) -> Dict[str, pd.DataFrame]:
    """op -> ``shape, provider, speedup, roofline_pct`` from ``kernels.csv`` (forward+backward where
    timed, else forward), speedup over the fastest eager formulation of the same cell."""
    if not path.exists():
        return {}
    df = pd.read_csv(path)
    if "metric" not in df or "op" not in df:
        return {}
    times = df[(df.metric == "median_ms") & df.value.notna()].copy()
    if times.empty:
        return {}
    eager_like = {"eager", "released", "released_compile", "compile"}
    out: Dict[str, pd.DataFrame] = {}
    for op, grp in times.groupby("op"):
        mode = "fwd_bwd" if (grp["mode"] == "fwd_bwd").any() else grp["mode"].iloc[0]
        grp = grp[(grp["mode"] == mode) & (grp.dtype == "float32")]
        rows = []
        for shape, cell in grp.groupby("shape", sort=False):
            base = cell[cell.provider.isin(eager_like)].value.min()
            for row in cell.itertuples():
                if row.provider in eager_like and row.provider != "eager":
                    continue
                pct = float("nan")
                roof = df[(df.op == op) & (df["shape"] == shape) & (df["mode"] == mode) & (df.provider == row.provider)
                          & df.metric.isin(ROOFLINE_METRICS)]
                if not roof.empty:
                    pct = float(roof.value.iloc[0])
                rows.append({"shape": shape, "provider": row.provider, "speedup": base / row.value, "roofline_pct": pct})
        if rows:
            out[f"{op} ({mode}, float32)"] = pd.DataFrame(rows)
    return out
