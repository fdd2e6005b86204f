"""Presentation-attack-detection error rates (ISO/IEC 30107-3), as CASIA-SURF results are reported.

With live = bona fide presentations and spoof = attack presentations:

* APCER: the share of attack presentations classified as bona fide (attacks let through);
* BPCER: the share of bona fide presentations classified as attacks (genuine users rejected);
* ACER = (APCER + BPCER) / 2.

The MMANet / DMRNet code calls the error on live samples "APCER" and the one on spoof samples "NPCER"
(the names swapped against the standard); ACER is the same either way. The challenge computes the
rates from hard decisions; for a classifier that is the arg-max class, which
is what :func:`anti_spoofing_metrics` takes.
"""
from __future__ import annotations

from typing import Dict

import numpy as np


def anti_spoofing_metrics(pred: np.ndarray, true: np.ndarray, live_class: int = 1) -> Dict[str, float]:
    """APCER, BPCER and ACER of hard predictions.

    Args:
        pred: ``[N]`` predicted class indices.
        true: ``[N]`` true class indices.
        live_class: the index of the bona fide (live) class; every other class is an attack.
            Default 1 (CASIA-SURF's lists mark live with 1).

    Returns:
        ``{"apcer": float, "bpcer": float, "acer": float}``; a rate whose denominator is empty (no
        attack, or no bona fide sample) is NaN, and so is ACER then.
    """
    pred, true = np.asarray(pred).reshape(-1), np.asarray(true).reshape(-1)
    if pred.shape != true.shape:
        raise ValueError(f"pred has {pred.shape[0]} entries but true has {true.shape[0]}")
    attack, live = true != live_class, true == live_class
    apcer = float(np.mean(pred[attack] == live_class)) if attack.any() else float("nan")
    bpcer = float(np.mean(pred[live] != live_class)) if live.any() else float("nan")
    return {"apcer": apcer, "bpcer": bpcer, "acer": (apcer + bpcer) / 2}


# Name -> metric function of (pred, true); a data set opts in with meta["extra_metrics"] = name.
EXTRA_METRICS = {"anti_spoofing": anti_spoofing_metrics}
