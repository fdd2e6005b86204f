"""MMANet in segmentation form (Wei et al., CVPR 2023): margin-aware distillation (MAD) from a frozen
complete-modality teacher on three encoder-side maps, and modality-aware regularisation (MAR) through an
auxiliary decoder on the mined weak modality combination.

Written from the released ``segmentation/`` code's structure (``train_missing_mmanet.py``, ``ESANet_KD_Auxi``,
``loss/kd/mad.py`` in shicaiwei123/MMANet-CVPR2023, on ESANet) and the paper's description; no code copied.
The teacher is the harness's ``joint`` run under ``complete`` on the same data set and seed
(:mod:`mmbench.segmentation.teacher`).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F

from kernels import mad_loss, mad_weights
from mmbench.methods._missing_utils import sample_combinations
from mmbench.segmentation.esanet import DecoderHead, ESANetRGBD, _check_size
from mmbench.segmentation.methods import SegmentationMethod, masked_weighted_cross_entropy, register_segmentation_method
from mmbench.settings_schema import FRACTION, NON_NEGATIVE, Setting

WEIGHT_SOURCES = ("logits", "context")
TEACHER_MODES = ("eval", "train")
# The two single-modality candidates of MAR mining, then the full combination (the reference), as released.
CANDIDATES = ((1.0, 0.0), (0.0, 1.0))
FULL = (1.0, 1.0)


def esanet_parts(net: ESANetRGBD, rgb: torch.Tensor, depth: torch.Tensor, feature_mask: Optional[torch.Tensor],
                 aux: Optional[DecoderHead] = None) -> Dict[str, Any]:
    """One forward pass of an ESANet, keeping the maps MAD reads.

    Args:
        net: the network (the student's :class:`ESANetMMA` or the teacher's :class:`ESANetRGBD`).
        rgb ``[B, 3, H, W]``, depth ``[B, 1, H, W]``: inputs (an absent modality already zeroed by the caller).
        feature_mask: ``[B, 2]`` or None; multiplies both branch outputs before every fusion.
        aux: an auxiliary :class:`DecoderHead` to run on the same context output and skips, or None.

    Returns:
        ``logits`` ``[B, C, H, W]``; ``features``: the context output ``[B, d1, H/32, W/32]`` and the projected
        skips ``[B, d1, H/16, W/16]`` and ``[B, d2, H/8, W/8]`` (the release's ``fuse_cache[0:3]``: context
        output, ``skip3``, ``skip2``); ``context``: the context output; ``aux_logits`` if ``aux`` is given.
    """
    _check_size(*rgb.shape[-2:])
    stages = net.encode(rgb, depth, feature_mask)
    context = net.context(stages[4])
    skips = net._skip_features(stages)
    out = {"logits": net._decode_head(context, skips), "features": [context, skips[0], skips[1]], "context": context}
    if aux is not None:
        out["aux_logits"] = net._decode_head(context, skips, aux)
    return out


class ESANetMMA(ESANetRGBD):
    """The student: :class:`ESANetRGBD` (per-stage combination masking through ``encode``) plus an auxiliary
    decoder (the regularisation network's decoder, the release's ``auxi_decoder``) on the same context output
    and skips. ``forward`` (inference) masks the inputs and every fusion by ``present`` and uses the main
    decoder; the auxiliary one is used only in training."""

    def __init__(self, num_classes: int, **options):
        super().__init__(num_classes, **options)
        self.aux = DecoderHead(num_classes, self.decoder_widths)

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor, present: Optional[torch.Tensor] = None) -> torch.Tensor:
        if present is None:
            present = torch.ones(rgb.shape[0], 2, device=rgb.device)
        rgb, depth = self.mask_inputs(rgb, depth, present)
        return esanet_parts(self, rgb, depth, present.to(rgb.dtype))["logits"]


def mad_scale_loss(f_s: torch.Tensor, f_t: torch.Tensor, weight_map: torch.Tensor,
                   pool: Optional[Sequence[int]] = (30, 40), variant: str = "row",
                   split_halves: bool = False) -> torch.Tensor:
    """MAD on one map, each pixel a sample.

    1. If the map is taller than ``pool[0]``, both maps are average-pooled to ``pool`` (the release's memory
       cap: 30 x 40 at NYUv2 scale).
    2. Rows: ``F_s = f_s`` as ``[N = B*h*w, D_s]``, ``F_t`` ``[N, D_t]`` (pixel order b, y, x).
    3. Weights: ``weight_map`` ``[B, K, H', W']`` (the teacher's logits, or the map the weights are read
       from) average-pooled to ``h x w``; per pixel the entropy of its softmax over K, normalised to sum
       to one over the N pixels (:func:`kernels.mad_weights`).
    4. ``L = sum_ij (G_hat_s - G_hat_t)[i, j]^2 * w_i`` (``variant="row"``) with ``G = F F^T`` row-normalised
       (:func:`kernels.mad_loss`; ``split_halves``: the release's per-half row normalisation).

    The teacher map and the weights are constants (detached); the gradient reaches ``f_s`` only.
    """
    if f_s.dim() != 4 or f_t.dim() != 4 or f_s.shape[0] != f_t.shape[0] or f_s.shape[-2:] != f_t.shape[-2:]:
        raise ValueError(f"student and teacher maps must be [B, D, h, w] of the same B, h, w; got "
                         f"{tuple(f_s.shape)} and {tuple(f_t.shape)}")
    f_t = f_t.detach()
    if pool is not None and f_s.shape[2] > pool[0]:
        f_s, f_t = F.adaptive_avg_pool2d(f_s, tuple(pool)), F.adaptive_avg_pool2d(f_t, tuple(pool))
    h, w = f_s.shape[-2:]
    rows_s = f_s.permute(0, 2, 3, 1).reshape(-1, f_s.shape[1])
    rows_t = f_t.permute(0, 2, 3, 1).reshape(-1, f_t.shape[1])
    scores = F.adaptive_avg_pool2d(weight_map.detach(), (h, w)).permute(0, 2, 3, 1).reshape(-1, weight_map.shape[1])
    weights = mad_weights(scores)
    return mad_loss(rows_s, rows_t, weights.to(rows_s.dtype), variant=variant, split_halves=split_halves)


def mmanet_loss(logits: torch.Tensor, aux_logits: Optional[torch.Tensor], labels: torch.Tensor,
                combination: torch.Tensor, weak: Optional[torch.Tensor], mad: Optional[torch.Tensor],
                class_weights: Optional[torch.Tensor], lambda_mad: float, lambda_mar: float,
                active: bool) -> Dict[str, torch.Tensor]:
    """MMANet's segmentation loss of one batch from the network's outputs.

    ``total = CE(logits) + lambda_mad * MAD + lambda_mar * MAR`` while ``active`` (from ``begin_epoch`` on),
    ``CE(logits)`` alone before. ``CE``: the class-weighted cross-entropy over every image's non-void pixels;
    ``MAR``: the same cross-entropy of ``aux_logits`` over the images whose drawn ``combination`` equals the
    ``weak`` one (0 when none does); ``MAD``: the summed :func:`mad_scale_loss` (None: no teacher, 0).

    Args:
        logits, aux_logits: ``[B, C, H, W]``. labels: ``[B, H, W]``. combination: ``[B, 2]`` 0/1.
        weak: ``[2]`` the weak combination (None before it is mined).
    """
    every = torch.ones(len(labels), device=labels.device)
    ce = masked_weighted_cross_entropy(logits, labels, class_weights, every)
    zero = torch.zeros((), device=logits.device, dtype=logits.dtype)
    if not active:
        return {"total": ce, "ce": ce, "mad": zero, "mar": zero}
    if weak is None or aux_logits is None:
        raise ValueError("MMANet's MAR is active but the weak combination or the auxiliary logits are missing")
    is_weak = (combination == weak.to(combination)[None, :]).all(1).to(logits.dtype)  # [B]
    mar = masked_weighted_cross_entropy(aux_logits, labels, class_weights, is_weak)
    mad = zero if mad is None else mad
    return {"total": ce + lambda_mad * mad + lambda_mar * mar, "ce": ce, "mad": mad, "mar": mar}


@register_segmentation_method
class MMANetSegmentation(SegmentationMethod):
    """MMANet: a modality-dropout student distilled from a frozen complete-modality teacher (MAD), with MAR.

    Per training step (the released ``train_missing_mmanet.py``):

    1. per image, a combination drawn uniformly from the non-empty subsets of the modalities the pattern
       gives it (1/3 each of [1,0], [0,1], [1,1] under ``complete``, as released); the pattern's absent
       modality has its input zeroed; both branch outputs are multiplied by the combination before each of
       the five fusions (:class:`ESANetMMA`);
    2. the student gives the logits, the context output and the projected 1/16 and 1/8 skips, and from
       ``begin_epoch`` on the auxiliary decoder's logits (same context output and skips);
    3. the teacher (the ``joint`` run under ``complete``, :mod:`mmbench.segmentation.teacher`) sees each
       image's available modalities (both under ``complete``, as released), frozen: its parameters have
       ``requires_grad=False``, it runs under ``no_grad`` in eval mode and is neither optimised nor
       checkpointed with the student;
    4. MAD (:func:`mad_scale_loss`) on the three maps, summed; MAR: the class-weighted CE of the auxiliary
       logits on the images whose combination is the weak one; ``L = CE + lambda_mad * MAD + lambda_mar * MAR``
       from ``begin_epoch`` on, ``CE`` alone before (:func:`mmanet_loss`).

    MAR mining: at the end of each of the ``mine_epochs`` epochs before ``begin_epoch``, the student is
    scored on the validation split with [1,0], [0,1] and [1,1]; ``delta_c += (mIoU_full - mIoU_c)^2``; at the
    end of epoch ``begin_epoch - 1`` the weak combination is ``argmax delta`` (a single modality, as released).

    Inference: the main decoder, inputs and every fusion masked by the presence mask.

    Hyper-parameters (released NYUv2 / default here):

    * ``lambda_mad`` (``kd_scale``): 4.0 / 4.0. ``lambda_mar`` (``auxi_scale``): 0.2 / 0.2.
    * ``begin_frac``: MAD and MAR from epoch ``max(1, round(begin_frac * epochs))`` (0-based); the release
      turns them on for ``epoch > begin_epoch = 10`` of 300, i.e. from epoch 11; 0.0367 gives 11 of 300 and
      epoch 1 of 8 on ``procedural-rgbd``. ``begin_epoch`` (int) sets it directly.
    * ``mine_epochs``: the release mines after epochs 6-9 (4 epochs); 4 here (fewer when ``begin_epoch`` < 4).
    * ``mad_pool``: [30, 40], the release's pooling of maps taller than 30 rows.
    * ``mad_weights``: ``"logits"`` (default, the paper's intent: the entropy of the teacher's class
      prediction, its logits pooled to each map) or ``"context"`` (the release takes the softmax entropy
      over the channels of a 1/32 teacher *decoder feature*, ``pred_scales_t[6]``, not class scores; the
      nearest map of this network is the teacher's context output, used here).
    * ``mad_halves``: False (default: one row normalisation of the N x N Gram, the similarity-preserving
      loss the paper builds on) or True (the release splits the Gram's columns in two halves and
      row-normalises each separately; :func:`kernels.mad_loss` ``split_halves``).
    * ``teacher_mode``: ``"eval"`` (default, the paper's frozen teacher) or ``"train"`` (the release never
      calls ``teacher.eval()``: BatchNorm uses batch statistics and updates its running statistics).
    * ``teacher``: the teacher's registry name, ``"joint"``.

    MAD's weight is by row ``i`` (the pixel whose relations are compared), as released for segmentation; the
    classification port weights by column (its release's convention).

    Selection: epochs before ``begin_epoch`` are evaluated but not kept (``selection_start_epoch``).

    Departures from the release, besides the named options:

    * Backbone: the release uses ResNet-50 (its script forces ``args.encoder = 'resnet50'``); here the
      harness's ESANet ResNet-34 (NBt1D by default), the network the issue names. Its teacher is a full
      ESANet trained separately (a checkpoint path); here the harness's ``joint`` run of the same network.
    * The release supervises at four scales (ESANet's side outputs); here full resolution only (the
      harness's ESANet has no side outputs yet, ``docs/segmentation.md``).
    * The release has one plain epoch (10) between the last mining epoch (9) and MAD / MAR (from 11); here
      they start right after the last mining epoch, as the classification port does.
    * The release draws combinations with ``np.random``; here from the run's generator within the pattern's
      present modalities. It replaces a NaN MAD by 0 and an empty MAR selection by 1e-16; here a non-finite
      loss ends the run as diverged, and an empty selection gives 0.
    * AMP, Nesterov momentum and the per-epoch one-cycle step of the release are not reproduced (the
      harness's segmentation protocol applies).
    """

    name = "mmanet"
    teacher_method = "joint"
    hparams = {"lambda_mad": 4.0, "lambda_mar": 0.2, "begin_frac": 0.0367, "begin_epoch": None, "mine_epochs": 4,
               "mad_pool": [30, 40], "mad_weights": "logits", "mad_halves": False, "teacher_mode": "eval",
               "teacher": "joint"}
    hparam_schema = {
        "lambda_mad": NON_NEGATIVE, "lambda_mar": NON_NEGATIVE, "begin_frac": FRACTION,
        "begin_epoch": Setting(int, low=1, nullable=True), "mine_epochs": Setting(int, low=0),
        "mad_pool": Setting(list), "mad_weights": Setting(str, choices=WEIGHT_SOURCES),
        "mad_halves": Setting(bool), "teacher_mode": Setting(str, choices=TEACHER_MODES),
        "teacher": Setting(str, choices=("joint",)),
    }

    def build(self) -> None:
        pool = self.hp["mad_pool"]
        if not (isinstance(pool, (list, tuple)) and len(pool) == 2 and all(isinstance(v, int) and v >= 1 for v in pool)):
            raise ValueError(f"mmanet: mad_pool={pool!r}, expected two positive integers (rows, columns)")
        self.nets["net"] = ESANetMMA(self.num_classes, **self.network_options())
        self.teacher: Optional[SegmentationMethod] = None  # set by the runner; outside self.nets
        self.delta = torch.zeros(len(CANDIDATES), dtype=torch.float64)
        self.weak: Optional[torch.Tensor] = None  # [2], once mined
        self.last_parts: Dict[str, Any] = {}

    # ----------------------------------------------------------------- teacher
    def needs_teacher(self) -> bool:
        return float(self.hp["lambda_mad"]) > 0  # an ablation without MAD trains no teacher

    def set_teacher(self, teacher: SegmentationMethod) -> None:
        """Freeze ``teacher`` (no gradient; eval mode unless ``teacher_mode="train"``) and keep it out of ``nets``."""
        for p in teacher.modules().parameters():
            p.requires_grad_(False)
        teacher.modules().train(self.hp["teacher_mode"] == "train")
        self.teacher = teacher

    def to(self, device) -> "MMANetSegmentation":
        super().to(device)
        if self.teacher is not None:
            self.teacher.to(device)
        return self

    # ----------------------------------------------------------------- schedule
    def begin(self) -> int:
        """First epoch (0-based) with MAD and MAR."""
        if self.hp["begin_epoch"] is not None:
            return int(self.hp["begin_epoch"])
        return max(1, round(self.hp["begin_frac"] * self.epochs))

    def selection_start_epoch(self) -> int:
        return self.begin()

    def mining_epoch(self, epoch: int) -> bool:
        return self.begin() - int(self.hp["mine_epochs"]) <= epoch < self.begin()

    # ----------------------------------------------------------------- training
    def loss(self, rgb, depth, labels, present, generator):
        present = present.float()
        combination = sample_combinations(present, generator)  # [B, 2], within the pattern's modalities
        rgb, depth = ESANetRGBD.mask_inputs(rgb, depth, present)
        active = self.epoch >= self.begin()
        net = self.nets["net"]
        out = esanet_parts(net, rgb, depth, combination, net.aux if active else None)
        mad = None
        if active and self.teacher is not None:
            mad = self.mad(out, rgb, depth, present)
        if active and self.weak is None:
            raise RuntimeError("mmanet: MAR is active but no weak combination was mined (mine_epochs = 0?)")
        parts = mmanet_loss(out["logits"], out.get("aux_logits"), labels, combination, self.weak, mad,
                            self.class_weights, self.hp["lambda_mad"], self.hp["lambda_mar"], active)
        self.last_parts = {"combination": combination, **{k: v.detach() for k, v in parts.items()}}
        return parts["total"]

    def mad(self, student: Dict[str, Any], rgb: torch.Tensor, depth: torch.Tensor,
            present: torch.Tensor) -> torch.Tensor:
        """The summed MAD over the three maps; the teacher sees each image's available modalities."""
        t_net = self.teacher.modules()["net"]
        t_net.train(self.hp["teacher_mode"] == "train")
        with torch.no_grad():
            teacher = esanet_parts(t_net, rgb, depth, None)  # rgb, depth: already zeroed where absent
        source = teacher["logits"] if self.hp["mad_weights"] == "logits" else teacher["context"]
        return sum(mad_scale_loss(f_s, f_t, source, self.hp["mad_pool"], "row", bool(self.hp["mad_halves"]))
                   for f_s, f_t in zip(student["features"], teacher["features"]))

    def predict(self, rgb, depth, present):
        return self.nets["net"](rgb, depth, present.to(rgb.device).float())

    # ----------------------------------------------------------------- MAR mining
    def on_validation(self, scores_of) -> None:
        if self.mining_epoch(self.epoch):
            full = scores_of(self.predict, FULL)["miou"]
            scores = torch.tensor([(full - scores_of(self.predict, c)["miou"]) ** 2 for c in CANDIDATES],
                                  dtype=torch.float64).nan_to_num(0.0)
            self.delta = self.delta + scores
        if self.epoch == self.begin() - 1 and self.weak is None:  # mine_epochs = 0: delta is 0, RGB is chosen
            self.select_weak()

    def select_weak(self) -> List[float]:
        """The weak combination: the candidate with the largest accumulated ``delta``."""
        self.weak = torch.tensor(CANDIDATES[int(self.delta.argmax())])
        return self.weak.tolist()

    def result_metrics(self) -> Dict[str, Any]:
        """The mined weak combination (``"rgb"`` or ``"depth"``, the modality it keeps) and the accumulated
        squared mIoU gaps of the two single-modality combinations."""
        weak = None if self.weak is None else ("rgb" if self.weak.tolist() == [1.0, 0.0] else "depth")
        return {"mar_weak_combination": weak,
                "mar_delta": {"rgb": float(self.delta[0]), "depth": float(self.delta[1])}}

    def extra_state(self) -> Dict[str, Any]:
        return {"delta": self.delta.clone(), "weak": None if self.weak is None else self.weak.clone()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.delta = state["delta"].clone()
        self.weak = None if state["weak"] is None else state["weak"].clone()
