"""Build ``mmbench/data/files/yeast-ml.npz`` from the multi-label yeast data in river 0.26.1 (class 1 of 14).

Downloads nothing:

    pip download river==0.26.1 --no-deps -d /tmp/rv
    python scripts/make_yeast_ml.py /tmp/rv/river-0.26.1-cp311-cp311-manylinux_2_28_x86_64.whl

Source: Elisseeff & Weston (2001), "A kernel method for multi-labelled classification" (NIPS), 2417
yeast genes, 103 features, 14 functional classes; shipped as ``river/datasets/yeast.csv.gz``
(river, BSD-3-Clause). Target: ``Class1`` (binary). Views: ``expression`` (Att1-79, micro-array
expression) and ``phylogenetic`` (Att80-103, phylogenetic profile), the two sources the features
were built from.
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from tabular_build import assemble, save

NAME = "yeast-ml"
MEMBER = "river/datasets/yeast.csv.gz"


def read_source(src: Path) -> pd.DataFrame:
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            return pd.read_csv(io.BytesIO(zf.read(MEMBER)), compression="gzip")
    return pd.read_csv(src)


def convert(frame: pd.DataFrame) -> dict:
    features = {"expression": [f"Att{i}" for i in range(1, 80)], "phylogenetic": [f"Att{i}" for i in range(80, 104)]}
    views = {v: frame[c].to_numpy(dtype=np.float64) for v, c in features.items()}
    return assemble(views, features, frame["Class1"].to_numpy().astype(np.int64), ["not class 1", "class 1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="river-0.26.1 wheel or yeast.csv.gz")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_source(args.source)), args.out)


if __name__ == "__main__":
    main()
