"""AV-MNIST as distributed by MultiBench: MNIST digit images paired with spoken-digit spectrograms.

Expected layout under ``root`` (the data is not embedded; pass ``root=`` or set ``MMBENCH_AVMNIST``)::

    image/train_data.npy   [N_train, 28, 28]   (or [N_train, 784])  digit images
    image/test_data.npy    [N_test, 28, 28]
    audio/train_data.npy   [N_train, 112, 112]  spectrograms
    audio/test_data.npy    [N_test, 112, 112]
    train_labels.npy       [N_train]  digits 0..9
    test_labels.npy        [N_test]

Modalities: ``image`` [1, 28, 28] and ``audio`` [1, 112, 112], both images for the small CNN; values
are kept as stored (``standardize`` handles the scale). The test split is the distributed test set;
val is carved from train with a seeded stratified split (``val_fraction``, default 1/12: 5000 of
60000, the size MultiBench holds out).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Union

import numpy as np

from mmbench.data.base import ModalitySpec, MultimodalDataset
from mmbench.data.registry import register_dataset
from mmbench.data.splits import stratified_split

ENV_VAR = "MMBENCH_AVMNIST"
SHAPES = {"image": (1, 28, 28), "audio": (1, 112, 112)}
LAYOUT = ("image/{train,test}_data.npy, audio/{train,test}_data.npy, {train,test}_labels.npy")


def _read(root: Path, rel: str) -> np.ndarray:
    path = root / rel
    if not path.exists():
        raise FileNotFoundError(f"AV-MNIST: {str(path)!r} is missing (expected under {str(root)!r}: {LAYOUT})")
    return np.load(path)


def _as_image(name: str, x: np.ndarray, part: str) -> np.ndarray:
    shape = SHAPES[name]
    if x.shape[1:] == shape[1:] or (x.ndim == 2 and x.shape[1] == int(np.prod(shape))) or x.shape[1:] == shape:
        return np.ascontiguousarray(x.reshape(x.shape[0], *shape), dtype=np.float32)
    raise ValueError(f"AV-MNIST {name}/{part}_data.npy has shape {x.shape}, expected [N, {shape[1]}, {shape[2]}]")


def load_avmnist(root: Optional[Union[str, os.PathLike]] = None, val_fraction: float = 1 / 12,
                 split_seed: int = 0, name: str = "avmnist") -> MultimodalDataset:
    """Read AV-MNIST from ``root`` (default: ``$MMBENCH_AVMNIST``).

    Returns:
        arrays ``image`` float32 ``[N, 1, 28, 28]``, ``audio`` float32 ``[N, 1, 112, 112]`` with
        train samples first, then test; labels int64 ``[N]``; split train/val from the train files,
        test = the test files.

    Raises:
        FileNotFoundError: naming the missing folder or file (and the env var when no root is given).
    """
    if root is None:
        root = os.environ.get(ENV_VAR)
        if not root:
            raise FileNotFoundError(f"AV-MNIST: no data folder; pass load_dataset('avmnist', root=...) "
                                    f"or set {ENV_VAR} "
                                    f"(expected layout: {LAYOUT})")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"AV-MNIST data folder {str(root)!r} does not exist (expected layout: {LAYOUT})")
    parts = {}
    for part in ("train", "test"):
        y = _read(root, f"{part}_labels.npy").reshape(-1).astype(np.int64)
        xs = {m: _as_image(m, _read(root, f"{m}/{part}_data.npy"), part) for m in SHAPES}
        for m, x in xs.items():
            if x.shape[0] != y.shape[0]:
                raise ValueError(f"AV-MNIST {m}/{part}_data.npy has {x.shape[0]} samples "
                                 f"but {part}_labels.npy has {y.shape[0]}")
        parts[part] = (xs, y)
    (tr_x, tr_y), (te_x, te_y) = parts["train"], parts["test"]
    inner = stratified_split(tr_y, fractions=(1 - val_fraction, val_fraction, 0.0), seed=split_seed)
    n_train = tr_y.shape[0]
    return MultimodalDataset(
        name=name, specs=[ModalitySpec(m, "image", s) for m, s in SHAPES.items()],
        arrays={m: np.concatenate([tr_x[m], te_x[m]]) for m in SHAPES},
        labels=np.concatenate([tr_y, te_y]), num_classes=10,
        split={"train": inner["train"], "val": inner["val"],
               "test": np.arange(n_train, n_train + te_y.shape[0], dtype=np.int64)},
        class_names=[str(d) for d in range(10)],
        source=f"AV-MNIST (MultiBench distribution) read from {root}",
        meta={"root": str(root), "val_fraction": val_fraction, "split_seed": split_seed},
    )


register_dataset("avmnist", load_avmnist, description="AV-MNIST (MultiBench files; root= or $MMBENCH_AVMNIST): "
                                                      "image [1,28,28] + audio spectrogram [1,112,112], 10 classes")
