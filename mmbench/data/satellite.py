"""Statlog Landsat satellite: 6435 3x3 pixel neighbourhoods, 6 soil / crop classes, four spectral bands.

Views (why natural: each band is a separate sensor channel of the Landsat multispectral scanner):
``green``, ``red``, ``nir1``, ``nir2``, each the 9 pixel values of the neighbourhood in that band.
Classes: red soil 1533, cotton crop 703, grey soil 1358, damp grey soil 626, vegetation stubble
707, very damp grey soil 1508 (majority 23.8%). Split: stratified 60/20/20 (3861/1287/1287).
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): green .574 (.520),
red .563 (.537), nir1 .410 (.313), nir2 .533 (.464); all bands .857 (.810).
Data: UCI Statlog (Landsat Satellite), CC BY 4.0, via the R package mlbench 2.1-3 (F. Leisch,
E. Dimitriadou; GPL-2), Debian r-cran-mlbench; files/satellite.LICENSE.txt, converted by
scripts/make_satellite.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "UCI Statlog (Landsat Satellite), CC BY 4.0, via the R package mlbench 2.1-3 (Debian r-cran-mlbench)"

load_satellite = register_tabular(
    "satellite", "satellite.npz", SOURCE,
    description="Landsat: 4 spectral bands x 9 pixels (vectors), 6 classes, stratified split")
