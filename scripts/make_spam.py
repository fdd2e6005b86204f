"""Build ``mmbench/data/files/spam.npz`` from Spambase (``spam.rda``) in Debian's r-cran-kernlab.

Downloads nothing:

    apt-get download r-cran-kernlab        # 0.9-32-1 (bookworm)
    python scripts/make_spam.py r-cran-kernlab_*.deb

Source: UCI Spambase (Hopkins, Reeber, Forman, Suermondt 1999), 4601 e-mails, spam / nonspam, as
shipped in kernlab (A. Karatzoglou; GPL-2+; the data CC BY 4.0, UCI). Views: word frequencies (48),
character frequencies (6), capital-run statistics (3). Every feature is stored as ``log1p`` of the
source value: the frequencies and run lengths are heavy-tailed counts (capitalTotal up to 15841).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from tabular_build import assemble, read_rda, save

NAME = "spam"


def convert(frame) -> dict:
    cols = [str(c) for c in frame.columns if str(c) != "type"]
    assert len(cols) == 57
    groups = {"words": cols[:48], "chars": cols[48:54], "capitals": cols[54:57]}
    assert all(c.startswith("char") for c in groups["chars"]) and all(c.startswith("capital") for c in groups["capitals"])
    views = {v: np.log1p(frame[c].to_numpy(dtype=np.float64)) for v, c in groups.items()}
    cls = frame["type"]
    return assemble(views, groups, np.asarray(cls.cat.codes), [str(c) for c in cls.cat.categories])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="r-cran-kernlab .deb or spam.rda")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    save(NAME, convert(read_rda(args.source, "spam.rda", "spam")), args.out)


if __name__ == "__main__":
    main()
