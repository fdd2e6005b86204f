"""The method interface: the only place where training methods differ.

The engine owns the loops, devices, evaluation, model selection, timing and results. A method
decides how one batch becomes parameter updates and what happens between epochs, through these
hooks (all optional but :attr:`name`):

* :meth:`build` creates extra trainable modules in ``self.extra`` (unimodal heads, a teacher
  projection, a PME head ...); they are optimised and checkpointed with the model.
* :meth:`on_fit_start`, :meth:`on_epoch_start`, :meth:`on_epoch_end` for state between steps
  (prototypes, mining weak modality combinations on the validation split, stage switches).
* :meth:`training_step` does one step. The default is ``zero_grad -> compute_loss -> backward ->
  after_backward -> step``, so a method that only changes the loss overrides :meth:`compute_loss`,
  one that edits gradients after backward (OGM-GE, MMPareto) overrides :meth:`after_backward`, and
  one with several backward passes or alternating per-modality steps (MLA, ReconBoost, Greedy)
  overrides :meth:`training_step` and calls ``ctx.zero_grad/backward/step`` itself.
* :meth:`predict` (fused logits) and :meth:`unimodal_logits` (per-modality logits) for evaluation.
* :meth:`selection_start_epoch`: a method with phases (a warm-up, mining epochs) names the first
  epoch trained with its own objective; model selection never keeps an earlier epoch.

A new method is one file: subclass :class:`Method`, set ``name`` and ``hparams``, decorate with
:func:`register_method`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from mmbench.batching import Batch
from mmbench.data.base import ModalitySpec
from mmbench.models.model import MultimodalModel
from mmbench.registry import Registry

METHODS: Registry[type] = Registry("method")


@dataclass(frozen=True)
class RunInfo:
    """What a method may know about the run it is part of.

    Attributes:
        dataset: data set name.
        specs: modality specs, in modality order.
        num_classes: C.
        num_train: number of training samples.
        seed: the run's seed.
        epochs: number of training epochs.
        batch_size: training batch size.
        pattern: missing-modality pattern name.
    """

    dataset: str
    specs: Tuple[ModalitySpec, ...]
    num_classes: int
    num_train: int
    seed: int
    epochs: int
    batch_size: int
    pattern: str = "complete"

    @property
    def modalities(self) -> Tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @property
    def num_modalities(self) -> int:
        return len(self.specs)


def register_method(cls: type) -> type:
    """Class decorator: add a :class:`Method` subclass to the registry under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    METHODS.register(cls.name, cls, description=(cls.__doc__ or "").strip().split("\n")[0])
    return cls


class Method:
    """Base class of every method and baseline. The default is joint training with fused CE.

    Class attributes:
        name: registry name.
        hparams: the method's hyper-parameters and their harness defaults.
        dataset_hparams: per data set (fnmatch pattern on the data set name) overrides of ``hparams``.
        train_overrides: engine settings this method needs (e.g. ``{"fusion": "sum"}``), applied
            before the user's overrides.
        hparam_schema: the allowed values of ``hparams`` (``mmbench.settings_schema.Setting`` per key:
            type, range, choices); keys without one are checked against the type of their default.
        version: the method's code version; bump it when a change to the code changes its results, so
            cached runs of the old code are not reused (it enters the run key, :mod:`mmbench.run_key`).
        teachers: methods this one may load through ``ctx.pretrained`` (their settings and versions
            enter the run key too, so a changed teacher retrains its students).
    """

    name: ClassVar[str] = ""
    hparams: ClassVar[Dict[str, Any]] = {}
    dataset_hparams: ClassVar[Dict[str, Dict[str, Any]]] = {}
    train_overrides: ClassVar[Dict[str, Any]] = {}
    hparam_schema: ClassVar[Dict[str, Any]] = {}
    version: ClassVar[int] = 1
    #: Whether the engine drops each epoch's last partial training batch: None = the engine's rule
    #: (drop it when the split has more than one batch); a method may set it from a hyper-parameter.
    drop_last: Optional[bool] = None
    teachers: ClassVar[Tuple[str, ...]] = ()

    def __init__(self, model: MultimodalModel, hp: Dict[str, Any], info: RunInfo):
        self.model = model
        self.hp = dict(hp)
        self.info = info
        self.extra = nn.ModuleDict()
        self.build()

    # ----------------------------------------------------------------- construction
    def build(self) -> None:
        """Create extra modules in ``self.extra``. Called once from ``__init__``."""

    def modules(self) -> nn.ModuleDict:
        """Everything that is trained and checkpointed: the model and the extra modules."""
        return nn.ModuleDict({"model": self.model, "extra": self.extra})

    def param_groups(self) -> List[Dict[str, Any]]:
        """Optimizer parameter groups; override to give groups their own learning rate."""
        return [{"params": [p for p in self.modules().parameters() if p.requires_grad]}]

    def extra_state(self) -> Dict[str, Any]:
        """Non-parameter state that prediction depends on (saved with the best checkpoint)."""
        return {}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        pass

    # ----------------------------------------------------------------- coefficient traces
    def log_coefficients(self, values: Dict[str, Any]) -> None:
        """Record balancing coefficients of one step (name -> scalar or ``[M]`` tensor, e.g. OGM-GE's k).

        The trainer averages them over the epoch into the run's history (``history[e]["coefficients"]``).
        Tensors are kept on their device and summed (no host sync per step); a ``[M]`` value becomes one
        series per modality, ``name:modality``.
        """
        sums = self.__dict__.setdefault("_coef_sums", {})
        for name, value in values.items():
            value = value.detach().float() if torch.is_tensor(value) else torch.tensor(float(value))
            total, count = sums.get(name, (0, 0))
            sums[name] = (total + value, count + 1)

    def pop_coefficients(self) -> Dict[str, float]:
        """The epoch means of the logged coefficients (flattened to scalars), and reset."""
        from mmbench.engine.distributed import average_tensors

        sums = self.__dict__.pop("_coef_sums", {})
        # Under torchrun each rank traced its own shard: the epoch means are averaged over the ranks
        # (every rank logs the same names in the same order, so one collective lines them up).
        means = average_tensors([total / count for total, count in sums.values()])
        out: Dict[str, float] = {}
        for name, mean in zip(sums, means):
            mean = mean.flatten().cpu().tolist()
            if len(mean) == 1:
                out[name] = mean[0]
            else:
                labels = self.info.modalities if len(mean) == self.info.num_modalities else range(len(mean))
                out.update({f"{name}:{label}": v for label, v in zip(labels, mean)})
        return out

    def selection_start_epoch(self) -> int:
        """First epoch (0-based) whose model may be selected: the first trained with this method's own objective.

        The engine evaluates every epoch but keeps only epochs ``>=`` this one (see
        :mod:`mmbench.engine.selection`). Default 0: no phases. A method with a warm-up or a
        stage before its losses switch on overrides it from ``self.info.epochs`` and its
        hyper-parameters, with the same epoch arithmetic its training uses.
        """
        return 0

    # ----------------------------------------------------------------- training hooks
    def on_fit_start(self, ctx) -> None:
        pass

    def on_epoch_start(self, ctx) -> None:
        pass

    def on_epoch_end(self, ctx) -> None:
        pass

    def compute_loss(self, batch: Batch, ctx) -> torch.Tensor:
        """Scalar training loss of one batch (default: fused cross-entropy)."""
        return F.cross_entropy(self.model(batch), batch.labels)

    def after_backward(self, batch: Batch, ctx) -> None:
        """Edit ``.grad`` fields after the backward pass, before the optimizer step."""

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        """One optimisation step; returns the detached loss (no host sync)."""
        ctx.zero_grad()
        loss = self.compute_loss(batch, ctx)
        ctx.backward(loss)
        self.after_backward(batch, ctx)
        ctx.step()
        return loss.detach()

    # ----------------------------------------------------------------- evaluation
    def predict(self, batch: Batch) -> torch.Tensor:
        """Fused logits ``[B, C]`` for the batch's present modalities (called under no_grad, eval mode)."""
        return self.model(batch)

    def unimodal_logits(self, batch: Batch) -> List[torch.Tensor]:
        """Per-modality logits ``[B, C]``; default: the shared head with other features zeroed."""
        return self.model.unimodal_logits(self.model.encode(batch))


def encoder_parameters(model: MultimodalModel, modality: str) -> List[nn.Parameter]:
    return list(model.encoders[modality].parameters())


def head_parameters(model: MultimodalModel) -> List[nn.Parameter]:
    return list(model.head.parameters())


def modality_index(info: RunInfo, modalities: Sequence[str]) -> List[int]:
    return [info.modalities.index(m) for m in modalities]
