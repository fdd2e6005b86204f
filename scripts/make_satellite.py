"""Build ``mmbench/data/files/satellite.npz`` from Statlog Landsat (``Satellite.rda``) in Debian's r-cran-mlbench.

Downloads nothing:

    apt-get download r-cran-mlbench        # 2.1-3-1 (bookworm)
    python scripts/make_satellite.py r-cran-mlbench_*.deb

Source: UCI Statlog (Landsat Satellite), 6435 3x3 pixel neighbourhoods, 6 soil classes, as shipped in
mlbench (F. Leisch, E. Dimitriadou; GPL-2; the data CC BY 4.0, UCI). Views: the four spectral bands,
each the 9 pixels of the neighbourhood (band b is column b, b+4, ... of ``x.1 .. x.36``, pixel-major).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tabular_build import assemble, read_rda, save

NAME = "satellite"
BANDS = ("green", "red", "nir1", "nir2")  # Landsat MSS bands 1-4


def convert(frame) -> dict:
    x = frame[[f"x.{i}" for i in range(1, 37)]].to_numpy(dtype=np.float64)
    views = {b: x[:, i::4] for i, b in enumerate(BANDS)}
    features = {b: [f"x.{j + 1}" for j in range(i, 36, 4)] for i, b in enumerate(BANDS)}
    cls = frame["classes"].cat.remove_unused_categories()
    return assemble(views, features, np.asarray(cls.cat.codes), [str(c) for c in cls.cat.categories])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="r-cran-mlbench .deb or Satellite.rda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rda(args.source, "Satellite.rda", "Satellite")), args.out)


if __name__ == "__main__":
    main()
