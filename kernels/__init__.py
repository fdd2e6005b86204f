"""mmbench fused kernels: a standalone package (it never imports ``mmbench``).

Ops (each with an eager reference that is the specification and the CPU path, a Triton kernel for
CUDA tensors, and for op 1 a C++/CUDA extension):

* :func:`modality_stats` -- per-modality softmax statistics of ``[M, B, C]`` logits (lse, CE,
  entropy, p_true, batch means / sums used by OGM-GE and ARL), one launch for all modalities.
* :func:`weighted_multimodal_ce` -- ``sum_m mean_b w[m(,b)] * CE[m, b]`` with a recompute-softmax
  backward that never writes into the caller's logits.
* :func:`arl_coefficients`, :func:`ogm_ge_coefficients` -- device-side coefficient epilogues (no host sync).

``backend="auto"`` of op 1 is the measured fastest correct provider per op, dtype and shape class on
this kind of device, eager, fused or ``torch.compile`` of the eager reference with its compile time
counted (:mod:`kernels.dispatch`: a table made by ``python -m mmbench bench``, a CPU one shipped); fp64 always stays on eager, and NaN/+inf logits give NaN statistics on every provider.

Benchmarks: ``python -m kernels.benchmark`` (see :mod:`kernels.benchmark`).
"""
from .coefficients import arl_coefficients, ogm_ge_coefficients
from .cpp_ext import cpp_available
from .modality_stats import ModalityStats, modality_stats, weighted_multimodal_ce

__all__ = [
    "ModalityStats",
    "modality_stats",
    "weighted_multimodal_ce",
    "arl_coefficients",
    "ogm_ge_coefficients",
    "cpp_available",
]

# Ops of the proposed methods: DGL's fused concat head, MMANet's MAD loss, DMRNet's PME sample + KL.
from .dgl_head import dgl_concat_head, dgl_concat_head_reference, dgl_released_logits, dgl_released_step  # noqa: E402
from .mad import mad_loss, mad_loss_reference, mad_weights  # noqa: E402
from .pme import pme_reference, pme_sample_kl, pme_triton_eps  # noqa: E402

__all__ += [
    "dgl_concat_head", "dgl_concat_head_reference", "dgl_released_logits", "dgl_released_step",
    "mad_loss", "mad_loss_reference", "mad_weights",
    "pme_sample_kl", "pme_reference", "pme_triton_eps",
]
