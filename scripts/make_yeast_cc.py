"""Build ``mmbench/data/files/yeast-cc.npz`` from the yeast cell-cycle data of Debian's r-cran-kohonen.

Downloads nothing. Get the package with apt's ordinary client (no R needed):

    apt-get download r-cran-kohonen        # 3.0.11+dfsg-1 (bookworm)
    python scripts/make_yeast_cc.py r-cran-kohonen_*.deb

The argument is the ``.deb`` or ``kohonen/data/yeast.rda``. Source: Spellman et al. (1998) yeast
cell-cycle expression, 800 genes with a cell-cycle phase (M/G1, G1, S, G2, M), as shipped in kohonen
(R. Wehrens, J. Kruisselbrink; GPL-2+). Views: the expression time courses of the five synchronisation
experiments alpha (18), cdc15 (24), cdc28 (17), elu (14); gaps kept as NaN. The cln3 / clb2 induction
series (2 + 2 values) are left out: a fifth, 4-value view (alone .55) would double the 15 modality
subsets every run is tested on and every table shows.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tabular_build import assemble, read_rda, save

NAME = "yeast-cc"


def convert(obj) -> dict:
    views = {v: np.asarray(obj[v], dtype=np.float64) for v in ("alpha", "cdc15", "cdc28", "elu")}
    features = {v: [f"{v}_{i}" for i in range(x.shape[1])] for v, x in views.items()}
    cls = obj["class"]
    return assemble(views, features, np.asarray(cls.codes), [str(c) for c in cls.categories])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="r-cran-kohonen .deb or yeast.rda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rda(args.source, "yeast.rda", "yeast")), args.out)


if __name__ == "__main__":
    main()
