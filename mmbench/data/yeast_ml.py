"""Multi-label yeast (Elisseeff & Weston 2001), functional class 1 vs rest: 2417 genes, two sources.

Views (why natural: the features were built from two separate sources): ``expression`` (79,
micro-array expression) and ``phylogenetic`` (24, phylogenetic profile). Classes: not class 1 1655,
class 1 762 (majority 68.5%). Split: stratified 60/20/20 (1450/484/483).
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): expression .723
(.630), phylogenetic .768 (.681); both .777 (.708).
Independence: the expression features include the Spellman cell-cycle experiments and the genes
overlap those of ``yeast-cc``, so both are in the group ``yeast-genes``.
Data: river 0.26.1 ``datasets/yeast.csv.gz`` (BSD-3-Clause); files/yeast-ml.LICENSE.txt, converted by
scripts/make_yeast_ml.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Elisseeff & Weston (2001) multi-label yeast, class 1, via river 0.26.1, BSD-3-Clause"

load_yeast_ml = register_tabular(
    "yeast-ml", "yeast-ml.npz", SOURCE, group="yeast-genes",
    description="yeast multi-label class 1: expression 79 / phylogenetic 24 (vectors), 2 classes, stratified")
