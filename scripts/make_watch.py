"""Build ``mmbench/data/files/watch.npz`` from the smartwatch data shipped in seglearn 1.2.5.

This script downloads nothing. Get the wheel with pip's ordinary client (mmbench does not depend on
seglearn at run time):

    pip download seglearn==1.2.5 --no-deps -d /tmp/sg
    python scripts/make_watch.py /tmp/sg/seglearn-1.2.5-py3-none-any.whl

The argument is the wheel, an extracted folder (searched for ``watch_dataset.npy``) or that file.
The source is a pickled dict (``np.load(..., allow_pickle=True).item()``, what
``seglearn.datasets.load_watch`` does): 140 recordings, each ``[T_i, 6]`` float64 at 50 Hz with
columns ax, ay, az (accelerometer) and wx, wy, wz (gyroscope), an exercise label (7 classes), a
subject id (1..10) and the side (0 left, 1 right). Unpickling is acceptable here only because the
file comes from that pinned, published wheel; the output needs no pickle.

Output (raw series, not windowed: 244102 x 6 float32 is ~5.4 MB compressed, the 3605 windows of
128 steps at 50% overlap would be twice that; windowing is cheap at load time):
    series   float32 [sum T_i, 6]   all recordings concatenated along time
    offsets  int64   [141]          recording i is series[offsets[i]:offsets[i+1]]
    labels   uint8   [140]          exercise class per recording
    subject  uint8   [140]          subject id per recording
    side     uint8   [140]          0 left, 1 right
    channel_names, class_names      unicode arrays (ax..wz; PEN, ABD, FEL, IR, ER, TRAP, ROW)
"""
from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[1] / "mmbench" / "data" / "files" / "watch.npz"
MEMBER = "seglearn/data/watch_dataset.npy"


def read_source(src: Path) -> dict:
    if src.is_dir():
        found = sorted(src.rglob("watch_dataset.npy"))
        if not found:
            raise SystemExit(f"{src}: no watch_dataset.npy inside")
        src = found[0]
    if zipfile.is_zipfile(src):
        with zipfile.ZipFile(src) as zf:
            raw = io.BytesIO(zf.read(MEMBER))
    else:
        raw = src
    return np.load(raw, allow_pickle=True).item()


def convert(data: dict) -> dict:
    recordings = [np.asarray(x, dtype=np.float64) for x in data["X"]]
    assert all(x.ndim == 2 and x.shape[1] == 6 for x in recordings)
    lengths = np.array([len(x) for x in recordings])
    return {
        "series": np.concatenate(recordings).astype(np.float32),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.asarray(data["y"]).astype(np.uint8),
        "subject": np.asarray(data["subject"]).astype(np.uint8),
        "side": np.asarray(data["side"]).astype(np.uint8),
        "channel_names": np.array([str(s) for s in data["X_labels"]]),
        "class_names": np.array([str(s) for s in data["y_labels"]]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", type=Path, help="seglearn-1.2.5 wheel, extracted folder or watch_dataset.npy")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    arrays = convert(read_source(args.source))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): "
          + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
