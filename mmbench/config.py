"""Run specification and the resolution of its settings.

A run is ``(method, dataset, pattern, seed, overrides)``. Its settings come, in increasing priority,
from the engine defaults, the data set's defaults, the method's ``train_overrides``, the method's
``hparams`` and ``dataset_hparams``, and the user's ``overrides``. An override key must be either an
engine setting or one of the method's hyper-parameters; anything else is an error naming it.
"""
from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Tuple

from mmbench.settings_schema import check_settings

# Bump when a change makes earlier cached results incomparable (protocol, engine, models).
PROTOCOL_VERSION = 3  # 2: model selection skips warm-up epochs, ties go to the latest epoch
# 3: every run stores frozen-encoder linear probes per modality (mmbench.engine.linear_probe)

TRAIN_DEFAULTS: Dict[str, Any] = {
    "epochs": 20,
    "batch_size": 64,
    "optimizer": "sgd",  # sgd | adam | adamw
    "lr": 0.05,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "cosine",  # constant | cosine | step
    "step_size": 20,  # for schedule=step (gamma 0.1)
    "clip_grad": None,  # max total gradient norm; None = no clipping
    "fusion": "concat",  # concat | sum | gated | film
    "feature_dim": 64,
    "missing": "feature",  # feature | input: how a missing modality enters the model
    "fill": "zeros",  # zeros | ones: the input fill value under missing=input
    "eval_batch_size": 512,
    "threads": 1,  # torch CPU threads per run: 1 keeps runs deterministic and lets workers run in parallel
    "device": "cpu",  # cpu | cuda | cuda:<i>; cuda without a GPU is an error naming the problem
    # Paper scale (mmbench/engine/accel.py, mmbench/streaming.py):
    "encoder": "small",  # small | resnet18 (from-scratch ResNet-18 for image/video modalities; D = 512)
    "loader": "memory",  # memory (whole splits as tensors) | stream (DataLoader over per-sample arrays)
    "workers": 0,  # DataLoader worker processes for loader=stream
    "augment": False,  # loader=stream: RandomResizedCrop + horizontal flip of RGB/video training inputs
    "amp": "off",  # off | bf16 | fp16 (fp16 with a gradient scaler; bf16 also on CPU)
    "channels_last": False,  # memory format of image/video inputs and ResNet weights
}

# The feature width an encoder gives when neither the data set, the method nor the user sets feature_dim.
ENCODER_FEATURE_DIM: Dict[str, int] = {"resnet18": 512}

# Per data set (fnmatch on the name). Chosen so every data set trains to a plateau on a 2-core CPU
# within the default suite's budget.
DATASET_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "mfeat*": {"epochs": 20, "lr": 0.05},
    "watch": {"epochs": 12, "lr": 0.05, "batch_size": 128},
    "synthetic*": {"epochs": 20, "lr": 0.05},
    # Multi-view tables (mmbench.data.tabular): epochs and batch chosen so each trains to its validation
    # plateau at <= ~0.7 s CPU per run on average (scripts/measure_run_cost.py); bigger sets, bigger batches.
    "yeast-cc": {"epochs": 15, "lr": 0.05},
    "alzheimer": {"epochs": 15, "lr": 0.05, "batch_size": 32},
    "pd-speech": {"epochs": 15, "lr": 0.05, "batch_size": 32},
    "cells": {"epochs": 15, "lr": 0.05, "batch_size": 128},
    "leaves": {"epochs": 20, "lr": 0.05, "batch_size": 128},
    "yeast-ml": {"epochs": 10, "lr": 0.05, "batch_size": 128},
    "spam": {"epochs": 10, "lr": 0.1, "batch_size": 256},
    "satellite": {"epochs": 15, "lr": 0.1, "batch_size": 256},
    # CREMA-D shapes, random values: a paper-scale smoke run (one epoch of every method on a CPU in CI).
    "synthetic-av-paper": {"epochs": 1, "lr": 1e-3, "batch_size": 4, "eval_batch_size": 8, "encoder": "resnet18",
                           "loader": "stream", "augment": True},
    # Data sets prepared from disk (mmbench.prepare, GBs as memory maps): streamed from disk, never loaded
    # whole into RAM; RGB frames augmented as the papers do (RandomResizedCrop + flip). The embedded
    # data sets above stay on loader=memory (their run keys do not change).
    "crema-d*": {"loader": "stream", "augment": True},
    "ave": {"loader": "stream", "augment": True},
    "kinetics-sounds": {"loader": "stream", "augment": True},
    "vggsound": {"loader": "stream", "augment": True},
    "ucf101": {"loader": "stream", "augment": True},  # the rgb frames; flow is never augmented
    "casia-surf": {"loader": "stream"},
    "cmu-mosei*": {"loader": "stream"},  # feature series: nothing to crop
}


@dataclass(frozen=True)
class RunSpec:
    """One cell of the benchmark grid."""

    method: str
    dataset: str
    pattern: str = "complete"
    seed: int = 0
    overrides: Dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        # recipe=harmonised is the default recipe: the same run (and key) as no recipe at all
        if self.overrides.get("recipe") == "harmonised":
            object.__setattr__(self, "overrides", {k: v for k, v in self.overrides.items() if k != "recipe"})

    def canonical(self) -> Dict[str, Any]:
        return {**asdict(self), "overrides": dict(sorted(self.overrides.items())), "protocol": PROTOCOL_VERSION}

    def key(self) -> str:
        """The name of its cached result: a hash of everything that determines the result (the data's
        content, the resolved settings, code and protocol versions; see :mod:`mmbench.run_key`)."""
        from mmbench.run_key import run_key

        return run_key(self)

    def label(self) -> str:
        extra = ",".join(f"{k}={v}" for k, v in sorted(self.overrides.items()))
        return f"{self.method}/{self.dataset}/{self.pattern}/seed{self.seed}" + (f"[{extra}]" if extra else "")


def _match(table: Dict[str, Dict[str, Any]], dataset: str) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for pattern, values in table.items():
        if fnmatch.fnmatch(dataset, pattern):
            out.update(values)
    return out


def resolve(spec: RunSpec, method_cls) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(train_settings, method_hparams)`` for a run, with unknown override keys rejected."""
    from mmbench.recipes import recipe_settings, split_recipe

    dataset_defaults = _match(DATASET_DEFAULTS, spec.dataset)
    recipe, overrides = split_recipe(spec.overrides)
    # a paper recipe (mmbench.recipes) replaces the harmonised engine settings; explicit --set values win
    train = {**TRAIN_DEFAULTS, **dataset_defaults, **method_cls.train_overrides, **recipe_settings(spec.method, recipe)}
    hp = {**method_cls.hparams, **_match(method_cls.dataset_hparams, spec.dataset)}
    clash = sorted(set(hp) & set(TRAIN_DEFAULTS))
    if clash:  # `--set momentum=0.9` (or a suite's override) would silently reach the method, not the engine
        raise ValueError(f"method {spec.method!r}: hyper-parameter(s) {', '.join(clash)} share a name with engine "
                         "settings; rename them in the method")
    for key, value in overrides.items():
        if key in hp:
            hp[key] = value
        elif key in train:
            train[key] = value
        else:
            raise ValueError(
                f"unknown setting {key!r} for method {spec.method!r}: not an engine setting "
                f"({', '.join(sorted(TRAIN_DEFAULTS))}), nor `recipe`, nor a hyper-parameter of the method "
                f"({', '.join(sorted(method_cls.hparams)) or 'none'})"
            )
    explicit_dim = any("feature_dim" in d for d in (dataset_defaults, method_cls.train_overrides, overrides))
    if not explicit_dim and train["encoder"] in ENCODER_FEATURE_DIM:
        # A ResNet's own width (512) unless someone asked for another D (then the encoder projects).
        train["feature_dim"] = ENCODER_FEATURE_DIM[train["encoder"]]
    check_settings(train, hp, method_cls, context=spec.label())  # type, range, choices: before any run starts
    return train, hp


def parse_value(text: str) -> Any:
    """``"0.1" -> 0.1``, ``"true" -> True``, ``"none" -> None``, JSON lists, else the string."""
    lowered = text.strip().lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_overrides(items) -> Dict[str, Any]:
    """``["lr=0.1", "fusion=sum"] -> {"lr": 0.1, "fusion": "sum"}``."""
    out: Dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        out[key.strip()] = parse_value(value)
    return out
