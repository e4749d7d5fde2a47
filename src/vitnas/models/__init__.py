"""Standalone models built from architectures. Every model follows one contract:
``forward_features(x)`` -> features, ``forward_head(features)`` -> logits, ``forward = both``."""

from vitnas.models.nb201 import NB201Network
from vitnas.models.pit import PoolingTransformer
from vitnas.models.segmentation import FPNDecoder, SegmentationModel
from vitnas.models.swin import HierarchicalViT
from vitnas.models.vit import VisionTransformer

__all__ = [
    "FPNDecoder",
    "HierarchicalViT",
    "NB201Network",
    "PoolingTransformer",
    "SegmentationModel",
    "VisionTransformer",
]
