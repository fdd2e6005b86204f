"""Joint training: every encoder and the fusion head trained end to end on the fused cross-entropy.

The reference point of the leaderboard: every other method's step time is reported relative to
``joint`` on the same data set. One entry per fusion head (concat, sum, gated, FiLM).
"""
from mmbench.methods.base import Method, register_method


@register_method
class Joint(Method):
    """Joint training, concat fusion: minimise CE(W[x_1; ...; x_M] + b, y)."""

    name = "joint"


@register_method
class JointSum(Method):
    """Joint training, sum fusion: z = sum_m (W_m x_m + b_m)."""

    name = "joint-sum"
    train_overrides = {"fusion": "sum"}


@register_method
class JointGated(Method):
    """Joint training, gated fusion: the first modality gates the others (OGM-GE's GatedFusion)."""

    name = "joint-gated"
    train_overrides = {"fusion": "gated"}


@register_method
class JointFiLM(Method):
    """Joint training, FiLM fusion: the first modality scales and shifts the others."""

    name = "joint-film"
    train_overrides = {"fusion": "film"}
