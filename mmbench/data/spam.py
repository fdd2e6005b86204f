"""Spambase: 4601 e-mails, spam or not, three kinds of text statistics.

Views (why natural: three separate feature extractors over the message): ``words`` (48 word
frequencies), ``chars`` (6 character frequencies), ``capitals`` (3 capital-run statistics); stored as
``log1p`` of the source values (heavy-tailed counts). Classes: nonspam 2788, spam 1813 (majority
60.6%). Split: stratified 60/20/20 (2761/920/920).
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): words .922 (.916),
chars .838 (.813), capitals .734 (.706); all views .939 (.934).
Data: UCI Spambase (Hopkins, Reeber, Forman, Suermondt), CC BY 4.0, via the R package kernlab 0.9-32
(A. Karatzoglou et al.; GPL-2+), Debian r-cran-kernlab; files/spam.LICENSE.txt, converted by
scripts/make_spam.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "UCI Spambase, CC BY 4.0, via the R package kernlab 0.9-32 (Debian r-cran-kernlab)"

load_spam = register_tabular(
    "spam", "spam.npz", SOURCE,
    description="spambase: words 48 / chars 6 / capitals 3 (vectors), 2 classes, stratified split")
