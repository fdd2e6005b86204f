"""OGM, journal version: On-the-fly Gradient Modulation as released with Wei, Hu, Du, Wen, "On-the-fly
Modulation for Balanced Multimodal Learning" (TPAMI 2024), the gradient twin of ``opm``.

Released code read: GeWu-Lab/BML_TPAMI2024 ``code/main.py`` (``train``: the OGM block after
``loss.backward()``), ``code/models/Classifier.py`` (``Classifier.forward``: the scores
``performance_1/2``), ``code/config.py`` and ``code/scripts/train_ogm.sh``. BalanceBenchmark has no
trainer for this version (its ``OGM_trainer.py`` is the CVPR 2022 rule, = ``ogm-ge`` with
``modulate="weights"``). The TPAMI paper text itself was not available to read here (see ``formula``).
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch

from baselines.ogm_ge import OGMGE, masked_log_mean_exp, unimodal_logits_ogm
from kernels import modality_stats, ogm_ge_coefficients
from mmbench.batching import Batch
from mmbench.methods.base import register_method
from mmbench.settings_schema import NON_NEGATIVE, Setting

FORMULAS = ("released", "shifted")
RULES = ("auto", "pair", "min")


def ogm_tpami_coefficients(log_scores: torch.Tensor, alpha: float, rule: str = "pair",
                           formula: str = "released") -> torch.Tensor:
    """Modulation coefficients ``k`` ``[M]`` from per-modality log scores ``log s_m`` ``[M]``.

    Ratio ``rho_m = s_m / s_other`` (``rule="pair"``, M = 2) or ``s_m / min_j s_j`` (``"min"``, any M;
    the same for M = 2), formed in log space. Then, for ``rho_m > 1`` (else ``k_m = 1``):

    * ``formula="released"``: ``k_m = 1 - tanh(alpha * relu(rho_m))`` (BML_TPAMI2024 ``main.py``; the
      CVPR 2022 rule, computed by ``kernels.ogm_ge_coefficients``);
    * ``formula="shifted"``: ``k_m = clip(1 - alpha * tanh(rho_m - 1), 0, 1)`` (continuous at rho = 1).

    A modality whose score is 0 (``log s = -inf``) against a positive one has ``rho = 0`` (k = 1) and
    lifts the other to ``rho = inf`` (released: k = 0; shifted: k = max(0, 1 - alpha)); equal scores
    (also both 0) give k = 1; a NaN score gives NaN coefficients, as the kernel does.
    """
    if rule not in ("pair", "min"):
        raise ValueError(f"rule={rule!r}: expected 'pair' or 'min'")
    if formula not in FORMULAS:
        raise ValueError(f"formula={formula!r}: expected one of {FORMULAS}")
    if rule == "pair" and log_scores.shape[0] != 2:
        raise ValueError(f"rule='pair' needs exactly 2 modalities; got M = {log_scores.shape[0]}")
    if formula == "released":
        return ogm_ge_coefficients(log_scores, alpha, rule=rule, log_scores=True)
    ref = log_scores.flip(0) if rule == "pair" else log_scores.min().expand_as(log_scores)
    # equal log scores (also -inf against -inf) are a ratio of exactly 1, never (-inf) - (-inf) = NaN
    diff = torch.where(log_scores == ref, torch.zeros_like(log_scores), log_scores - ref)
    rho = diff.exp()
    k = (1 - alpha * torch.tanh(rho - 1)).clamp(0.0, 1.0)
    k = torch.where(rho > 1, k, torch.ones_like(k))
    return torch.where(torch.isnan(log_scores).any(), torch.full_like(k, float("nan")), k)


@register_method
class OGMTPAMI(OGMGE):
    """OGM (TPAMI 2024): OGM-GE's k = 1 - tanh(alpha rho) on the leading encoder plus GE noise, after a warm-up.

    Per step: the fused CE is back-propagated unchanged; then every selected gradient tensor of
    encoder m becomes ``k_m g + N(0, (std(g) + 1e-8)^2)`` (std of the un-modulated gradient; noise on
    every modality's tensors, ``k = 1`` included) with ``k`` from :func:`ogm_tpami_coefficients` on
    the scores ``s_m = mean_i softmax(W_m x_m,i + b / M)[y_i]`` (no gradient: the released code
    builds them from ``fusion_model.fxy.weight.clone().detach()``; the features' graph never reaches
    the loss). The fusion head and the unselected tensors keep the plain gradient. Everything else
    (scores in log space, a modality absent from the whole batch gets the mean score, device-side
    noise from ``ctx.generator``) is :class:`baselines.ogm_ge.OGMGE`'s.

    How the journal version's released code differs from the CVPR 2022 code (``ogm-ge``), checked
    line by line: the coefficient rule, the score, the GE noise and the conv-only selection are the
    same; different are the **warm-up** (``warm_up = 1 if epoch <= 5``: no modulation in epochs 0-5,
    the same flag that holds OPM back), the **window** (``--modulation_starts 0 --modulation_ends
    60`` of 100 epochs, so modulation in epochs 6-60 inclusive), ``alpha`` 0.8 (``train_ogm.sh``; the
    config default is 1.0), the optimiser (AdamW lr 5e-5, weight decay 0.01, StepLR(40, 0.1), batch 32,
    100 epochs; CVPR: SGD lr 1e-3, StepLR(70)), and the script's fusion concat. Checked and absent
    from the released OGM: no execution probability (``p_exe`` is OPM's only), no schedule on
    ``alpha`` or ``k`` (fixed per step, from the batch), no M > 2 rule (two encoders hard-coded).
    The released ``--modulation`` default is ``OGM_GE`` and ``train_ogm.sh`` does not override it,
    so the journal's OGM runs with GE noise (``ge=True``; ``ge=False`` = ``--modulation OGM``).

    Hyper-parameters (released -> harness default):

    * ``alpha``: 0.8 (``train_ogm.sh``) -> 0.8. Note: at 0.8 the leading encoder's gradient is
      scaled by at most 1 - tanh(0.8) = 0.34 whenever it leads at all (``ogm-ge`` uses 0.3).
    * ``formula``: ``"released"`` (the code's ``1 - tanh(alpha * relu(rho))``; default) or
      ``"shifted"``: ``clip(1 - alpha tanh(rho - 1), 0, 1)``, the form a third-party implementation
      attributes to the paper's Eqs. 11-12 (Nishant21092004/DL_project ``balanced_mm/bml/modulation.py``,
      which also clamps k at 0). The paper text could not be read here to confirm it, so the
      default is the released code's formula; if the paper does print the shifted form, flip the
      default (paper's intent) and bump ``version``.
    * ``rule``: ``"auto"`` -> ``"pair"`` for M = 2 (released) and ``"min"`` for M > 2 (BalanceBenchmark's
      N-modality ratio, as ``ogm-ge``; the released code has two encoders only).
    * ``modulate``: released ``len(grad.size()) == 4`` (2-D conv kernels of ResNet18 encoders) ->
      ``"weights"`` (every tensor with dim >= 2: the MLP encoders here have no conv kernel, so the
      literal rule would leave them untouched); ``"conv"`` (dim >= 3) equals the released rule on
      2-D-conv encoders; ``"all"`` adds biases.
    * ``ge``: True (``--modulation OGM_GE``, the released default).
    * ``start``, ``end``: the window ``[start, end)`` as fractions of the run's epochs (> 1: absolute
      epochs): released epochs 6-60 of 100 -> (0.06, 0.61), e.g. epochs 2-12 of 20, 1-7 of 12. ``start=6,
      end=61`` with 100 epochs is the released schedule exactly. Model selection starts at the
      window's first epoch (before it the run is plain joint training).
    * ``backend``: ``kernels`` backend for the per-modality softmax statistics (``"auto"``).

    Departures from the released code: at an exact tie (``s_1 == s_2``) the released ``else``
    branch slows modality 2 by ``1 - tanh(alpha)``; here neither is slowed (also when one modality
    is absent from the whole batch); the scores are batch means (the released sums: same ratios);
    the optimiser is the harness engine's (as for every method). Not implemented: the released
    ``--use_OGM_plus`` switch (``OGM*``: the *weaker* encoder's gradient times a fixed 4, the
    ``1 + tanh`` form commented out): an alternative, not the OGM the repository's README describes
    ("OGM mitigates its gradient", the dominant modality's).

    Side-by-side (tests/baselines/test_ogm_tpami.py): one SGD step against a transcription of the
    released ``Classifier.forward`` scores + ``train`` OGM_GE block (M = 2, spectrogram ResNet18 +
    frame ResNet18, ``modulate="conv"`` = the released ``== 4`` selection, the same N(0, 1) draw
    given to both): maximum absolute parameter difference 0 at epoch 6 (modulated: k = (1, 0.31),
    the visual encoder slowed) and 0 at epoch 5 (warm-up) (float32, the same operations in the same
    order; asserted < 1e-6).
    """

    name = "ogm-tpami"
    dataset_hparams: Dict[str, Dict[str, Any]] = {}
    hparams: Dict[str, Any] = {
        "alpha": 0.8,
        "formula": "released",
        "rule": "auto",
        "modulate": "weights",
        "ge": True,
        "start": 0.06,
        "end": 0.61,
        "backend": "auto",
    }
    hparam_schema = {
        **OGMGE.hparam_schema,
        "alpha": NON_NEGATIVE,
        "formula": Setting(str, choices=FORMULAS),
        "rule": Setting(str, choices=RULES),
        "start": Setting(float, low=0.0),
        "end": Setting(float, low=0.0),
    }

    def build(self) -> None:
        if self.hp["formula"] not in FORMULAS:
            raise ValueError(f"formula={self.hp['formula']!r}: expected one of {FORMULAS}")
        if self.hp["rule"] not in RULES:
            raise ValueError(f"rule={self.hp['rule']!r}: expected one of {RULES} "
                             "(the journal's OGM only slows)")
        super().build()

    def coefficients(self, feats: List[torch.Tensor], batch: Batch) -> torch.Tensor:
        """``k`` ``[M]`` from detached features (device tensor, no host sync)."""
        with torch.no_grad():
            z = unimodal_logits_ogm(self.model.head, [f.detach() for f in feats])  # [M, B, C]
            ce = modality_stats(z, batch.labels, backend=self.hp["backend"]).ce  # [M, B]
            log_score = masked_log_mean_exp(-ce, batch.mask)  # [M]
            return ogm_tpami_coefficients(log_score, self.hp["alpha"], self.rule, self.hp["formula"])
