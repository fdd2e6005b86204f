"""What each setting may hold: type, range, choices. Checked for every run before any run starts.

A bad value used to be trained, fail and be stored as a "failed" run (or, for ``epochs=0``, as an
*ok* one with no epoch). :func:`check_settings` rejects it instead, naming the key, the value and what
is allowed, so ``resolve`` fails before anything is trained or stored.

Engine settings are described in :data:`ENGINE_SCHEMA`. A method describes its hyper-parameters in
its ``hparam_schema`` class attribute (``{"weights": Setting(str, choices=WEIGHT_MODES)}``); a
hyper-parameter without an entry is checked against the type of its default (an ``int`` default takes
integers, a ``float`` default any finite number, a ``bool`` default ``true``/``false``, a list default
a list), and a ``None`` default accepts anything.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, Tuple, Union

Choices = Union[Sequence[Any], Callable[[], Sequence[Any]]]


@dataclass(frozen=True)
class Setting:
    """The allowed values of one setting.

    Attributes:
        kind: ``int``, ``float``, ``bool``, ``str`` or ``list`` (``float`` also takes integers).
        low / high: inclusive bounds for numbers; ``low_open`` / ``high_open`` make them exclusive.
        choices: the allowed values (a sequence, or a function returning one, for registries that
            fill at import time, e.g. method names).
        nullable: ``None`` is allowed (means "derive it", documented by the method).
        pattern: a regular expression a string must match in full (e.g. a device name).
    """

    kind: type
    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: Optional[Choices] = None
    nullable: bool = False
    pattern: Optional[str] = None

    def allowed(self) -> str:
        """A phrase naming what is allowed, for error messages."""
        if self.choices is not None:
            text = "one of " + ", ".join(map(str, self._choices()))
        elif self.kind in (int, float):
            text = "an integer" if self.kind is int else "a number"
            if self.low is not None and self.high is not None:
                text += f" in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"
            elif self.low is not None:
                text += f" {'>' if self.low_open else '>='} {self.low}"
            elif self.high is not None:
                text += f" {'<' if self.high_open else '<='} {self.high}"
        elif self.kind is bool:
            text = "true or false"
        elif self.kind is list:
            text = "a list, e.g. [1, 2]"
        elif self.pattern is not None:
            text = f"a string matching {self.pattern}"
        else:
            text = "a string"
        return text + (" or none" if self.nullable else "")

    def _choices(self) -> Tuple[Any, ...]:
        return tuple(self.choices() if callable(self.choices) else self.choices)

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.nullable
        if self.kind is bool:
            return isinstance(value, bool)
        if isinstance(value, bool):  # bool is an int subclass: True is not an epoch count
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.kind is float and not (isinstance(value, (int, float)) and math.isfinite(value)):
            return False
        if self.kind is str and not isinstance(value, str):
            return False
        if self.kind is list and not isinstance(value, (list, tuple)):
            return False
        if self.choices is not None and value not in self._choices():
            return False
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True


def _fusions() -> Sequence[str]:
    from mmbench.models.fusion import FUSIONS

    return sorted(FUSIONS)


def _missing_modes() -> Sequence[str]:
    from mmbench.models.model import MISSING_MODES

    return MISSING_MODES


def _fill_values() -> Sequence[str]:
    from mmbench.models.model import FILL_VALUES

    return FILL_VALUES


def method_names() -> Sequence[str]:
    """Registered method names (for hyper-parameters naming a teacher method)."""
    from mmbench.methods import list_methods

    return list_methods("*")


def kernel_backends() -> Sequence[str]:
    """The kernel backends a method's ``backend`` hyper-parameter may name."""
    from kernels._utils import BACKENDS

    return BACKENDS


POSITIVE_INT = Setting(int, low=1)
FRACTION = Setting(float, low=0.0, high=1.0)
NON_NEGATIVE = Setting(float, low=0.0)
POSITIVE = Setting(float, low=0.0, low_open=True)
BACKEND = Setting(str, choices=kernel_backends)

# Every key of config.TRAIN_DEFAULTS (a test keeps the two in step).
ENGINE_SCHEMA: Dict[str, Setting] = {
    "epochs": POSITIVE_INT,  # zero epochs would leave no epoch to select, and an "ok" run without a model
    "batch_size": POSITIVE_INT,
    "optimizer": Setting(str, choices=("sgd", "adam", "adamw")),
    "lr": POSITIVE,
    "momentum": Setting(float, low=0.0, high=1.0, high_open=True),
    "weight_decay": NON_NEGATIVE,
    "schedule": Setting(str, choices=("constant", "cosine", "step")),
    "step_size": POSITIVE_INT,
    "clip_grad": Setting(float, low=0.0, low_open=True, nullable=True),
    "fusion": Setting(str, choices=_fusions),
    "feature_dim": POSITIVE_INT,
    "missing": Setting(str, choices=_missing_modes),
    "fill": Setting(str, choices=_fill_values),
    "eval_batch_size": POSITIVE_INT,
    "threads": POSITIVE_INT,
    "device": Setting(str, pattern=r"cpu|cuda(:\d+)?|mps"),
    # paper scale (mmbench/models/resnet.py, mmbench/streaming.py, mmbench/engine/accel.py)
    "encoder": Setting(str, choices=("small", "resnet18")),
    "loader": Setting(str, choices=("memory", "stream")),
    "workers": Setting(int, low=0),
    "augment": Setting(bool),
    "amp": Setting(str, choices=("off", "bf16", "fp16")),
    "channels_last": Setting(bool),
}


def inferred(default: Any) -> Setting:
    """The setting implied by a default value when the method declares none."""
    if default is None:
        return Setting(object, nullable=True)
    if isinstance(default, bool):
        return Setting(bool)
    if isinstance(default, int):
        return Setting(int)
    if isinstance(default, float):
        return Setting(float)
    if isinstance(default, (list, tuple)):
        return Setting(list)
    return Setting(type(default))


def check_settings(train: Mapping[str, Any], hparams: Mapping[str, Any], method_cls, context: str = "") -> None:
    """Raise ``ValueError`` naming the first setting of a run whose value is not allowed.

    Args:
        train: the resolved engine settings (all of ``TRAIN_DEFAULTS``).
        hparams: the resolved hyper-parameters of ``method_cls``.
        method_cls: the method class; its ``hparam_schema`` (may be absent) describes ``hparams``.
        context: what the settings belong to (a run label), prefixed to the message.
    """
    declared: Dict[str, Setting] = dict(getattr(method_cls, "hparam_schema", {}) or {})
    prefix = f"{context}: " if context else ""
    for key, value in train.items():
        setting = ENGINE_SCHEMA.get(key)
        if setting is not None and not setting.accepts(value):
            raise ValueError(f"{prefix}setting {key}={value!r} is not allowed: expected {setting.allowed()}")
    for key, value in hparams.items():
        setting = declared.get(key) or inferred(method_cls.hparams.get(key))
        if setting.kind is object:
            continue  # a None default with no declared schema: the method interprets the value
        if not setting.accepts(value):
            raise ValueError(
                f"{prefix}hyper-parameter {key}={value!r} of method {method_cls.name!r} is not allowed: "
                f"expected {setting.allowed()}"
            )
