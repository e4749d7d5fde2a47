"""Evaluation metrics for classification and semantic segmentation.

All scores are percentages (0-100), like :func:`vitnas.train.evaluate`'s top-1.

Segmentation scores come from a confusion matrix rather than per-batch averages: the matrix of
a whole split is the sum of its batches' matrices, so mIoU over a split is exact however it is
batched (a mean of per-batch mIoUs is not). Rows are the true class, columns the prediction;
pixels whose target is ``ignore_index`` (255, the Cityscapes / ADE20K convention for
"unlabelled") are left out entirely.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from vitnas.errors import ConfigError

IGNORE_INDEX = 255


def _check_range(values: torch.Tensor, num_classes: int, what: str) -> None:
    if values.numel() and (int(values.min()) < 0 or int(values.max()) >= num_classes):
        bad = int(values.max()) if int(values.max()) >= num_classes else int(values.min())
        raise ConfigError(f"{what} holds class {bad}, outside 0..{num_classes - 1}")


def confusion_matrix(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """The (num_classes, num_classes) int64 matrix counting pixels of true class ``i``
    predicted as ``j``; ``pred`` and ``target`` are integer label maps of the same shape.

    Add the matrices of several batches to score them together.
    """
    if num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if pred.shape != target.shape:
        raise ConfigError(
            f"prediction shape {tuple(pred.shape)} differs from target shape "
            f"{tuple(target.shape)}; pass class indices (argmax of the logits), not logits"
        )
    if pred.is_floating_point() or target.is_floating_point():
        raise ConfigError("confusion_matrix needs integer class maps, got floating-point input")
    target = target.reshape(-1).to(torch.int64)
    pred = pred.reshape(-1).to(torch.int64)
    keep = target != ignore_index
    target, pred = target[keep], pred[keep]
    _check_range(target, num_classes, "target")
    _check_range(pred, num_classes, "prediction")
    counts = torch.bincount(target * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes).cpu()


def iou_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """Intersection over union of every class, in %; NaN where the class appears in neither
    the targets nor the predictions (its union is empty, so its IoU is undefined)."""
    confusion = confusion.to(torch.float64)
    intersection = confusion.diagonal()
    union = confusion.sum(0) + confusion.sum(1) - intersection
    iou = 100.0 * intersection / union
    return torch.where(union > 0, iou, torch.full_like(iou, float("nan")))


def mean_iou(confusion: torch.Tensor) -> float:
    """Mean IoU (%) over the classes present in the targets or the predictions.

    A class with an empty union is excluded, not counted as 0 or 100: a split without any
    "train" pixel says nothing about how well trains are segmented. This is the convention of
    the Cityscapes and ADE20K benchmark scripts when scored over a whole split; a class that
    is only predicted (never true) has IoU 0 and does count. NaN when no pixel was scored.
    """
    iou = iou_per_class(confusion)
    present = ~torch.isnan(iou)
    return float(iou[present].mean()) if bool(present.any()) else float("nan")


def accuracy_per_class(confusion: torch.Tensor) -> torch.Tensor:
    """Recall of every class in %: its pixels predicted as it over its true pixels; NaN for a
    class with no true pixel (nothing to recall)."""
    confusion = confusion.to(torch.float64)
    true = confusion.sum(1)
    recall = 100.0 * confusion.diagonal() / true
    return torch.where(true > 0, recall, torch.full_like(recall, float("nan")))


def mean_accuracy(confusion: torch.Tensor) -> float:
    """mAcc (%): the mean over classes with true pixels of their recall, as the ADE20K and
    mmsegmentation reports give beside mIoU. Unlike pixel accuracy it weighs a rare class as
    much as the background, so a model that paints everything background scores low."""
    recall = accuracy_per_class(confusion)
    present = ~torch.isnan(recall)
    return float(recall[present].mean()) if bool(present.any()) else float("nan")


def segmentation_scores(confusion: torch.Tensor) -> dict[str, Any]:
    """Every split-level score of a confusion matrix: ``miou``, ``pixel_acc``, ``macc`` (%)
    and ``iou_per_class`` (a list, None where a class's IoU is undefined, so it is strict
    JSON)."""
    per_class = [None if math.isnan(v) else v for v in iou_per_class(confusion).tolist()]
    return {"miou": mean_iou(confusion), "pixel_acc": pixel_accuracy(confusion),
            "macc": mean_accuracy(confusion), "iou_per_class": per_class}


def predictions_at(logits: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """The (B, H, W) class map of (B, classes, h, w) logits at the label map's size (H, W):
    the logits are upsampled (bilinear) *before* the argmax. Scoring at the label's resolution
    is the benchmark protocol; an argmax at the model's coarser resolution, upsampled after,
    moves every boundary to the coarse grid, and labels shrunk to the model's size drop pixels
    the benchmark counts."""
    if tuple(logits.shape[-2:]) != tuple(size):
        logits = torch.nn.functional.interpolate(logits, size=tuple(size), mode="bilinear",
                                                 align_corners=False)
    return logits.argmax(1)


def pixel_accuracy(confusion: torch.Tensor) -> float:
    """Correctly classified pixels over all scored (non-ignored) pixels, in %; NaN if none."""
    total = int(confusion.sum())
    return 100.0 * int(confusion.diagonal().sum()) / total if total else float("nan")


def top1(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy (%) of (B, classes) logits against (B,) labels; NaN for an empty batch."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ConfigError(
            f"top1 needs (B, classes) logits and (B,) labels, got {tuple(logits.shape)} and "
            f"{tuple(labels.shape)}"
        )
    if not len(labels):
        return float("nan")
    return 100.0 * float((logits.argmax(1) == labels).double().mean())
