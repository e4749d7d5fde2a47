"""What a proxy batch's labels say per image, for classification and dense prediction alike.

Classification labels are (N,) class indices. Segmentation labels are (N, H, W) maps, with
ignored pixels marked ``IGNORE`` (torch's default ``ignore_index``, so every
``F.cross_entropy`` in the proxies already skips them). Proxies that need one target per image
(the label kernel of LGA, NTK kernel regression, a per-sample scalar of the NTK) read it here:
an image's target is its one-hot class, or for a label map the frequency of each class over its
valid pixels (documented scalarisation: a dense image is the mixture of its pixels' classes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100  # torch's default ignore_index


def is_dense(labels: torch.Tensor) -> bool:
    """Per-pixel labels (N, H, W) rather than one class per image (N,)."""
    return labels.dim() == 3


def image_targets(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, num_classes) float64: one-hot, or each image's class frequencies over valid pixels
    (rows of an image with no valid pixel are zero)."""
    if not is_dense(labels):
        return F.one_hot(labels, num_classes).double()
    flat = labels.reshape(labels.shape[0], -1)
    valid = (flat >= 0) & (flat < num_classes)
    counts = torch.zeros(labels.shape[0], num_classes, dtype=torch.float64)
    counts.scatter_add_(1, flat.clamp(0, num_classes - 1), valid.double())
    return counts / counts.sum(dim=1, keepdim=True).clamp_min(1)


def image_labels(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N,) one class per image: the label itself, or a label map's most frequent valid class."""
    if not is_dense(labels):
        return labels
    return image_targets(labels, num_classes).argmax(dim=1)


def distinct_classes(labels: torch.Tensor) -> int:
    """How many classes the batch holds (ignored pixels do not count)."""
    return int(torch.unique(labels[labels >= 0]).numel())


def repeat_batch(labels: torch.Tensor, times: int) -> torch.Tensor:
    """The labels of ``times`` stacked copies of the batch (a view per copy along dim 0)."""
    return labels.repeat(times, *([1] * (labels.dim() - 1)))
