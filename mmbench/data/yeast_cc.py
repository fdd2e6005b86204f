"""Yeast cell cycle (Spellman et al. 1998): 800 genes, 5 cell-cycle phases, five expression experiments.

Views (why natural: each is a separate synchronisation experiment, measured on its own array run):
``alpha`` (18 time points, alpha-factor arrest), ``cdc15`` (24), ``cdc28`` (17), ``elu`` (14,
elutriation); the 2 + 2 values of the cln3 / clb2 inductions are left out (scripts/make_yeast_cc.py).
Classes (phase): M/G1 113, G1 300, S 71,
G2 120, M 196 (majority 37.5%). Split: stratified 60/20/20 (480/160/160), ``split_seed``.
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): alpha .719 (.630),
cdc15 .786 (.728), cdc28 .744 (.648), elu .521 (.401); all views .892 (.849).

Natural missing modalities: the source has gaps (NaN). A view counts missing for a gene when more
than 25% of its values are missing (``missing_above``); 70 of 800 genes lack at least one view
(alpha 13, cdc15 55, cdc28 4, elu 8), none lacks all. (Most genes miss one or two single values, e.g.
629 miss part of cdc28: those are imputed, not counted missing.) These gaps are the ``natural``
pattern's train and test masks; every remaining NaN (also inside a view counted missing) is imputed
with the train split's column mean (:mod:`mmbench.data.tabular`).
Data: kohonen 3.0.11 (R. Wehrens, J. Kruisselbrink; GPL-2+), Debian r-cran-kohonen;
files/yeast-cc.LICENSE.txt, converted by scripts/make_yeast_cc.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = ("Spellman et al. (1998) yeast cell-cycle expression, via the R package kohonen 3.0.11 "
          "(Debian r-cran-kohonen), GPL-2+")

load_yeast_cc = register_tabular(
    "yeast-cc", "yeast-cc.npz", SOURCE, group="yeast-genes",
    description="yeast cell cycle: 4 expression experiments (vectors 18/24/17/14), 5 phases, natural gaps")
