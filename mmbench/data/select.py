"""Keep a subset of a data set's modalities (the generic ``modalities=`` option of ``load_dataset``)."""
from __future__ import annotations

import dataclasses
from typing import List, Sequence, Union

from mmbench.data.base import MultimodalDataset


def parse_names(names: Union[str, Sequence[str]]) -> List[str]:
    """``"a,b"`` or ``["a", "b"]`` -> ``["a", "b"]`` (blanks dropped, order kept)."""
    if isinstance(names, str):
        names = names.split(",")
    return [str(n).strip() for n in names if str(n).strip()]


def select_modalities(dataset: MultimodalDataset, names: Union[str, Sequence[str]]) -> MultimodalDataset:
    """A shallow copy of ``dataset`` with only ``names`` (in that order); arrays are shared, not copied.

    Raises:
        ValueError: naming the unknown modality and the known ones, on an empty or repeated selection.
    """
    wanted = parse_names(names)
    known = dataset.modalities
    for name in wanted:
        if name not in known:
            raise ValueError(f"unknown modality {name!r} for data set {dataset.name!r}; known: {', '.join(known)}")
    if not wanted or len(set(wanted)) != len(wanted):
        raise ValueError(f"select a non-empty list of distinct modalities, got {wanted}")
    by_name = {s.name: s for s in dataset.specs}
    return dataclasses.replace(
        dataset,
        specs=[by_name[n] for n in wanted],
        arrays={n: dataset.arrays[n] for n in wanted},
        meta={**dataset.meta, "modalities_selected": wanted},
        presence=None if dataset.presence is None else _presence_columns(dataset, wanted),
    )


def _presence_columns(dataset: MultimodalDataset, wanted: List[str]):
    """The natural presence mask's columns of ``wanted``; ``None`` when every selected one is all present."""
    cols = dataset.presence[:, [dataset.modalities.index(n) for n in wanted]]
    return None if cols.all() else cols
