"""Token-length labels: for each image, the smallest token length whose prediction is correct.

Zhou & Zhu define the label that way; what happens when no length is correct is not published,
so it is a policy: ``largest`` (default, the conservative choice: hard images keep the full
length), ``smallest`` (they are wrong anyway, so spend the least), or ``drop`` (label -1, left
out of assigner training).
"""

from __future__ import annotations

import torch

from vitnas.errors import ConfigError

NONE_CORRECT_POLICIES = ("largest", "smallest", "drop")


def correct_by_length(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(K, N) booleans: is length k's prediction right on image n. ``logits`` is (K, N, C)."""
    if logits.ndim != 3 or logits.shape[1] != len(targets):
        raise ConfigError(f"expected logits (K, N, C) for {len(targets)} targets, got shape "
                          f"{tuple(logits.shape)}")
    return logits.argmax(dim=-1) == targets.unsqueeze(0)


def token_length_labels(correct: torch.Tensor, policy: str = "largest") -> torch.Tensor:
    """Label (N,) = index of the smallest correct length (lengths sorted shortest first).

    ``correct`` is (K, N) as :func:`correct_by_length` returns; images no length gets right are
    labelled by ``policy`` (-1 for ``drop``).
    """
    if policy not in NONE_CORRECT_POLICIES:
        raise ConfigError(f"none-correct policy {policy!r} is not one of "
                          f"{', '.join(NONE_CORRECT_POLICIES)}")
    num_lengths = correct.shape[0]
    any_correct = correct.any(dim=0)
    first = correct.to(torch.int8).argmax(dim=0)  # first True along the lengths
    fallback = {"largest": num_lengths - 1, "smallest": 0, "drop": -1}[policy]
    return torch.where(any_correct, first, torch.full_like(first, fallback)).to(torch.int64)


def label_histogram(labels: torch.Tensor, num_lengths: int) -> list[int]:
    """Images per length index (dropped labels, -1, are not counted)."""
    kept = labels[labels >= 0]
    return torch.bincount(kept, minlength=num_lengths).tolist()
