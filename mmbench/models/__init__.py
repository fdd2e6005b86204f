"""Encoders, fusion heads and the multimodal model shared by every method."""
from mmbench.models.encoders import ImageEncoder, MLPEncoder, SeriesEncoder, build_encoder
from mmbench.models.fusion import (
    FUSIONS,
    ConcatFusion,
    FiLMFusion,
    FusionHead,
    GatedFusion,
    SumFusion,
    build_fusion,
    unimodal_heads,
)
from mmbench.models.model import MultimodalModel

__all__ = [
    "FUSIONS", "ConcatFusion", "FiLMFusion", "FusionHead", "GatedFusion", "ImageEncoder", "MLPEncoder",
    "MultimodalModel", "SeriesEncoder", "SumFusion", "build_encoder", "build_fusion", "unimodal_heads",
]
