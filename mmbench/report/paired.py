"""Which methods are indistinguishable from the best one, with the family-wise error controlled.

The best method is picked from the data, so "compare everyone with the observed best" tests a
hypothesis chosen by the same noise it is tested on (with 22 identical methods the old procedure
marked some method worse 23% of the time). Instead every ordered pair (i, j) of a cell's methods
carries the one-sided hypothesis H_ij "i is not worse than j"; a method is marked worse when some
H_ij is rejected, and best-or-tied otherwise. The statistics are studentized differences
``t_ij = (m_j - m_i) / se_ij`` on the crossed design (seed s of every method shares split and masks,
every seed shares the test samples; see :mod:`mmbench.report.intervals` for the variance model), and
their joint null distribution is drawn all at once for the cell (a max-T procedure), with the
Westfall-Young step-down for adjusted p-values (Romano & Wolf 2005). Whatever method is truly best
(or all of several tied best), it is marked worse with probability <= alpha: the error is controlled
over the whole cell, not per comparison.

The null draws (a parametric bootstrap of the crossed design, ``python -m mmbench simulate`` checks it):

* seed part: for each method k, S draws ``a*_ks ~ N(0, g*_k)`` of its seed means, their mean the
  replicate's seed deviation and their sample variance its RE-ESTIMATED seed variance (studentizing by
  the re-estimate gives the statistic its t-like tails with 3 or 5 seeds; a resampling bootstrap over 3
  seeds has 10 distinct draws and too short tails). ``g*_k`` is drawn from the posterior of the
  observed seed variance g_k (scaled inverse chi-square, S - 1 df) rather than set to it: taking the
  estimates as the truth left the simulated family-wise error at 7.4% with 8 identical methods; with the
  draw it is 5.1% on the same trials. Different methods' seed deviations are drawn independently: a
  K x K covariance estimated from S seeds has rank S - 1 and ties 22 methods' draws to two directions
  (measured: 22% family-wise error); what a seed shares across methods (split, masks) cancels in a
  difference, so independence errs on the wide side;
* sample part: ``N(0, c* C_items)``, ``C_items = max(MP_sample - MP_resid, 0) / (S N)`` (eigenvalues
  clipped) the sample part of the K x K covariance of the method means, ``c*`` a scaled inverse
  chi-square draw with the Satterthwaite df of that estimate (the statistics keep the estimate).

Replicates: at least :data:`N_BOOT`; while some method's adjusted p-value lies within Monte Carlo
error of alpha, more are drawn (up to :data:`MAX_BOOT`); a method still within it is flagged
``mc_flag`` (its mark could flip with the bootstrap seed). The draws come from a generator seeded by
the cell (:func:`cell_seed`), recorded beside the marks.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from mmbench.engine.outcomes import OUTCOMES_VERSION  # noqa: F401  (the record layout this reads)
from mmbench.report.intervals import sample_scores

ALPHA = 0.05
N_BOOT = 10_000
MAX_BOOT = 160_000
CHUNK = 2_000
MC_Z = 3.0  # a p-value within 3 Monte Carlo standard errors of alpha is "unresolved"

MARK_COLUMNS = ["method", "best", "p_adj", "best_or_tied", "compared", "mc_flag", "paired_seeds"]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm-Bonferroni adjusted p-values (same order as given); NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    out = np.full_like(p, np.nan)
    valid = np.nonzero(~np.isnan(p))[0]
    order = valid[np.argsort(p[valid], kind="stable")]
    m, running = len(order), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))  # monotone step-down
        out[i] = running
    return out


def cell_seed(*parts: str) -> int:
    """A bootstrap seed derived from what identifies the comparison (data set, pattern, metric)."""
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:4], "little")


def _psd(m: np.ndarray) -> np.ndarray:
    """``m`` with negative eigenvalues set to zero (a covariance estimate made by subtraction)."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    return (vecs * np.clip(vals, 0, None)) @ vecs.T


def _pair_var(cov: np.ndarray) -> np.ndarray:
    """``[..., K, K]`` covariance -> ``[..., K, K]`` variance of every difference ``x_j - x_i``."""
    d = np.diagonal(cov, axis1=-2, axis2=-1)
    return d[..., :, None] + d[..., None, :] - 2 * cov


def design_parts(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """``x`` ``[K, S, N]`` -> (means ``[K]``, seed deviations ``[K, S]``, sample covariance part ``[K, K]``,
    degrees of freedom of the sample part's estimate).

    The covariance of the method means is estimated as ``diag(seed variances) / S + C_items``; the
    degrees of freedom are Satterthwaite's for ``MP_sample - MP_resid`` of a difference of two methods
    (the median over the pairs).
    """
    K, S, N = x.shape
    m = x.mean(axis=(1, 2))
    seed_dev = x.mean(axis=2) - m[:, None]  # [K, S]
    sample_dev = x.mean(axis=1) - m[:, None]  # [K, N]
    mp_sample = S * (sample_dev @ sample_dev.T) / max(N - 1, 1)
    if S == 1:
        return m, seed_dev, mp_sample / N, float(max(N - 1, 1))
    centred = (x - m[:, None, None]).reshape(K, S * N)
    sp_resid = centred @ centred.T - N * (seed_dev @ seed_dev.T) - S * (sample_dev @ sample_dev.T)
    mp_resid = sp_resid / ((S - 1) * max(N - 1, 1))
    iu, ju = np.triu_indices(K, 1)
    pb, pe = _pair_var(mp_sample)[iu, ju], _pair_var(mp_resid)[iu, ju]
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = (pb - pe) ** 2 / (pb ** 2 / max(N - 1, 1) + pe ** 2 / ((S - 1) * max(N - 1, 1)))
    nu = nu[np.isfinite(nu) & (pb > pe)]
    df = float(np.clip(np.median(nu), 1.0, N - 1)) if len(nu) else float(max(N - 1, 1))
    return m, seed_dev, _psd(mp_sample - mp_resid) / (S * N), df


def _studentized(diff: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``diff / sqrt(var)``; 0 where both vanish (identical predictions), +-inf where only var does."""
    with np.errstate(divide="ignore", invalid="ignore"):
        t = diff / np.sqrt(np.clip(var, 0, None))
    t[np.isnan(t)] = 0.0
    return t


class MaxT:
    """The cell's observed pair statistics and a growing set of null draws of them.

    Pairs: each unordered pair (i < j) gives two one-sided hypotheses, "i not worse than j" (statistic t)
    and "j not worse than i" (-t). Only the one the observed t points against can be rejected; the other
    enters the step-down through the maximum over the hypotheses not yet rejected.
    """

    def __init__(self, x: np.ndarray, seed: int):
        self.K, self.S, _ = x.shape
        self.m, self.seed_dev, c_items, self.item_df = design_parts(x)
        vals, vecs = np.linalg.eigh(c_items)
        self.item_root = vecs * np.sqrt(np.clip(vals, 0, None))  # [K, K]: root @ root.T = c_items
        # per-method seed variance; seed deviations of different methods are taken as independent (each
        # method's training randomness is its own; what seed s shares across methods, split and masks,
        # moves them together and cancels in a difference, so this errs on the wide side)
        self.seed_var = (self.seed_dev ** 2).sum(axis=1) / (self.S - 1) if self.S > 1 else np.zeros(self.K)
        iu, ju = np.triu_indices(self.K, 1)
        item_pair_var = _pair_var(c_items)[iu, ju]
        t = _studentized(self.m[ju] - self.m[iu], (self.seed_var[iu] + self.seed_var[ju]) / self.S + item_pair_var)
        # each unordered pair is a candidate rejection in the direction its observed t points to: orient
        # every pair so that t >= 0 ("better" ahead of "worse"), then order the candidates from the least
        # to the most significant, so one forward running maximum gives the step-down's "max over the rest"
        worse, better = np.where(t >= 0, iu, ju), np.where(t >= 0, ju, iu)
        t = np.abs(t)
        order = np.argsort(t, kind="stable")
        self.tied_pairs = int(np.sum(t == 0))  # observed ties: never rejected, both directions in every "rest"
        self.worse, self.better, self.t_obs = worse[order], better[order], t[order]
        self.item_pair_var = item_pair_var[order]
        P2 = len(order)
        self.incidence = np.zeros((self.K, P2))  # dev @ incidence = dev[better] - dev[worse]
        self.incidence[self.better, np.arange(P2)] = 1.0
        self.incidence[self.worse, np.arange(P2)] = -1.0
        self.abs_incidence = np.abs(self.incidence)
        self.exceed = np.zeros(P2, dtype=np.int64)
        self.n_boot = 0
        self.rng = np.random.default_rng(seed)

    def draw(self, n: int) -> None:
        """Add ``n`` null replicates to the step-down exceedance counts."""
        K, S = self.K, self.S
        for start in range(0, n, CHUNK):
            b = min(CHUNK, n - start)
            # the draw's true variances: the estimates' posterior (scaled inverse chi-square), so the null
            # integrates over the truths the estimates allow instead of taking them as the truth
            item_scale = self.item_df / self.rng.chisquare(self.item_df, size=(b, 1))
            dev = (self.rng.standard_normal((b, K)) @ self.item_root.T) * np.sqrt(item_scale)  # [b, K] sample part
            var = np.broadcast_to(self.item_pair_var, (b, len(self.t_obs)))
            if S > 1:
                seed_var = self.seed_var * (S - 1) / self.rng.chisquare(S - 1, size=(b, 1, K))
                a = self.rng.standard_normal((b, S, K)) * np.sqrt(seed_var)  # [b, S, K] seed means
                dev = dev + a.mean(axis=1)
                var = var + (a.var(axis=1, ddof=1) / S) @ self.abs_incidence  # re-estimated seed part
            t = (dev @ self.incidence) / np.sqrt(np.maximum(var, 1e-300))  # [b, P2], least significant first
            # each pair's other direction (-t) is never rejected: it is in every "rest" (observed ties, t = 0,
            # come first, so the running maximum holds their own direction too)
            tail = (-t).max(axis=1)
            running = np.maximum.accumulate(t, axis=1)  # max over this candidate and every less significant one
            running = np.maximum(running, tail[:, None])
            self.exceed += (running >= self.t_obs[None, :] - 1e-12).sum(axis=0)
            self.n_boot += b

    def method_p(self) -> np.ndarray:
        """``[K]`` step-down adjusted p-value of "method i is worse than some other method"."""
        out = np.ones(self.K)
        p = (self.exceed + 1) / (self.n_boot + 1)
        # step-down monotonicity: a candidate's p is at least that of every more significant one
        p = np.maximum.accumulate(p[::-1])[::-1]
        candidates = slice(self.tied_pairs, None)  # observed ties are never rejected
        np.minimum.at(out, self.worse[candidates], p[candidates])
        return out


def unresolved(p: np.ndarray, n_boot: int, alpha: float = ALPHA) -> np.ndarray:
    """Which p-values lie within Monte Carlo error of ``alpha`` (their mark could flip)."""
    return np.abs(p - alpha) <= MC_Z * np.sqrt(alpha * (1 - alpha) / n_boot)


def max_t_marks(x: np.ndarray, seed: int, alpha: float = ALPHA, n_boot: int = N_BOOT,
                max_boot: int = MAX_BOOT) -> Dict[str, np.ndarray]:
    """Marks of the K methods of one comparison from ``x`` ``[K, S, N]`` (methods x seeds x samples).

    Returns ``mean`` ``[K]``, ``p_adj`` ``[K]`` (family-wise adjusted p of "worse than some method"),
    ``best_or_tied`` ``[K]`` bool, ``mc_flag`` ``[K]`` bool and ``n_boot`` (replicates drawn).
    """
    x = np.asarray(x, dtype=float)
    if x.ndim != 3 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"need a [methods, seeds, samples] score tensor, got shape {x.shape}")
    if x.shape[0] == 1:
        return {"mean": x.mean(axis=(1, 2)), "p_adj": np.ones(1), "best_or_tied": np.ones(1, bool),
                "mc_flag": np.zeros(1, bool), "n_boot": 0}
    test = MaxT(x, seed)
    test.draw(n_boot)
    p = test.method_p()
    while unresolved(p, test.n_boot, alpha).any() and test.n_boot < max_boot:
        test.draw(min(test.n_boot, max_boot - test.n_boot))  # double until resolved
        p = test.method_p()
    return {"mean": test.m, "p_adj": p, "best_or_tied": p > alpha,
            "mc_flag": unresolved(p, test.n_boot, alpha), "n_boot": test.n_boot}


def comparison_tensor(cells: Dict[str, pd.DataFrame], metric: str
                      ) -> Tuple[List[str], Optional[np.ndarray], List[int]]:
    """The methods that can be compared sample by sample, their ``[K, S, N]`` scores and the seeds.

    The seeds used are those most methods share (the commonest seed set; ties -> the larger); a method
    enters when it has every one of them with per-sample outcomes on the same test samples, with the
    same masks as the other methods' run of that seed. The rest are "not compared".
    """
    per_method: Dict[str, Dict[int, dict]] = {}
    for method, runs in cells.items():
        if metric not in runs or "outcomes" not in runs:
            continue
        recs = {int(seed): rec for seed, rec in zip(runs["seed"], runs["outcomes"])
                if isinstance(rec, dict) and sample_scores(rec, metric) is not None}
        if recs:
            per_method[method] = recs
    if not per_method:
        return [], None, []
    seed_sets = Counter(frozenset(r) for r in per_method.values())
    seeds = sorted(max(seed_sets, key=lambda s: (seed_sets[s], len(s))))
    # the reference record of each seed: what the commonest (test ids, masks) of that seed is
    refs = {}
    for s in seeds:
        keys = Counter((r[s].get("test_ids_sha"), r[s].get("mask_seed"), r[s].get("test_mask_sha"), int(r[s]["n"]))
                       for r in per_method.values() if s in r)
        refs[s] = keys.most_common(1)[0][0]
    if len({refs[s][0] for s in seeds}) != 1:
        return [], None, []  # the seeds were scored on different test sets: not the crossed design
    methods, tables = [], []
    for method in sorted(per_method):
        recs = per_method[method]
        if not all(s in recs and (recs[s].get("test_ids_sha"), recs[s].get("mask_seed"), recs[s].get("test_mask_sha"),
                                  int(recs[s]["n"])) == refs[s] for s in seeds):
            continue
        methods.append(method)
        tables.append(np.stack([sample_scores(recs[s], metric) for s in seeds]))
    return methods, (np.stack(tables) if tables else None), seeds


def best_or_tied(cells: Dict[str, pd.DataFrame], metric: str, seed: int = 0, alpha: float = ALPHA,
                 n_boot: int = N_BOOT) -> Tuple[pd.DataFrame, Dict[str, int]]:
    """Mark the best method of one data set and pattern and those indistinguishable from it.

    Args:
        cells: method -> that method's runs in this data set and pattern (ONE cell each; columns
            ``seed``, ``metric``, ``outcomes``).
        metric: ``test_acc``, ``masked_test_acc``, ``subset_mean`` or an outcome name.
        seed: the bootstrap seed (the leaderboard derives it from the cell with :func:`cell_seed`).
    Returns:
        (one row per method: ``method``, ``best`` (highest mean among those compared), ``p_adj``
        (family-wise adjusted p of "worse than some method"), ``best_or_tied``, ``compared`` (False:
        no per-sample outcomes, or another split or masks: not tested, and not "worse" either),
        ``mc_flag`` (mark within Monte Carlo error), ``paired_seeds``; and ``{"seed", "n_boot"}``).
    """
    methods, x, seeds = comparison_tensor(cells, metric)
    rows = {m: {"method": m, "best": False, "p_adj": np.nan, "best_or_tied": False, "compared": False,
                "mc_flag": False, "paired_seeds": 0}
            for m, r in cells.items() if metric in r and r[metric].notna().any()}
    info = {"seed": int(seed), "n_boot": 0}
    if x is not None:
        marks = max_t_marks(x, seed, alpha, n_boot)
        info["n_boot"] = int(marks["n_boot"])
        best = int(np.argmax(marks["mean"]))
        for k, m in enumerate(methods):
            rows[m].update({"best": k == best, "p_adj": float(marks["p_adj"][k]),
                            "best_or_tied": bool(marks["best_or_tied"][k]), "compared": True,
                            "mc_flag": bool(marks["mc_flag"][k]), "paired_seeds": len(seeds)})
    return pd.DataFrame(list(rows.values()), columns=MARK_COLUMNS), info
