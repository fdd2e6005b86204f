"""MLA: Multimodal Learning with Alternating unimodal adaptation (Zhang et al., CVPR 2024).

Spec: ``docs/baselines-and-protocols.md`` section 3.5. The projection update is a few D x D device
ops per step; the entropy gate uses ``kernels.modality_stats`` (one pass over all M heads).
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch
from torch import nn

from baselines._balance_utils import masked_ce
from kernels import modality_stats
from mmbench.batching import Batch
from mmbench.engine.distributed import global_sum, masked_batch_mean
from mmbench.methods.base import Method, register_method
from mmbench.settings_schema import BACKEND, POSITIVE_INT, Setting

PROJECTIONS = ("replace", "add", "none", "official", "balancebenchmark")
#: Named forms of the released code bases -> the projection they run (see :class:`MLA`).
PROJECTION_FORMS = {"official": "none", "balancebenchmark": "add"}
#: The released MLA code evaluates (and so gates) in test batches of 64 (``--batch_size`` default).
RELEASED_GATE_BATCH = 64
OWM_UPDATES = ("owm", "released")
GATES = ("dynamic", "released", "fixed")


def owm_update(P: torch.Tensor, r: torch.Tensor, alpha: float, form: str = "owm") -> torch.Tensor:
    """One projection step, then ``P <- P / ||P||_F``. ``P`` ``[D, D]``, ``r`` ``[D]``, ``k = P r``.

    ``form="owm"`` (the paper's intent, standard OWM): ``P <- P - k k^T / (alpha + r^T k)``, a scalar
    denominator. Afterwards ``P r = alpha k / (alpha + r^T k)`` (before the normalisation), i.e.
    nearly zero when ``alpha << r^T P r``: the direction r is projected out.

    ``form="released"`` (the authors' code and BalanceBenchmark): the denominator is written
    ``alpha + torch.mm(k, r)`` with k a ``D x 1`` column and r a ``1 x D`` row, a ``D x D`` matrix,
    so the update is element-wise: ``P_ij <- P_ij - k_i k_j / (alpha + k_i r_j)``. It removes
    much less of the seen direction (probably a transposition slip, but the published numbers ran
    with it).
    """
    k = P @ r
    if form == "owm":
        P = P - torch.outer(k, k) / (alpha + r @ k)
    elif form == "released":
        P = P - torch.outer(k, k) / (alpha + torch.outer(k, r))
    else:
        raise ValueError(f"owm_update={form!r}: expected one of {OWM_UPDATES}")
    return P / torch.linalg.matrix_norm(P)


def project_gradient(G: torch.Tensor, P: torch.Tensor, mode: str) -> torch.Tensor:
    """Head-weight gradient ``G`` ``[C, D]`` -> ``G P^T`` (``replace``) or ``G + G P^T`` (``add``);
    the named forms ``official`` (no projection) and ``balancebenchmark`` (``add``) as they run."""
    mode = PROJECTION_FORMS.get(mode, mode)
    if mode == "replace":
        return G @ P.t()
    if mode == "add":
        return G + G @ P.t()
    return G


def gate_weights(logits: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, backend: str = "auto") -> torch.Tensor:
    """Dynamic fusion weights ``[M, B]`` from unimodal logits ``[M, B, C]`` and presence ``[B, M]``, per sample.

    The paper's intent (an entropy over classes for each sample), not the released code's form
    (:func:`gate_weights_released`).

    ``w_m = exp(max_j H_j - H_m) / sum_j exp(max_j H_j - H_j)`` over the PRESENT modalities of each
    sample (a missing one gets weight 0), ``H_m`` the entropy of ``softmax(z_m)``.
    """
    H = modality_stats(logits, labels, backend=backend).entropy.to(logits.dtype)  # [M, B]
    present = mask.t() > 0
    return torch.softmax(torch.where(present, -H, torch.full_like(H, float("-inf"))), dim=0)


def gate_weights_released(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The released code's entropy gate: ONE weight per modality for the whole evaluation batch, ``[M, B]``.

    The released ``calculate_entropy`` takes ``softmax(z_m, dim=0)`` (over the batch, per class)
    and sums ``-p log p`` over all ``B x C`` entries: ``H_m`` is a batch-level scalar, and
    ``w_m = exp(max_j H_j - H_m) / sum_j exp(max_j H_j - H_j) = softmax(-H)_m``. The weights so
    depend on the evaluation batch (its size and its other samples).

    Missing modalities (absent from the released setting): ``H_m`` is taken over the samples that
    have m (the softmax runs over those only), and each sample's weights are renormalised over its
    present modalities; a sample with all modalities gets exactly the released weights.

    Args:
        logits: ``[M, B, C]`` unimodal logits; mask: ``[B, M]`` presence.
    """
    present = (mask.t() > 0).unsqueeze(2)  # [M, B, 1]
    logp = torch.log_softmax(torch.where(present, logits, torch.full_like(logits, float("-inf"))), dim=1)
    # Entries of absent samples (and a modality absent from the whole batch, whose log_softmax is
    # NaN) contribute nothing; such a modality's weight is zeroed by the presence mask below.
    H = -torch.where(present, logp.exp() * logp, torch.zeros_like(logp)).sum((1, 2))  # [M]
    w = torch.softmax(-H, dim=0).unsqueeze(1) * mask.t().to(logits.dtype)  # [M, B]
    return w / w.sum(0, keepdim=True).clamp_min(1e-12)


@register_method
class MLA(Method):
    """MLA: alternate unimodal steps through one shared head, with an OWM-projected head gradient.

    Idea: joint training lets the dominant modality starve the others. MLA never trains on the
    fused loss: each batch makes one optimizer step per modality, each on that modality's CE through
    a shared linear head, so every encoder is fully optimised. To stop the shared head from
    forgetting the earlier modalities' directions, its weight gradient is projected (orthogonal
    weight modification, OWM) onto the complement of the feature directions already seen. At test
    time the unimodal logits are fused with per-sample weights that favour the confident
    (low-entropy) modalities.

    Per batch, for ``m = 1..M`` in turn: ``z_m = h(x_m)`` (``h = self.extra["head"]``, ``[C, D]``),
    ``L_m = CE(z_m, y)`` over the samples having m; backward; then (every step but the very first
    of the run) ``r`` = mean of the detached features ``x_m`` of those samples, ``P <- owm_update(P,
    r, alpha_t)`` with ``alpha_t = 0.1^(1 + batch_idx / num_batches)``, head weight gradient
    ``G <- project_gradient(G, P, projection)``; optimizer step. ``P`` ``[D, D]`` starts at the
    identity and is kept in :meth:`extra_state`. The model's own fusion head is unused.

    Prediction: ``sum_m w_m z_m`` with ``w = gate_weights(...)`` (``gate="dynamic"``, per sample),
    ``gate_weights_released(...)`` (``gate="released"``, per evaluation batch) or fixed weights
    (``gate="fixed"``: ``fixed_weights`` per modality, default uniform; official av_alpha 0.5 or
    a/v/t 0.35/0.25/0.4), renormalised over each sample's present modalities.

    Trace (``history[e]["coefficients"]``): ``gate:m``, the epoch mean of the weight this gate gives
    modality m on the training batches (:meth:`gate_share`; the M shares sum to 1).

    Hyper-parameters (released code -> harness default):

    * ``projection``: ``"replace"`` (default: ``G P^T``, the OWM paper's projection and what the
      official ``before_update`` would compute if it ran) ; ``"add"``: ``G + G P^T``; ``"none"``: no
      projection. Two named forms say which released code base each reproduces:
      ``"official"`` = ``"none"``: in the official repository (Cecile-hi/Multimodal-Learning-with-
      Alternating-Unimodal-Adaptation) ``before_update`` only touches a parameter named
      ``"module.weight"``, but the head it is handed is a plain ``nn.Linear`` whose weight is named
      ``"weight"``, so the projection never runs there and its published numbers are those of
      unprojected alternating training; ``"balancebenchmark"`` = ``"add"``: BalanceBenchmark's MLA
      (with ``owm_update="released"`` it equals that code bit for bit).
    * ``owm_update``: ``"owm"`` (default: the standard OWM update with a scalar denominator, the
      paper's stated intent) or ``"released"`` (the authors' code and BalanceBenchmark: a ``D x D``
      denominator, element-wise update; see :func:`owm_update`).
    * ``gate``: ``"dynamic"`` (default: per-sample entropy over classes, the paper's intent),
      ``"released"`` (the authors' code: softmax over the batch, one weight per modality per
      evaluation batch; see :func:`gate_weights_released`) or ``"fixed"``; ``fixed_weights``:
      None (uniform).
    * ``gate_batch``: the batch over which ``gate="released"`` takes its softmax: the released code's
      test batch, 64 (default). Prediction splits each evaluation batch into consecutive chunks of
      this size, so with an ``eval_batch_size`` that is a multiple of it (the default 512) the chunks
      are the released test loader's batches (unshuffled test split). Other gates are per sample.
    * ``drop_last``: ``True`` (default, the engine's rule: the last partial training batch of an epoch
      is dropped, and the OWM schedule ``alpha_t`` counts ``floor(N / batch)`` batches) or ``False``
      (the released ``DataLoader``: the partial batch is trained and the schedule counts
      ``ceil(N / batch)``; one process only).
    * ``backend``: ``kernels`` backend for the gate's entropies.

    Departures (each restorable by an option):

    * the released code's projection update and entropy gate differ from the paper's formulas
      (a matrix denominator; a softmax over the batch): the harness defaults follow the paper /
      standard OWM; ``owm_update="released"`` and ``gate="released"`` restore the code.
    * BalanceBenchmark adds the projected gradient -> ``projection="add"``.
    * P here is D x D with the harness's feature width (official 512 x 512 for ResNet-18).
    * official: SGD lr 1e-3, StepLR(70), 100 epochs; harness engine defaults. Each batch costs M
      optimizer steps (each a forward/backward of one encoder only).
    * a modality absent from a whole batch still gets its (zero-gradient) step, so momentum and
      weight decay move it slightly, as in a data loader that yields such a batch.
    """

    name = "mla"
    hparams: Dict[str, Any] = {
        "projection": "replace", "owm_update": "owm", "gate": "dynamic", "fixed_weights": None, "backend": "auto",
        "gate_batch": RELEASED_GATE_BATCH, "drop_last": True,
    }
    version = 2  # named projection forms, gate_batch, drop_last; global masked means under torchrun
    hparam_schema = {
        "projection": Setting(str, choices=PROJECTIONS), "owm_update": Setting(str, choices=OWM_UPDATES),
        "gate": Setting(str, choices=GATES), "fixed_weights": Setting(list, nullable=True), "backend": BACKEND,
        "gate_batch": POSITIVE_INT, "drop_last": Setting(bool),
    }

    def build(self) -> None:
        if self.info.num_modalities < 2:
            raise ValueError("MLA alternates between two or more modalities; this data set has one")
        if self.hp["projection"] not in PROJECTIONS:
            raise ValueError(f"projection={self.hp['projection']!r}: expected one of {PROJECTIONS}")
        if self.hp["owm_update"] not in OWM_UPDATES:
            raise ValueError(f"owm_update={self.hp['owm_update']!r}: expected one of {OWM_UPDATES}")
        if self.hp["gate"] not in GATES:
            raise ValueError(f"gate={self.hp['gate']!r}: expected one of {GATES}")
        fixed = self.hp["fixed_weights"]
        if fixed is not None and len(fixed) != self.info.num_modalities:
            raise ValueError(f"fixed_weights needs {self.info.num_modalities} values, got {len(fixed)}")
        if int(self.hp["gate_batch"]) < 1:
            raise ValueError(f"gate_batch={self.hp['gate_batch']!r}: expected a positive batch size")
        # Read by the engine (Method.drop_last): True keeps the engine's rule (drop the last partial
        # batch when there is more than one batch), False trains it as the released DataLoader does.
        self.drop_last = None if self.hp["drop_last"] else False
        D = self.model.feature_dim
        self.extra["head"] = nn.Linear(D, self.info.num_classes)
        self.P = torch.eye(D)
        self.steps = 0  # modality steps so far; the very first one is not projected
        self.batch_idx = 0
        n, bs = self.info.num_train, self.info.batch_size
        self.num_batches = max(1, n // bs if self.drop_last is None and n > bs else -(-n // bs))

    def param_groups(self):
        # The model's fusion head is never used: leave it out of the optimizer.
        return [{"params": list(self.model.encoders.parameters()) + list(self.extra.parameters())}]

    def extra_state(self) -> Dict[str, Any]:
        return {"P": self.P.clone()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.P = state["P"].clone()

    def on_epoch_start(self, ctx) -> None:
        self.batch_idx = 0
        bs = self.info.batch_size
        # The batches the engine trains this epoch (Method.drop_last): floor, or the released ceil.
        drop = self.drop_last is None and len(ctx.train) > bs
        self.num_batches = max(1, ctx.train.num_batches(bs, drop_last=drop))

    # ----------------------------------------------------------------- training
    def encode_one(self, batch: Batch, m: int) -> torch.Tensor:
        """Feature ``[B, D]`` of modality ``m`` alone, missing samples handled as ``model.encode`` does."""
        name, present = self.info.modalities[m], batch.mask[:, m]
        x = batch.inputs[name]
        if self.model.missing == "input":
            fill = torch.zeros_like(x) if self.model.fill == "zeros" else torch.ones_like(x)
            x = torch.where(present.view((-1,) + (1,) * (x.dim() - 1)) > 0, x, fill)
            return self.model.encoders[name](x)
        return self.model.encoders[name](x) * present.unsqueeze(1)

    def modality_step(self, batch: Batch, m: int, ctx) -> torch.Tensor:
        present = batch.mask[:, m]
        head = self.extra["head"]
        ctx.zero_grad()
        feat = self.encode_one(batch, m)  # [B, D], only this encoder runs (the others get no grad)
        logits = head(feat)
        loss = masked_ce(logits, batch.labels, present.to(feat.dtype))
        self.step_logits = logits.detach()  # [B, C], for the gate trace of training_step
        ctx.backward(loss)
        if self.hp["projection"] != "none" and self.steps > 0:
            alpha_t = 0.1 ** (1 + self.batch_idx / self.num_batches)
            with torch.no_grad():
                f = feat.detach()
                # Mean feature of the (global, under torchrun) batch: every rank builds the same P.
                total = global_sum(torch.cat([(f * present.unsqueeze(1)).sum(0), present.sum().view(1).to(f)]))
                r = total[:-1] / total[-1].clamp_min(1.0)
                self.P = owm_update(self.P.to(f), r, alpha_t, self.hp["owm_update"])
                if head.weight.grad is not None:
                    head.weight.grad = project_gradient(head.weight.grad, self.P, self.hp["projection"])
        self.steps += 1
        ctx.step()
        return loss.detach()

    def training_step(self, batch: Batch, ctx) -> torch.Tensor:
        losses, logits = [], []
        for m in range(self.info.num_modalities):
            losses.append(self.modality_step(batch, m, ctx))
            logits.append(self.step_logits)
        self.batch_idx += 1
        self.log_coefficients({"gate": self.gate_share(torch.stack(logits), batch)})
        return torch.stack(losses).mean()

    @torch.no_grad()
    def gate_share(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``[M]`` batch mean of the fusion weights the gate gives the training batch (a trace, device only).

        MLA's only balancing coefficient is its test-time gate; training never uses it. Tracing what
        it would give each modality on the training batches shows how the balance moves as the
        alternating steps train each encoder. ``logits`` ``[M, B, C]``: each modality's logits from
        its own step (so before the later modalities' head updates of that batch). Averaged over the
        samples with at least one present modality, so the M shares sum to 1.
        """
        w = self.fusion_weights(logits.float(), batch)  # [M, B]
        has_any = batch.mask.sum(1) > 0  # [B]; a sample with nothing present has NaN weights: left out
        w = torch.where(has_any, w, torch.zeros_like(w))
        return masked_batch_mean(w, has_any.to(w.dtype).expand_as(w), dim=1)  # global batch under torchrun

    # ----------------------------------------------------------------- evaluation
    def unimodal_logits(self, batch: Batch) -> List[torch.Tensor]:
        feats = self.model.encode(batch.with_mask(torch.ones_like(batch.mask)))
        return [self.extra["head"](f) for f in feats]

    def fusion_weights(self, logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        """``[M, B]`` weights over each sample's present modalities (sum 1 per sample)."""
        if self.hp["gate"] == "dynamic":
            return gate_weights(logits, batch.mask, batch.labels, self.hp["backend"])
        if self.hp["gate"] == "released":
            # One softmax per chunk of gate_batch samples: the released test batches.
            size = int(self.hp["gate_batch"])
            return torch.cat([gate_weights_released(z, m) for z, m in
                              zip(logits.split(size, dim=1), batch.mask.split(size, dim=0))], dim=1)
        M = logits.shape[0]
        fixed = self.hp["fixed_weights"] or [1.0 / M] * M
        w = torch.tensor(fixed, dtype=logits.dtype, device=logits.device).unsqueeze(1) * batch.mask.t().to(logits.dtype)
        return w / w.sum(0, keepdim=True).clamp_min(1e-12)

    def predict(self, batch: Batch) -> torch.Tensor:
        logits = torch.stack(self.unimodal_logits(batch))  # [M, B, C], every encoder on its input
        w = self.fusion_weights(logits, batch)
        return (w.unsqueeze(-1) * logits).sum(0)
