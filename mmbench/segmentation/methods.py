"""The methods in their segmentation form, and their registry (separate from the classification one).

A segmentation method owns its network(s) and says two things: its training loss on a batch with a
per-image presence mask, and its logits for a batch under a presence mask. The runner
(:mod:`mmbench.segmentation.train`) does everything else: batches, optimiser, epoch selection on the
validation split, the evaluation per modality combination.

Deep supervision (setting ``deep_supervision``, on by default as in ESANet): ``joint``,
``modality-dropout``, ``unimodal`` and ``dmrnet`` build their decoders with ESANet's side outputs and add
their cross-entropies to the main one (:func:`deep_supervised_ce`); ``shaspec`` ignores the setting (its
release is not ESANet's training code).

* ``joint`` -- one :class:`~mmbench.segmentation.esanet.ESANetRGBD` trained with the class-weighted
  cross-entropy on the images as the pattern gives them (an absent modality's input is zeroed, as
  MMANet's evaluation does).
* ``unimodal`` -- one :class:`~mmbench.segmentation.esanet.ESANetOneModality` per modality (the released
  code's single-modality network), each trained on its own modality only; an image missing a modality
  adds no loss to that modality's network. Its prediction for an image is the network, among the
  modalities the image has, with the better validation mIoU (as the classification baseline picks the
  modality with the better validation accuracy), so every combination has one.
* ``modality-dropout`` -- ``joint`` with each modality of each training image dropped with probability
  ``p`` (at least one kept; :func:`baselines.modality_dropout.drop_modalities`), on top of the
  pattern's own missingness.

* ``dmrnet`` (:mod:`~mmbench.segmentation.methods_dmrnet`) -- the released NYUv2 form: per-image
  combinations masking the branch outputs before every fusion, a Gaussian embedding (PME) of the
  context map with its KL term, and the hard combination regulariser as a separate auxiliary decoder
  trained on the images that lack a modality, from an early epoch on.
* ``shaspec`` (:mod:`~mmbench.segmentation.methods_shaspec`) -- shared and specific encoders, a missing
  modality's bottleneck from a present modality's shared map, domain-classification and alignment
  losses, full-modality warm-up then random subsets.
* ``osmd`` (:mod:`~mmbench.segmentation.methods_osmd`) -- one-stage modality distillation: a privileged
  branch on the training-only modality (depth) teaches a restoration of its 1/32 map from RGB (JAN, a
  per-position joint MMD over feature and prediction, the teacher side detached), fused with the RGB map
  by a shared translator (CTN) for ESANet's decoder; the privileged input is never read at inference.

* ``mmanet`` (:mod:`~mmbench.segmentation.methods_mmanet`) -- a modality-dropout student with per-stage
  combination masking, margin-aware distillation (MAD) from a frozen ``joint`` teacher on the context
  output and the 1/16 and 1/8 skips, and modality-aware regularisation (MAR): an auxiliary decoder trained
  on the images whose combination is the mined weak one. Its teacher is a ``complete`` run of ``joint``,
  trained once and stored with a checkpoint by the runner (:mod:`mmbench.segmentation.teacher`): a method
  declares it with ``teacher_method`` and receives it through ``set_teacher``.

The modules of ``dmrnet``, ``mmanet``, ``osmd`` and ``shaspec`` are imported at the end of this one, so the
registry is complete whenever it is read.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from torch import nn

from mmbench.registry import Registry, UnknownNameError
from mmbench.segmentation.esanet import ESANetOneModality, ESANetRGBD
from mmbench.segmentation.metrics import VOID_INDEX
from mmbench.settings_schema import FRACTION, Setting

SEGMENTATION_METHODS: Registry[type] = Registry("segmentation method")


def masked_weighted_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, class_weights: Optional[torch.Tensor],
                                  keep: torch.Tensor, void_index: int = VOID_INDEX) -> torch.Tensor:
    """Class-weighted cross-entropy over the non-void pixels of the images with ``keep`` = 1.

    With every image kept it equals ``F.cross_entropy(logits, labels, weight=class_weights,
    ignore_index=void_index)`` (PyTorch's weighted mean: the sum of ``w[y] * nll`` over the summed ``w[y]``).

    Args:
        logits: ``[B, C, H, W]``; labels ``[B, H, W]``; class_weights ``[C]`` or None; keep ``[B]`` 0/1.
    """
    labels = labels.long()
    per_pixel = F.cross_entropy(logits, labels, weight=class_weights, ignore_index=void_index, reduction="none")
    valid = labels != void_index
    pixel_weight = valid.to(logits.dtype)
    if class_weights is not None:
        pixel_weight = pixel_weight * class_weights[labels.clamp(0, logits.shape[1] - 1)]
    keep = keep.to(logits.dtype)[:, None, None]
    # a batch with no kept labelled pixel gives 0 (no gradient) rather than 0 / 0
    return (per_pixel * keep).sum() / (pixel_weight * keep).sum().clamp_min(1e-12)


def downsample_labels(labels: torch.Tensor, size) -> torch.Tensor:
    """``labels [B, H, W]`` -> ``[B, h, w]`` by nearest neighbour (the pixel at ``floor(i * H / h)``, as
    ESANet's ``MultiScaleLabel`` with OpenCV's ``INTER_NEAREST``): labels are picked, never blended, so the
    void index stays void."""
    return F.interpolate(labels[:, None].float(), size=tuple(size), mode="nearest")[:, 0].long()


def deep_supervised_ce(logits: torch.Tensor, sides, labels: torch.Tensor, class_weights: Optional[torch.Tensor],
                       keep: torch.Tensor, void_index: int = VOID_INDEX) -> torch.Tensor:
    """ESANet's training loss: the class-weighted cross-entropy of the main logits plus, with weight 1 each,
    that of every side output against the labels downsampled to its size by nearest neighbour (the
    released ``CrossEntropyLoss2d`` returns one weighted mean per scale and ``train.py`` sums them).

    Args:
        logits: ``[B, C, H, W]``; sides: side logits ``[B, C, h_i, w_i]`` (empty or None: the main term only);
        labels ``[B, H, W]``; class_weights ``[C]`` or None; keep ``[B]`` 0/1 (as
        :func:`masked_weighted_cross_entropy`).
    """
    total = masked_weighted_cross_entropy(logits, labels, class_weights, keep, void_index)
    for side in sides or ():
        total = total + masked_weighted_cross_entropy(side, downsample_labels(labels, side.shape[-2:]),
                                                      class_weights, keep, void_index)
    return total


class SegmentationMethod:
    """Base class. Subclasses set ``name``, build their networks in ``build`` and define ``loss`` and ``predict``.

    Args:
        num_classes: C.
        train: resolved settings (:mod:`mmbench.segmentation.settings`).
        hp: resolved hyper-parameters of the method.
        class_weights: ``[C]`` or None (no weighting).
    """

    name = ""
    version = 1
    hparams: Dict[str, Any] = {}
    hparam_schema: Dict[str, Setting] = {}
    teacher_method: Optional[str] = None  # registry name of a teacher run (mmbench.segmentation.teacher)

    def __init__(self, num_classes: int, train: Dict[str, Any], hp: Dict[str, Any],
                 class_weights: Optional[torch.Tensor] = None):
        self.num_classes, self.train_cfg, self.hp = num_classes, train, hp
        self.class_weights = class_weights
        self.epoch, self.epochs = 0, int(train["epochs"])  # refreshed by on_epoch_start
        self.nets = nn.ModuleDict()
        self.build()

    def network_options(self) -> Dict[str, Any]:
        return {"block": self.train_cfg["block"], "layers": self.train_cfg["encoder_layers"],
                "decoder_channels": self.train_cfg["decoder_channels"]}

    def deep_supervision(self) -> bool:
        """Whether the networks carry ESANet's side outputs and the loss supervises them (setting)."""
        return bool(self.train_cfg.get("deep_supervision", False))

    def build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def modules(self) -> nn.Module:
        """Everything trained and checkpointed."""
        return self.nets

    def to(self, device) -> "SegmentationMethod":
        self.nets.to(device)
        if self.class_weights is not None:
            self.class_weights = self.class_weights.to(device)
        return self

    def loss(self, rgb: torch.Tensor, depth: torch.Tensor, labels: torch.Tensor, present: torch.Tensor,
             generator: torch.Generator) -> torch.Tensor:  # pragma: no cover - abstract
        """Training loss of a batch; ``present`` ``[B, 2]`` (RGB, depth) as the pattern gives it."""
        raise NotImplementedError

    def predict(self, rgb: torch.Tensor, depth: torch.Tensor,
                present: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Logits ``[B, C, H, W]`` under the presence mask ``[B, 2]``."""
        raise NotImplementedError

    def on_epoch_start(self, epoch: int, epochs: int) -> None:
        """Before each training epoch (0-based ``epoch`` of ``epochs``): a method with phases (a warm-up, a
        loss that switches on later) reads ``self.epoch`` in ``loss``."""
        self.epoch, self.epochs = epoch, epochs

    def selection_start_epoch(self) -> int:
        """First epoch trained with the method's whole objective; earlier epochs are evaluated but never
        kept (:func:`mmbench.engine.selection.selection_start`, as for classification). Default 0."""
        return 0

    def max_grad_norm(self) -> Optional[float]:
        """Clip the gradients' total 2-norm to this value before each optimiser step; None: no clipping."""
        return None

    def on_validation(self, scores_of) -> None:
        """After each epoch, before selection: ``scores_of(predict_fn, (has_rgb, has_depth))`` scores a
        prediction function on the validation split. Default: nothing."""

    def needs_teacher(self) -> bool:
        """Whether this run loads its teacher (``teacher_method``); a method may say no for an ablation."""
        return self.teacher_method is not None

    def set_teacher(self, teacher: "SegmentationMethod") -> None:  # pragma: no cover - only methods with a teacher
        raise NotImplementedError(f"segmentation method {self.name!r} takes no teacher")

    def result_metrics(self) -> Dict[str, Any]:
        """JSON-able values of the selected model the stored result should record (e.g. a mined
        combination); added to ``metrics``. Default: none, so other methods' results are unchanged."""
        return {}

    def extra_state(self) -> Dict[str, Any]:
        """State besides the networks' weights that prediction depends on (kept with the selected epoch)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        pass


def register_segmentation_method(cls: type) -> type:
    SEGMENTATION_METHODS.register(cls.name, cls, description=(cls.__doc__ or "").strip().split("\n")[0])
    return cls


def get_segmentation_method(name: str, dataset: str = "") -> type:
    """The segmentation method ``name``; an error naming the supported ones for any other method."""
    try:
        return SEGMENTATION_METHODS.get(name)
    except UnknownNameError:
        where = f" on segmentation data set {dataset!r}" if dataset else ""
        raise UnknownNameError(
            f"method {name!r} has no segmentation form yet{where}; supported: "
            f"{', '.join(SEGMENTATION_METHODS.names())}") from None


@register_segmentation_method
class Joint(SegmentationMethod):
    """One ESANet-style RGB-D network, class-weighted cross-entropy."""

    name = "joint"

    def build(self) -> None:
        self.nets["net"] = ESANetRGBD(self.num_classes, side_outputs=self.deep_supervision(), **self.network_options())

    def loss(self, rgb, depth, labels, present, generator):
        every = torch.ones(len(labels), device=labels.device)
        if self.deep_supervision():
            logits, sides = self.nets["net"](rgb, depth, present, with_sides=True)
            return deep_supervised_ce(logits, sides, labels, self.class_weights, every)
        return masked_weighted_cross_entropy(self.nets["net"](rgb, depth, present), labels, self.class_weights, every)

    def predict(self, rgb, depth, present):
        return self.nets["net"](rgb, depth, present)


@register_segmentation_method
class ModalityDropout(Joint):
    """Joint training with each modality of each image dropped with probability p (at least one kept)."""

    name = "modality-dropout"
    hparams = {"p": 0.5}
    hparam_schema = {"p": FRACTION}

    def loss(self, rgb, depth, labels, present, generator):
        from baselines.modality_dropout import drop_modalities

        return super().loss(rgb, depth, labels, drop_modalities(present.float(), self.hp["p"], generator), generator)


@register_segmentation_method
class Unimodal(SegmentationMethod):
    """One single-modality ESANet per modality, each trained on its own modality only."""

    name = "unimodal"
    MODALITIES = ("rgb", "depth")

    def build(self) -> None:
        sides = self.deep_supervision()
        self.nets["rgb"] = ESANetOneModality(self.num_classes, 3, side_outputs=sides, **self.network_options())
        self.nets["depth"] = ESANetOneModality(self.num_classes, 1, side_outputs=sides, **self.network_options())
        self.val_miou = torch.zeros(2)  # per modality, refreshed after every epoch; decides the prediction

    def loss(self, rgb, depth, labels, present, generator):
        inputs = (rgb, depth)
        total = 0.0
        for i, (m, x) in enumerate(zip(self.MODALITIES, inputs)):
            if self.deep_supervision():
                logits, sides = self.nets[m](x, with_sides=True)
                total = total + deep_supervised_ce(logits, sides, labels, self.class_weights, present[:, i])
            else:
                total = total + masked_weighted_cross_entropy(self.nets[m](x), labels, self.class_weights,
                                                              present[:, i])
        return total

    def predict(self, rgb, depth, present):
        present = present.to(rgb.device).float()
        logits = torch.stack([self.nets["rgb"](rgb), self.nets["depth"](depth)])  # [2, B, C, H, W]
        # per image, the present modality with the better validation mIoU (present ones lifted above any score)
        best = (self.val_miou.to(rgb.device)[None, :] + 10.0 * present).argmax(1)  # [B]
        return logits[best, torch.arange(len(rgb), device=rgb.device)]

    def on_validation(self, scores_of) -> None:
        self.val_miou = torch.tensor([
            scores_of(lambda r, d, p: self.nets["rgb"](r), (1, 0))["miou"],
            scores_of(lambda r, d, p: self.nets["depth"](d), (0, 1))["miou"],
        ]).nan_to_num(0.0)

    def extra_state(self) -> Dict[str, Any]:
        return {"val_miou": self.val_miou.clone()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.val_miou = state["val_miou"].clone()


# The methods in their own modules register themselves on import (they import this module's base class).
from mmbench.segmentation import methods_dmrnet, methods_mmanet, methods_osmd, methods_shaspec  # noqa: E402,F401
