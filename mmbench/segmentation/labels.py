"""Label constants shared by the segmentation readers, preparers and metrics (no torch import: the data
registry loads the preparers to answer questions such as a data set's group, and the tables must not pay
for torch)."""
from __future__ import annotations

VOID_INDEX = 255  # the default void label (Cityscapes' ignore value; the NYUv2 preparer maps "unlabeled" to it)
