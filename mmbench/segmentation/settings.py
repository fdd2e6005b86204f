"""The settings of a segmentation run and their resolution (the segmentation twin of :mod:`mmbench.config`).

Priority, lowest first: :data:`SEGMENTATION_DEFAULTS` (ESANet's NYUv2 training: SGD, momentum 0.9,
weight decay 1e-4, lr 0.01 with a one-cycle schedule stepped per epoch, batch 8, median-frequency
class weights, ResNet-34 branches with NonBottleneck1D blocks, decoder widths 512 / 256 / 128), the
data set's defaults (:data:`SEGMENTATION_DATASET_DEFAULTS`), the method's hyper-parameters, and the
user's ``--set`` overrides. A key that is neither a setting nor a hyper-parameter is an error naming it,
as is a value a setting does not allow (:class:`mmbench.settings_schema.Setting`).

ESANet's training details, each a setting with the release's behaviour by default:

* ``deep_supervision`` (True): the decoder's side outputs supervised at 1/32, 1/16 and 1/8
  (:func:`mmbench.segmentation.methods.deep_supervised_ce`);
* ``depth_norm`` (``"train-stats"``): depth standardised with the mean and std of the valid (> 0) depth
  pixels of the carved train split (:mod:`mmbench.segmentation.inputs`); ``"none"`` feeds it as stored;
* ``augment`` (True; False on ``procedural-rgbd``, whose scenes are generated): random scale 1.0-1.4,
  random crop back to the input size, HSV jitter of RGB, horizontal flip (:mod:`mmbench.segmentation.augment`).

ESANet trains 500 epochs on NYUv2; the default here is that count, and the procedural data set
overrides it (and shrinks the encoder) so that one run takes seconds on a CPU.
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

from mmbench.config import RunSpec, _match
from mmbench.segmentation.backbone import BLOCKS, RESNET34_LAYERS
from mmbench.segmentation.esanet import DECODER_CHANNELS
from mmbench.settings_schema import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Setting

CLASS_WEIGHTINGS = ("median-frequency", "none")
DEPTH_NORMS = ("train-stats", "none")

SEGMENTATION_DEFAULTS: Dict[str, Any] = {
    "epochs": 500,
    "batch_size": 8,
    "eval_batch_size": 16,
    "optimizer": "sgd",  # sgd | adam
    "lr": 0.01,
    "momentum": 0.9,
    "weight_decay": 1e-4,
    "schedule": "onecycle",  # onecycle (ESANet: max lr at 10 % of the epochs, cosine annealing) | cosine | constant
    "class_weighting": "median-frequency",  # of the carved train split (mmbench.segmentation.class_weights)
    "block": "nbt1d",  # encoder residual block: nbt1d (released code) | basic (torchvision's)
    "encoder_layers": list(RESNET34_LAYERS),
    "decoder_channels": list(DECODER_CHANNELS),
    "val_fraction": 0.1,  # of the train split, carved once per data set (mmbench.segmentation.dataset)
    "deep_supervision": True,  # ESANet's decoder side outputs in the training loss
    "depth_norm": "train-stats",  # train-stats (ESANet: the data set's depth mean / std) | none
    "augment": True,  # ESANet's training augmentations (scale 1.0-1.4, crop, HSV, flip)
    "threads": 1,
    "device": "cpu",
    # a torchvision-layout ResNet-34 state_dict file loaded into every ResNet-34 branch, or None (random
    # init); its content hash enters the run identity (mmbench.segmentation.pretrained)
    "backbone_weights": None,
}

# Per data set (fnmatch on the name).
SEGMENTATION_DATASET_DEFAULTS: Dict[str, Dict[str, Any]] = {
    # 32 x 32 scenes: one block per stage and narrow decoder, so a run is seconds on a CPU (not the
    # paper's network size: the procedural set is a harness check and a small benchmark of its own).
    # Its scenes are generated (no augmentation: more scenes are the cheaper variety).
    "procedural-rgbd": {"epochs": 8, "batch_size": 8, "lr": 0.01, "encoder_layers": [1, 1, 1, 1],
                        "decoder_channels": [128, 64, 32], "val_fraction": 0.25, "augment": False},
}

SEGMENTATION_SCHEMA: Dict[str, Setting] = {
    "epochs": POSITIVE_INT,
    "batch_size": POSITIVE_INT,
    "eval_batch_size": POSITIVE_INT,
    "optimizer": Setting(str, choices=("sgd", "adam")),
    "lr": POSITIVE,
    "momentum": Setting(float, low=0.0, high=1.0, high_open=True),
    "weight_decay": NON_NEGATIVE,
    "schedule": Setting(str, choices=("onecycle", "cosine", "constant")),
    "class_weighting": Setting(str, choices=CLASS_WEIGHTINGS),
    "block": Setting(str, choices=BLOCKS),
    "encoder_layers": Setting(list),
    "decoder_channels": Setting(list),
    "val_fraction": Setting(float, low=0.0, high=1.0, low_open=True, high_open=True),
    "deep_supervision": Setting(bool),
    "depth_norm": Setting(str, choices=DEPTH_NORMS),
    "augment": Setting(bool),
    "threads": POSITIVE_INT,
    "device": Setting(str, pattern=r"cpu|cuda(:\d+)?|mps"),
    "backbone_weights": Setting(str, nullable=True),
}

_LIST_LENGTHS = {"encoder_layers": 4, "decoder_channels": 3}
# String settings with a "none" choice: the command line's ``--set KEY=none`` parses to None, which means it.
_NONE_CHOICES = ("class_weighting", "depth_norm")


def resolve_segmentation(spec: RunSpec, method_cls) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """``(train_settings, method_hparams)`` of a segmentation run; raises ``ValueError`` naming a bad key or value."""
    train = {**SEGMENTATION_DEFAULTS, **_match(SEGMENTATION_DATASET_DEFAULTS, spec.dataset)}
    hp = dict(method_cls.hparams)
    for key, value in spec.overrides.items():
        if key in hp:
            hp[key] = value
        elif key in train:
            train[key] = "none" if value is None and key in _NONE_CHOICES else value
        else:
            raise ValueError(
                f"unknown setting {key!r} for segmentation method {spec.method!r}: not a segmentation setting "
                f"({', '.join(sorted(SEGMENTATION_DEFAULTS))}) nor a hyper-parameter of the method "
                f"({', '.join(sorted(method_cls.hparams)) or 'none'})")
    prefix = f"{spec.label()}: "
    for key, value in train.items():
        setting = SEGMENTATION_SCHEMA[key]
        if not setting.accepts(value):
            raise ValueError(f"{prefix}setting {key}={value!r} is not allowed: expected {setting.allowed()}")
        if key in _LIST_LENGTHS and (len(value) != _LIST_LENGTHS[key] or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)):
            raise ValueError(f"{prefix}setting {key}={value!r} is not allowed: expected "
                             f"{_LIST_LENGTHS[key]} positive integers")
    for key, value in hp.items():
        setting = method_cls.hparam_schema.get(key)
        if setting is not None and not setting.accepts(value):
            raise ValueError(f"{prefix}hyper-parameter {key}={value!r} of segmentation method {spec.method!r} "
                             f"is not allowed: expected {setting.allowed()}")
    return train, hp

