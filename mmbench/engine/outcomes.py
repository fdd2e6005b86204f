"""Per-sample test outcomes: which test samples a run got right, stored compactly in its JSON.

Two runs on the same split and masks can then be compared sample by sample (paired tests,
bootstraps over test samples). Each outcome vector is a ``[N]`` boolean array packed with
``np.packbits`` and base64-encoded (N=400 samples -> 68 characters). The split's sample ids and the
test mask are identified by SHA-256 hashes, so a comparison can check that both runs saw the same
samples under the same masks.
"""
from __future__ import annotations

import base64
import hashlib
from typing import TYPE_CHECKING, Any, Dict, Optional

import numpy as np

if TYPE_CHECKING:  # the tables read outcomes without torch (importing it costs ~1.5 s of CLI time)
    import torch

OUTCOMES_VERSION = 1


def pack_correct(correct: np.ndarray) -> str:
    """``[N]`` bool -> base64 text of the packed bits."""
    bits = np.packbits(np.asarray(correct, dtype=bool))
    return base64.b64encode(bits.tobytes()).decode("ascii")


def unpack_correct(text: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_correct`: ``[n]`` bool."""
    raw = np.frombuffer(base64.b64decode(text.encode("ascii")), dtype=np.uint8)
    if len(raw) * 8 < n:
        raise ValueError(f"packed outcome holds {len(raw) * 8} bits, fewer than the {n} test samples")
    return np.unpackbits(raw)[:n].astype(bool)


def array_hash(values: Any) -> str:
    """Short SHA-256 of an array's values (int64 ids or a float mask), independent of dtype details."""
    arr = np.ascontiguousarray(np.asarray(values))
    arr = arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(np.float32)
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:16]


def correct_of(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """``[N, C]`` logits and ``[N]`` labels -> ``[N]`` bool, True where the arg-max is the label."""
    return (logits.argmax(1) == labels).cpu().numpy()


def build_outcomes(test_ids: np.ndarray, labels: torch.Tensor, logits: Dict[str, torch.Tensor], seed: int,
                   test_mask: Optional[torch.Tensor] = None, num_classes: Optional[int] = None) -> Dict[str, Any]:
    """The ``outcomes`` record of a run.

    Args:
        test_ids: ``[N]`` the test split's sample indices in the data set.
        labels: ``[N]`` test labels.
        logits: outcome name (``"fused"``, ``"subset:a+b"``, ``"uni:a"``, ``"masked"``) -> ``[N, C]``.
        seed: the run seed (the masks are drawn from it).
        test_mask: ``[N, M]`` the fixed test mask of a ``rate`` pattern, if any.
        num_classes: C (chance accuracy 1/C is the value of the empty modality set in Shapley values).
    """
    return {
        "version": OUTCOMES_VERSION,
        "n": int(len(test_ids)),
        "num_classes": None if num_classes is None else int(num_classes),
        "test_ids_sha": array_hash(test_ids),
        "mask_seed": int(seed),
        "test_mask_sha": array_hash(test_mask.cpu().numpy()) if test_mask is not None else None,
        "correct": {name: pack_correct(correct_of(lg, labels)) for name, lg in logits.items()},
    }


def load_outcome(result: Dict[str, Any], name: str) -> Optional[np.ndarray]:
    """The ``[N]`` bool outcome ``name`` of a stored run, or None when the run has none (old runs)."""
    rec = result.get("outcomes")
    if not rec or name not in rec.get("correct", {}):
        return None
    return unpack_correct(rec["correct"][name], int(rec["n"]))


def comparable_key(result: Dict[str, Any]) -> Optional[tuple]:
    """What two runs must share to be compared sample by sample: (test ids, seed, test mask)."""
    rec = result.get("outcomes")
    if not rec:
        return None
    return rec["test_ids_sha"], rec["mask_seed"], rec.get("test_mask_sha")
