"""One-stage modality distillation in segmentation form (Wei et al., arXiv 2309.08204): the privileged
modality's branch teaches a restoration of its 1/32 feature map from the available modality (JAN, joint
distribution alignment), fused with the available map (CTN) for ESANet's decoder, all in one training
stage. The network is :class:`~mmbench.segmentation.osmd_net.OSMDESANet`."""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
import torch.nn.functional as F

from mmbench.methods._missing_utils import joint_mmd
from mmbench.segmentation.esanet import ESANetRGBD
from mmbench.segmentation.methods import SegmentationMethod, masked_weighted_cross_entropy, register_segmentation_method
from mmbench.segmentation.metrics import VOID_INDEX
from mmbench.segmentation.osmd_net import MODALITIES, OSMDESANet
from mmbench.settings_schema import NON_NEGATIVE, POSITIVE, POSITIVE_INT, Setting

JMMD_TARGETS = ("softmax", "onehot")
JMMD_ROWS = ("positions", "pooled")


def cell_label_shares(labels: torch.Tensor, num_classes: int, size: Tuple[int, int],
                      void_index: int = VOID_INDEX) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per cell of a ``size = (h, w)`` grid over the label map: the share of each class among the cell's
    non-void pixels (one-hot where the cell holds one class), and whether the cell has any.

    Args: labels ``[B, H, W]`` with H, W multiples of h, w.
    Returns: shares ``[B, C, h, w]`` (0 where the cell is all void), valid ``[B, h, w]`` (0/1 float).
    """
    labels = labels.long()
    valid = labels != void_index
    onehot = F.one_hot(labels.clamp(0, num_classes - 1), num_classes).permute(0, 3, 1, 2).float()
    onehot = onehot * valid[:, None].float()
    counts = F.adaptive_avg_pool2d(onehot, size)  # [B, C, h, w]: class pixels / cell pixels
    total = counts.sum(1)  # [B, h, w]: non-void share of the cell
    return counts / total.clamp_min(1e-12)[:, None], (total > 0).float()


def jmmd_rows(restored: torch.Tensor, restored_logits: torch.Tensor, true: torch.Tensor, target: torch.Tensor,
              weight: torch.Tensor, rows: str):
    """The rows the joint MMD compares, from 1/32 maps.

    ``rows="positions"``: one row per (image, position); the prediction of a row is the softmax of
    ``missing_head`` at that position. ``rows="pooled"``: one row per image, the classification form: the
    feature is the map's spatial mean (the classification encoders pool), its prediction the softmax of
    ``missing_head`` on that mean (= the mean of the per-position logits, ``missing_head`` being linear), the
    target the mean over the image's valid positions.

    Args:
        restored, true: ``[B, D, h, w]``; restored_logits ``[B, C, h, w]``; target ``[B, C, h, w]`` (a
        distribution per position); weight ``[B, h, w]`` (0 drops a position).
    Returns: ``(restored_rows, prediction_rows, true_rows, target_rows, row_weights)``.
    """
    if rows == "positions":
        def flat(x):
            return x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])

        return (flat(restored), torch.softmax(flat(restored_logits), 1), flat(true), flat(target),
                weight.reshape(-1))
    if rows == "pooled":
        w = weight[:, None]  # [B, 1, h, w]
        image_w = weight.flatten(1).sum(1)  # [B]
        pooled_target = (target * w).flatten(2).sum(2) / image_w.clamp_min(1e-12)[:, None]
        return (restored.mean((2, 3)), torch.softmax(restored_logits.mean((2, 3)), 1), true.mean((2, 3)),
                pooled_target, (image_w > 0).to(restored.dtype))
    raise ValueError(f"jmmd_rows={rows!r}: expected one of {JMMD_ROWS}")


def osmd_loss(logits: torch.Tensor, true_logits_low: torch.Tensor, restored_logits_low: torch.Tensor,
              true: torch.Tensor, restored: torch.Tensor, labels: torch.Tensor, has_k: torch.Tensor,
              class_weights: Optional[torch.Tensor], lambda_missing: float = 1.0, lambda_mmd: float = 1.0,
              jmmd_target: str = "softmax", detach_target: bool = True, rows: str = "positions",
              kernel_num: int = 5, kernel_mul: float = 2.0, avail_logits: Optional[torch.Tensor] = None,
              lambda_avail: float = 0.0) -> Dict[str, torch.Tensor]:
    """The one-stage loss of one batch, from the network's outputs.

    ``total = CE(logits) + lambda_missing * CE_k + lambda_mmd * JMMD (+ lambda_avail * CE(avail_logits))``:

    * ``CE``: class-weighted cross-entropy (void ignored) of the fused logits, every image;
    * ``CE_k``: the same of ``true_logits_low`` (``missing_head`` on the true ``f_k``, ``[B, C, h, w]``)
      bilinearly upsampled to the label size, over the images with ``has_k`` = 1;
    * ``JMMD``: :func:`~mmbench.methods._missing_utils.joint_mmd` with the product kernel over (feature,
      prediction), between the restored side (``restored``, softmax of ``restored_logits_low``) and the true
      side (``true`` and, by ``jmmd_target``, the softmax of ``true_logits_low`` or the cells' label shares
      from :func:`cell_label_shares`); rows from :func:`jmmd_rows`, only of images with ``has_k`` = 1 (and,
      for ``"onehot"``, cells with a non-void pixel). ``detach_target``: the true side is a constant, so the
      teacher (the privileged branch and, through the target, ``missing_head`` on it) gets no gradient from
      the alignment.

    Args:
        logits: ``[B, C, H, W]``; labels ``[B, H, W]``; has_k ``[B]`` 0/1; true, restored ``[B, D, h, w]``.
    Returns: ``{"total", "ce", "ce_missing", "jmmd", "avail"}``.
    """
    if jmmd_target not in JMMD_TARGETS:
        raise ValueError(f"jmmd_target={jmmd_target!r}: expected one of {JMMD_TARGETS}")
    every = torch.ones(len(labels), device=labels.device)
    ce = masked_weighted_cross_entropy(logits, labels, class_weights, every)
    up = F.interpolate(true_logits_low, size=labels.shape[-2:], mode="bilinear", align_corners=False)
    ce_missing = masked_weighted_cross_entropy(up, labels, class_weights, has_k)

    h, w = true.shape[-2:]
    weight = has_k.to(true.dtype)[:, None, None].expand(-1, h, w)
    if jmmd_target == "onehot":
        target, valid = cell_label_shares(labels, true_logits_low.shape[1], (h, w))
        target, weight = target.to(true.dtype), weight * valid
    else:
        target = torch.softmax(true_logits_low, 1)
    if detach_target:
        true, target = true.detach(), target.detach()
    r, p, t, y, row_w = jmmd_rows(restored, restored_logits_low, true, target, weight, rows)
    if row_w.sum() > 0:
        jmmd = joint_mmd([r, p], [t, y], row_w, kernel_num, kernel_mul)
    else:  # no image of the batch has the privileged modality: nothing to align
        jmmd = restored.sum() * 0.0
    total = ce + lambda_missing * ce_missing + lambda_mmd * jmmd
    avail = torch.zeros((), device=logits.device)
    if lambda_avail:
        if avail_logits is None:
            raise ValueError("lambda_avail > 0 needs the available-only logits")
        avail = masked_weighted_cross_entropy(avail_logits, labels, class_weights, every)
        total = total + lambda_avail * avail
    return {"total": total, "ce": ce, "ce_missing": ce_missing, "jmmd": jmmd, "avail": avail}


@register_segmentation_method
class OSMDSegmentation(SegmentationMethod):
    """One-stage modality distillation: restore the training-only modality's 1/32 map from the available one, align, fuse, decode.

    The paper (abstract; no code was released, and its method section was not available: see
    :mod:`mmbench.methods.osmd`, whose reconstruction this follows term for term) has depth missing at
    deployment, a joint adaptation network (JAN) that restores the missing modality's feature from the
    available one under a joint-distribution alignment, a cross translation network (CTN) with shared
    parameters that aggregates the restored and available features, and one multi-task optimisation
    instead of teacher-then-student stages. Who teaches whom: the **privileged branch** (the true
    depth feature ``f_k`` and its classifier's prediction, trained by its own task loss) is the teacher;
    the **JAN's restoration** ``f_hat_k`` from RGB (and its prediction) is the student. The teacher is
    trained in the same stage, and (``detach_target``, default) receives no gradient from the alignment.

    Per training step (network :class:`~mmbench.segmentation.osmd_net.OSMDESANet`; ``k`` = the missing
    modality, ``a`` = the available one; absent inputs zeroed as the pattern gives them):

    1. ``a_0..a_4`` = available branch; ``f_hat_k = JAN(a_4)``; fused ``[g_rgb; g_depth]`` by the CTN;
       logits = ESANet's context + decoder (available skips). Loss ``CE`` over every image.
    2. ``f_k`` = privileged branch on its input, times ``has_k`` (images whose pattern lacks ``k`` give a zero
       map, as in the port); ``missing_head`` (1x1 conv) on ``f_k`` and on ``f_hat_k``. ``CE_k``: the task loss
       of the privileged branch, its 1/32 logits bilinearly upsampled to the labels, on the images with ``k``.
    3. ``JMMD`` between (``f_hat_k``, softmax ``missing_head(f_hat_k)``) and (``f_k``, target) on the images
       with ``k`` (:func:`osmd_loss`).
    4. ``L = CE + lambda_missing CE_k + lambda_mmd JMMD (+ lambda_avail CE of the available-only decode)``,
       every term from the first step (one stage).

    Inference (``predict``): the available modality only; the privileged input is never read, for any
    combination (so the evaluation's ``depth`` combination, with RGB zeroed, sees no input at all and is a
    constant prediction; compare this method on ``rgb``, its deployment setting, and read ``rgb+depth`` as
    the same prediction: the port's assumption 5).

    How each per-sample term of the classification port becomes per-pixel / per-feature-map (choices,
    [INFERRED], as no code exists):

    * the feature level is the encoder output, the 1/32 map (the port restores the pooled encoder
      feature); the JAN, the CTN and ``missing_head`` are the port's MLP / Linear layers as 1x1 convolutions,
      applied at every position; the CTN's slot concat feeds ESANet's context module (1024 channels);
    * the decoder's skips are the available branch's maps (ESANet's are RGB-D fusions, which would need
      depth at test);
    * the privileged branch's task loss is per pixel: ``missing_head``'s 1/32 logits upsampled bilinearly
      (an FCN-32s head; the port's ``CE(missing_head(f_k))``), class-weighted, void ignored;
    * the joint alignment's rows (named option ``jmmd_rows``): ``"positions"`` (default) treats each 1/32
      position of each image as one sample of the joint distribution (feature, prediction), the
      per-feature-map reading; ``"pooled"`` aligns per-image spatial means, the port's rows exactly;
    * ``jmmd_target="onehot"`` per position is the share of each class among the non-void pixels of the
      position's 32 x 32 cell (one-hot in a one-class cell); all-void cells are left out.

    Hyper-parameters (none published; the port's defaults): ``missing_modality`` ``"depth"`` (the paper's)
    or ``"rgb"``; ``lambda_missing`` 1, ``lambda_mmd`` 1, ``lambda_avail`` 0; ``jmmd_target`` ``"softmax"``;
    ``detach_target`` true; ``kernel_num`` 5, ``kernel_mul`` 2 (the authors' MMD utility); ``jan_hidden``
    None (``2 * 512``); ``jmmd_rows`` ``"positions"``.

    Not built: restoring the privileged modality at the four earlier fusion points too (ESANet fuses depth
    after every stage; the port has one feature level), ImageNet initialisation (no weights setting yet).
    """

    name = "osmd"
    hparams = {"missing_modality": "depth", "lambda_missing": 1.0, "lambda_mmd": 1.0, "lambda_avail": 0.0,
               "jmmd_target": "softmax", "detach_target": True, "kernel_num": 5, "kernel_mul": 2.0,
               "jan_hidden": None, "jmmd_rows": "positions"}
    hparam_schema = {
        "missing_modality": Setting(str, choices=MODALITIES), "lambda_missing": NON_NEGATIVE,
        "lambda_mmd": NON_NEGATIVE, "lambda_avail": NON_NEGATIVE, "jmmd_target": Setting(str, choices=JMMD_TARGETS),
        "detach_target": Setting(bool), "kernel_num": POSITIVE_INT, "kernel_mul": POSITIVE,
        "jan_hidden": Setting(int, low=1, nullable=True), "jmmd_rows": Setting(str, choices=JMMD_ROWS),
    }

    def build(self) -> None:
        for key, choices in (("missing_modality", MODALITIES), ("jmmd_target", JMMD_TARGETS),
                             ("jmmd_rows", JMMD_ROWS)):
            if self.hp[key] not in choices:
                raise ValueError(f"osmd: {key}={self.hp[key]!r}, expected one of {choices}")
        self.nets["net"] = OSMDESANet(self.num_classes, missing=self.hp["missing_modality"],
                                      jan_hidden=self.hp["jan_hidden"], **self.network_options())
        self.last_parts: Dict[str, Any] = {}

    def _split(self, rgb: torch.Tensor, depth: torch.Tensor, present: torch.Tensor):
        """``(available input, privileged input, present_a [B], has_k [B])``, absent inputs zeroed."""
        net = self.nets["net"]
        inputs = ESANetRGBD.mask_inputs(rgb, depth, present)
        return inputs[net.a], inputs[net.k], present[:, net.a], present[:, net.k]

    def parts(self, rgb, depth, labels, present) -> Dict[str, torch.Tensor]:
        """Every output the loss reads (tensors named as in :func:`osmd_loss`)."""
        net = self.nets["net"]
        present = present.float()
        x_a, x_k, present_a, has_k = self._split(rgb, depth, present)
        stages = net.available_stages(x_a)
        restored = net.restore(stages[4])
        out = {"logits": net.decode(stages, net.fuse(stages[4], restored, present_a)), "restored": restored,
               "has_k": has_k}
        true = net.privileged_feature(x_k) * has_k[:, None, None, None]
        b = len(true)
        both = net.missing_head(torch.cat([true, restored], 0))  # one call on [true; restored]
        out.update(true=true, true_logits_low=both[:b], restored_logits_low=both[b:])
        if self.hp["lambda_avail"]:
            out["avail_logits"] = net.decode(stages, net.available_only(stages[4]))
        return out

    def loss(self, rgb, depth, labels, present, generator):
        out = self.parts(rgb, depth, labels, present)
        hp = self.hp
        terms = osmd_loss(out["logits"], out["true_logits_low"], out["restored_logits_low"], out["true"],
                          out["restored"], labels, out["has_k"], self.class_weights, hp["lambda_missing"],
                          hp["lambda_mmd"], hp["jmmd_target"], hp["detach_target"], hp["jmmd_rows"],
                          hp["kernel_num"], hp["kernel_mul"], out.get("avail_logits"), hp["lambda_avail"])
        self.last_parts = {k: v.detach() for k, v in terms.items()}
        return terms["total"]

    def predict(self, rgb, depth, present):
        """Logits ``[B, C, H, W]`` from the available modality only (the privileged input is never read)."""
        net = self.nets["net"]
        present = present.to(rgb.device).float()
        present_a = present[:, net.a]
        x_a = (rgb, depth)[net.a] * present_a.to(rgb.dtype)[:, None, None, None]  # only this input is touched
        return net(x_a, present_a)
