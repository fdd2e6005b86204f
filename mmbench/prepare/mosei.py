"""CMU-MOSEI (Zadeh et al. 2018): sentiment of 23k utterances from the word-aligned features as distributed.

The raw videos are no longer downloadable (MultiBench issue #35); what circulates are the word-aligned
feature pickles, read here in either of their two common forms (``prepare cmu-mosei --src PATH``,
PATH the ``.pkl`` or a folder holding one of the names below)::

    mosei_senti_data.pkl   MulT / CMU-MultimodalSDK: {"train", "valid", "test"} -> {"text" [N, 50, 300]
                           GloVe, "audio" [N, 50, 74] COVAREP, "vision" [N, 50, 35] Facet, "labels"
                           [N, 1, 1] sentiment score in [-3, 3], "id"}
    aligned_50.pkl         MMSA: the same features and splits, score under "regression_labels" [N]

(The SDK's raw ``.csd`` HDF5 files need the SDK's word alignment first; they are not read.) The pickle
is the user's own file and is unpickled as is: only prepare files from a source you trust.

Modalities (series ``[dims, time]`` for the 1-D CNN encoder): ``text`` [300, 50], ``audio`` [74, 50],
``vision`` [35, 50] (the BalanceMM dims A 74, V 35, T 300). Non-finite feature values (COVAREP has
-inf) are set to 0, as the MulT loader does; their count is in the cache's notes.

Settings: ``seq_len=50`` (aligned_50), ``labels``: ``binary`` (score >= 0 positive, every utterance:
the "Has0" accuracy of MMSA; BalanceMM's binary MOSEI), ``binary-non0`` (score 0 utterances skipped,
> 0 positive: MulT's "Non0"), ``7class`` (round(clip(score, -3, 3)) + 3, classes -3..3). Split: the
distributed train / valid / test (16,326 / 1,871 / 4,659 utterances).

Registered: ``cmu-mosei`` (prepare ``cmu-mosei``, default ``labels=binary``) and ``cmu-mosei-7``
(prepare ``cmu-mosei-7``, default ``labels=7class``); each keeps its own cache.
"""
from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Dict, List

import numpy as np

from mmbench.data.base import ModalitySpec
from mmbench.prepare.base import Item, Listing, PreparedCache, Preparer, SkipItem, register_preparer

FILE_NAMES = ("mosei_senti_data.pkl", "aligned_50.pkl")
DIMS = {"text": 300, "audio": 74, "vision": 35}
LABELS = ("binary", "binary-non0", "7class")
PARTS = {"train": "train", "valid": "val", "test": "test"}
SCORE_KEYS = ("labels", "regression_labels")


def find_file(src: Path) -> Path:
    if src.is_file():
        return src
    for name in FILE_NAMES:
        if (src / name).is_file():
            return src / name
    raise FileNotFoundError(f"cmu-mosei: no feature file in {str(src)!r} (expected one of {', '.join(FILE_NAMES)})")


def label_of(score: float, scheme: str) -> int:
    """Class of a sentiment score under ``scheme`` (-1: no class, the utterance is skipped)."""
    if scheme == "binary":
        return int(score >= 0)
    if scheme == "binary-non0":
        return -1 if score == 0 else int(score > 0)
    return int(np.round(np.clip(score, -3.0, 3.0))) + 3


class CmuMosei(Preparer):
    name = "cmu-mosei"
    description = "CMU-MOSEI word-aligned features (text 300, audio 74, vision 35), sentiment classes"
    defaults = {"labels": "binary", "seq_len": 50}
    parallel = False  # the features are already in memory after listing; nothing to decode
    datasets = {"cmu-mosei": "official"}
    dataset_descriptions = {"cmu-mosei": "CMU-MOSEI (prepared cache), official train/valid/test, binary sentiment"}

    def modalities(self, settings: Dict[str, Any]) -> List[ModalitySpec]:
        return [ModalitySpec(m, "series", (d, int(settings["seq_len"]))) for m, d in DIMS.items()]

    def list_items(self, src: Path, settings: Dict[str, Any]) -> Listing:
        scheme = settings["labels"]
        if scheme not in LABELS:
            raise ValueError(f"cmu-mosei: labels={scheme!r}; expected one of {', '.join(LABELS)}")
        path = find_file(src)
        try:
            with open(path, "rb") as handle:
                data = pickle.load(handle)
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise ValueError(f"cmu-mosei: {str(path)!r} is not a readable pickle: {err}") from None
        missing = [p for p in PARTS if not isinstance(data, dict) or p not in data]
        if missing:
            raise ValueError(f"cmu-mosei: {str(path)!r} has no {missing[0]!r} part (expected {', '.join(PARTS)})")
        items: List[Item] = []
        nonfinite = 0
        seq = int(settings["seq_len"])
        for part, split in PARTS.items():
            block = data[part]
            score_key = next((k for k in SCORE_KEYS if k in block), None)
            if score_key is None:
                raise ValueError(f"cmu-mosei: {str(path)!r} part {part!r} has no {' or '.join(SCORE_KEYS)} key")
            scores = np.asarray(block[score_key], dtype=np.float64).reshape(len(block[score_key]), -1)[:, 0]
            feats = {}
            for m, d in DIMS.items():
                x = np.asarray(block.get(m), dtype=np.float32) if m in block else None
                if x is None or x.ndim != 3 or x.shape[1:] != (seq, d) or x.shape[0] != scores.size:
                    raise ValueError(f"cmu-mosei: {str(path)!r} part {part!r} key {m!r} has shape "
                                     f"{None if x is None else x.shape}, expected [{scores.size}, {seq}, {d}]")
                nonfinite += int(x.size - np.isfinite(x).sum())
                feats[m] = x
            ids = block.get("id", np.arange(scores.size))
            for i, score in enumerate(scores):
                ident = ids[i]
                ident = "_".join(str(v) for v in np.ravel(ident)) if np.ndim(ident) else str(ident)
                items.append(Item(f"{part}/{i}/{ident}", label_of(score, scheme), split,
                                  paths={"features": str(path)}, payload={m: feats[m][i] for m in DIMS}))
        classes = ["negative", "positive"] if scheme != "7class" else [str(k) for k in range(-3, 4)]
        for it in items:  # binary-non0: a neutral utterance has no class; keep its row, skip it
            if it.label < 0:
                it.payload, it.label = None, 0
        return Listing(items, classes, [], {"file": str(path), "labels": scheme, "nonfinite_set_to_0": nonfinite})

    def process(self, item: Item, settings: Dict[str, Any]) -> Dict[str, np.ndarray]:
        if item.payload is None:
            raise SkipItem("neutral score (labels=binary-non0)", item.id)
        return {m: np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).T for m, x in item.payload.items()}

    def split(self, variant: str, cache: PreparedCache, seed: int) -> Dict[str, np.ndarray]:
        return {s: np.flatnonzero(cache.ok & (cache.splits == s)) for s in ("train", "val", "test")}


class CmuMosei7(CmuMosei):
    name = "cmu-mosei-7"
    description = "CMU-MOSEI word-aligned features, 7 sentiment classes (-3..3)"
    defaults = {"labels": "7class", "seq_len": 50}
    datasets = {"cmu-mosei-7": "official"}
    dataset_descriptions = {"cmu-mosei-7": "CMU-MOSEI (prepared cache), official train/valid/test, 7 classes"}


register_preparer(CmuMosei())
register_preparer(CmuMosei7())
