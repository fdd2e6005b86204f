"""What ``python -m mmbench show METHOD`` prints: a method's settings and where each default comes from."""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

from mmbench.config import DATASET_DEFAULTS, TRAIN_DEFAULTS, RunSpec, resolve


def _value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _block(title: str, values: Dict[str, Any]) -> List[str]:
    """``title:`` then one ``key  value`` line per entry, indented two more than the title."""
    if not values:
        return [f"{title}: none"]
    width = max(len(k) for k in values)
    pad = " " * (len(title) - len(title.lstrip()) + 2)
    return [f"{title}:"] + [f"{pad}{k:{width}s}  {_value(v)}" for k, v in sorted(values.items())]


def describe_method(name: str, dataset: Optional[str] = None) -> str:
    """The text of ``show``: description, hyper-parameters (harness defaults), per-data-set defaults
    (fnmatch pattern -> values), engine settings the method fixes, the engine defaults, and with
    ``dataset`` the settings a run resolves to there. Raises ``KeyError`` for an unknown method."""
    from mmbench.methods import METHODS, get_method

    cls = get_method(name)
    lines = [f"{name}: {METHODS.describe(name)}", f"  code version {cls.version}"
             + (f"; teachers: {', '.join(cls.teachers)}" if cls.teachers else ""), ""]
    lines += _block("hyper-parameters (defaults; --set key=value)", cls.hparams)
    for pattern, values in sorted(cls.dataset_hparams.items()):
        lines += _block(f"  on data sets matching {pattern!r}", values)
    lines += [""] + _block("engine settings this method fixes (before --set)", cls.train_overrides)
    lines += [""] + _block("engine defaults (every method)", TRAIN_DEFAULTS)
    for pattern, values in sorted(DATASET_DEFAULTS.items()):
        lines += _block(f"  on data sets matching {pattern!r}", values)
    if dataset:
        from mmbench.data.registry import dataset_task

        if dataset_task(dataset) == "segmentation":  # the segmentation path's own settings and method form
            from mmbench.segmentation.methods import get_segmentation_method
            from mmbench.segmentation.settings import resolve_segmentation

            train, hp = resolve_segmentation(RunSpec(name, dataset), get_segmentation_method(name, dataset))
            return "\n".join(lines + ["", f"resolved for {dataset} (segmentation):"]
                              + _block("  segmentation settings", train) + _block("  method", hp))
        train, hp = resolve(RunSpec(name, dataset), cls)
        lines += ["", f"resolved for {dataset}:"] + _block("  engine", train) + _block("  method", hp)
    return "\n".join(lines)
