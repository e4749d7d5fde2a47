"""Seeded batch iteration.

Everything random here -- the sample order, the augmentation -- comes from generators seeded by
the caller, so a training run or a proxy score can be reproduced exactly from its seed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from vitnas.data.datasets import ArrayDataset
from vitnas.data.transforms import apply_transform
from vitnas.errors import ConfigError

Batch = tuple[torch.Tensor, torch.Tensor]
BatchTransform = Callable[..., torch.Tensor]


def _generators(seed: int) -> tuple[torch.Generator, torch.Generator]:
    """Independent generators for the order and the augmentation, both derived from ``seed``."""
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    order_state, aug_state = (
        int(s.generate_state(1, np.uint64)[0] >> np.uint64(1))
        for s in np.random.SeedSequence(seed).spawn(2)
    )
    return torch.Generator().manual_seed(order_state), torch.Generator().manual_seed(aug_state)


def _labels(dataset: Dataset) -> torch.Tensor:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        labels = getattr(dataset, "targets", None)
    if labels is None:  # a generic dataset: ask every sample (slow, but correct)
        labels = [dataset[i][1] for i in range(len(dataset))]  # type: ignore[arg-type]
    return torch.as_tensor(labels, dtype=torch.int64)


def iterate_batches(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool = True,
    seed: int = 0,
    transform: BatchTransform | None = None,
    drop_last: bool = False,
    num_workers: int = 0,
) -> Iterator[Batch]:
    """Yield ``(images float32 (B, C, H, W), labels int64 (B,))`` covering the dataset once.

    Images are in [0, 1] unless ``transform`` (applied per batch, with a generator seeded from
    ``seed``) changes them, e.g. ``Normalize``. Use a different ``seed`` per epoch for a new
    order. ArrayDatasets are batched by tensor indexing; other datasets go sample by sample
    (through a ``DataLoader`` with ``num_workers`` > 0, to decode in parallel).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)  # type: ignore[arg-type]
    order_gen, aug_gen = _generators(seed)
    order = torch.randperm(n, generator=order_gen) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    chunks = [order[i : min(i + batch_size, stop)] for i in range(0, stop, batch_size)]

    if isinstance(dataset, ArrayDataset) and dataset.transform is None:
        for idx in chunks:
            x = dataset.images[idx].float().div_(255.0)
            yield apply_transform(transform, x, aug_gen), dataset.labels[idx]
        return

    if num_workers > 0:
        loader = DataLoader(
            dataset, batch_sampler=[c.tolist() for c in chunks], num_workers=num_workers
        )
        for x, y in loader:
            yield apply_transform(transform, x.float(), aug_gen), y.to(torch.int64)
        return

    for idx in chunks:
        samples = [dataset[int(i)] for i in idx]
        x = torch.stack([s[0] for s in samples]).float()
        y = torch.tensor([int(s[1]) for s in samples], dtype=torch.int64)
        yield apply_transform(transform, x, aug_gen), y


def balanced_indices(labels: torch.Tensor, n: int, seed: int = 0) -> torch.Tensor:
    """``n`` distinct indices spreading over the classes as evenly as possible.

    Classes are visited round-robin in a seeded order, each contributing its samples in a
    seeded order, so the first ``num_classes`` picks are all from different classes.
    """
    total = len(labels)
    if not 1 <= n <= total:
        raise ConfigError(f"need 1 <= n <= {total} (dataset size), got n={n}")
    gen = torch.Generator().manual_seed(int(seed))
    classes = torch.unique(labels)
    classes = classes[torch.randperm(len(classes), generator=gen)]
    indices, keys = [], []
    for position, cls in enumerate(classes):
        members = torch.nonzero(labels == cls).flatten()
        indices.append(members[torch.randperm(len(members), generator=gen)])
        # rank within the class first, class position second: a round-robin over classes
        keys.append(torch.arange(len(members)) * len(classes) + position)
    order = torch.argsort(torch.cat(keys))
    return torch.cat(indices)[order[:n]]


def fixed_batch(
    dataset: Dataset, n: int, seed: int = 0, transform: BatchTransform | None = None
) -> Batch:
    """One reproducible batch ``(x, y)``: same dataset + seed -> identical tensors.

    Training-free proxies score architectures on a single batch; drawing it class-balanced and
    from a fixed seed makes scores comparable between architectures and runs.
    """
    idx = balanced_indices(_labels(dataset), n, seed)
    if isinstance(dataset, ArrayDataset) and dataset.transform is None:
        x = dataset.images[idx].float().div_(255.0)
        y = dataset.labels[idx].clone()
    else:
        samples = [dataset[int(i)] for i in idx]
        x = torch.stack([s[0] for s in samples]).float()
        y = torch.tensor([int(s[1]) for s in samples], dtype=torch.int64)
    _, aug_gen = _generators(seed)
    return apply_transform(transform, x, aug_gen), y
