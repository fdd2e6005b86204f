"""What a method sees during training: the optimizer, the epoch, the splits, and helpers."""
from __future__ import annotations

from typing import Callable, Dict, Iterator, Optional

import torch
from torch import nn

from mmbench.batching import Batch, SplitTensors
from mmbench.engine import distributed
from mmbench.methods.base import Method, RunInfo


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite; the run is recorded as diverged."""


class TrainContext:
    """Training state shared between the engine and a method.

    Attributes:
        method, info: the method being trained and its run description.
        optimizer: the optimizer over ``method.param_groups()``.
        train, val: the split tensors.
        epoch, step: current epoch (0-based) and global step count.
        epochs: total epochs.
        generator: a seeded CPU ``torch.Generator`` for any randomness a method needs.
        train_mask: the current epoch's ``[N_train, M]`` presence mask.
    """

    def __init__(
        self,
        method: Method,
        info: RunInfo,
        optimizer: torch.optim.Optimizer,
        train: SplitTensors,
        val: SplitTensors,
        generator: torch.Generator,
        clip_grad: Optional[float] = None,
        eval_batch_size: int = 512,
        teacher_fn: Optional[Callable[..., Method]] = None,
    ):
        self.method, self.info, self.optimizer = method, info, optimizer
        self.train, self.val = train, val
        self.generator = generator
        self.clip_grad = clip_grad
        self.eval_batch_size = eval_batch_size
        self.epoch = 0
        self.step_count = 0
        self.epochs = info.epochs
        self.train_mask: Optional[torch.Tensor] = None
        self._teacher_fn = teacher_fn
        # Non-finite losses are flagged on the device and checked once per epoch: a per-step
        # check would cost a host sync every step.
        self.nonfinite = torch.zeros((), dtype=torch.bool, device=train.device)
        self.loss_sum = torch.zeros((), device=train.device)
        self.loss_count = 0
        # amp=fp16: the engine's torch.amp.GradScaler (None otherwise). Gradients seen by a method's
        # after_backward are then multiplied by the loss scale; the step unscales them.
        self.scaler: Optional[torch.amp.GradScaler] = None

    @property
    def device(self) -> torch.device:
        return self.train.device

    # ----------------------------------------------------------------- optimisation
    def zero_grad(self) -> None:
        self.optimizer.zero_grad(set_to_none=True)

    def parameters(self):
        return [p for g in self.optimizer.param_groups for p in g["params"]]

    def backward(self, loss: torch.Tensor, **kwargs) -> None:
        """``loss.backward(**kwargs)``, recording (without a host sync) whether it was finite.

        Under torchrun the gradients are then averaged over the processes
        (:func:`mmbench.engine.distributed.average_gradients`), so whatever a method does to them
        after this call acts on the gradient of the global batch.
        """
        self.nonfinite |= ~torch.isfinite(loss.detach())
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward(**kwargs)
        distributed.average_gradients(self.parameters())

    def step(self) -> None:
        """Clip the gradient norm (if configured) and take an optimizer step (through the fp16 scaler if any)."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradient, not the scaled one
        if self.clip_grad:
            params = [p for p in self.parameters() if p.grad is not None]
            nn.utils.clip_grad_norm_(params, self.clip_grad)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when the scaled gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()

    def log_loss(self, loss: torch.Tensor) -> None:
        self.loss_sum += loss.detach().float()
        self.loss_count += 1

    # ----------------------------------------------------------------- data access
    def train_batches(self, batch_size: Optional[int] = None, complete: bool = False) -> Iterator[Batch]:
        """The training split in a fixed order (for prototypes, statistics), current mask unless ``complete``."""
        mask = None if complete else self.train_mask
        return self.train.iterate(batch_size or self.eval_batch_size, mask=mask)

    @torch.no_grad()
    def evaluate(self, split: str = "val", mask: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """Accuracy and macro-F1 of ``method.predict`` on a split, under an optional ``[M]`` or ``[N, M]`` mask.

        Used by methods that mine on the validation split (MMANet, MSLR). Restores train mode.
        """
        from mmbench.engine.evaluate import evaluate_logits, predict_split

        tensors = self.val if split == "val" else self.train
        logits = predict_split(self.method, tensors, self.eval_batch_size, mask)
        self.method.modules().train()
        return evaluate_logits(logits, tensors.labels, self.info.num_classes)

    # ----------------------------------------------------------------- teachers
    def pretrained(self, method: str, **hparams) -> Method:
        """A frozen, trained method of the same data set and seed, trained once and cached.

        ``method`` names any registered method (``"joint"`` for a full-modality teacher,
        ``"unimodal"`` for unimodal teachers). It is trained under the ``complete`` pattern with the
        run's global training settings and ``hparams``. Its parameters have ``requires_grad=False``
        and it is in eval mode.
        """
        if self._teacher_fn is None:
            raise RuntimeError("this run was started without a teacher provider")
        teacher = self._teacher_fn(method, hparams)
        teacher.modules().eval()
        for p in teacher.modules().parameters():
            p.requires_grad_(False)
        return teacher
