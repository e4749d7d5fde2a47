"""Adaptive token length (Zhou & Zhu, ECML PKDD 2023): ReViT, token-length labels, the
Token-Length Assigner, bucketed inference, and the simple peers it is compared with (the
confidence-skip rule, the DVT-style cascade, token merging).

Modules in reading order: model (the resizable ViT, searched architectures), training
(objectives, the resumable loop, the unseen-image split), labels, assigner (targets, features,
decision rules), inference, peers (confidence rules chosen on the pool), tome (token merging),
metrics (prior, AUC, the fixed-length curve, timing intervals), evaluate, artifacts (files),
pipeline (the CLI's steps).
"""

from vitnas.revit.assigner import AssignerConfig, TokenLengthAssigner, decide, train_assigner
from vitnas.revit.inference import bucketed_predict, cascade_predict, predict_at, skip_predict
from vitnas.revit.labels import correct_by_length, token_length_labels
from vitnas.revit.model import (
    ResizableViT,
    ReViTConfig,
    TokenLength,
    build_revit,
    config_from_arch,
    length_grid,
    pi_resize_kernel,
    with_grids,
)
from vitnas.revit.tome import tome_forward
from vitnas.revit.training import (
    SplitSpec,
    fit_resumable,
    predict_lengths,
    revit_objective,
    train_revit,
)

__all__ = [
    "AssignerConfig",
    "ReViTConfig",
    "ResizableViT",
    "SplitSpec",
    "TokenLength",
    "TokenLengthAssigner",
    "bucketed_predict",
    "build_revit",
    "cascade_predict",
    "config_from_arch",
    "correct_by_length",
    "decide",
    "fit_resumable",
    "length_grid",
    "pi_resize_kernel",
    "predict_at",
    "predict_lengths",
    "revit_objective",
    "skip_predict",
    "token_length_labels",
    "tome_forward",
    "train_assigner",
    "train_revit",
    "with_grids",
]
