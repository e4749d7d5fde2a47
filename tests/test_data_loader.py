"""Seeded batch iteration and the fixed proxy batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from vitnas.data import (
    ArrayDataset,
    ImageFolder,
    Normalize,
    RandomCrop,
    SyntheticDataset,
    fixed_batch,
    iterate_batches,
)
from vitnas.errors import ConfigError


def _indexed_dataset(n: int = 23, classes: int = 4) -> ArrayDataset:
    """Image i is filled with the value i, so batches reveal which samples they hold."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 1, 2, 2).clone()
    return ArrayDataset(images, torch.arange(n) % classes)


def _ids(x: torch.Tensor) -> list[int]:
    return [round(v) for v in (x[:, 0, 0, 0] * 255).tolist()]


@pytest.mark.parametrize("shuffle", [True, False])
def test_every_sample_appears_exactly_once_per_epoch(shuffle: bool) -> None:
    ds = _indexed_dataset()
    seen, sizes = [], []
    for x, y in iterate_batches(ds, 5, shuffle=shuffle, seed=1):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.min() >= 0 and x.max() <= 1
        ids = _ids(x)
        assert y.tolist() == [i % 4 for i in ids]
        seen += ids
        sizes.append(len(ids))
    assert sorted(seen) == list(range(23)) and sizes == [5, 5, 5, 5, 3]
    assert (seen == list(range(23))) != shuffle


def test_drop_last_drops_the_short_batch() -> None:
    sizes = [len(y) for _, y in iterate_batches(_indexed_dataset(), 5, drop_last=True)]
    assert sizes == [5, 5, 5, 5]


def test_same_seed_same_order_and_augmentation() -> None:
    ds = SyntheticDataset(40, image_size=8)
    crop = RandomCrop(8, padding=2)

    def epoch(seed: int) -> list[torch.Tensor]:
        return [x for x, _ in iterate_batches(ds, 16, seed=seed, transform=crop)]

    first, again, other = epoch(7), epoch(7), epoch(8)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])


def test_batch_transform_normalises() -> None:
    ds = SyntheticDataset(64, image_size=8)
    norm = Normalize.for_dataset(ds)
    x = torch.cat([x for x, _ in iterate_batches(ds, 64, transform=norm)])
    assert x.mean().abs() < 0.05 and (x.std() - 1).abs() < 0.1


def test_image_folder_uses_the_generic_path_and_matches_its_samples(tmp_path: Path) -> None:
    for k in range(5):
        (tmp_path / f"c{k % 2}").mkdir(exist_ok=True)
        Image.new("RGB", (4, 4), (k * 50, 0, 0)).save(tmp_path / f"c{k % 2}" / f"{k}.png")
    ds = ImageFolder(tmp_path)
    batches = list(iterate_batches(ds, 2, shuffle=False))
    assert [len(y) for _, y in batches] == [2, 2, 1]
    x = torch.cat([b[0] for b in batches])
    assert torch.equal(x, torch.stack([ds[i][0] for i in range(len(ds))]))
    assert torch.cat([b[1] for b in batches]).tolist() == ds.labels.tolist()


def test_fixed_batch_is_reproducible_and_class_balanced() -> None:
    ds = SyntheticDataset(100, num_classes=10)
    x1, y1 = fixed_batch(ds, 25, seed=4)
    x2, y2 = fixed_batch(ds, 25, seed=4)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert x1.shape == (25, 3, 32, 32) and y1.dtype == torch.int64
    assert sorted(y1.bincount(minlength=10).tolist()) == [2] * 5 + [3] * 5
    assert len(set(y1[:10].tolist())) == 10  # first picks all from different classes
    x3, _ = fixed_batch(ds, 25, seed=5)
    assert not torch.equal(x1, x3)


def test_fixed_batch_with_few_samples_of_a_class_fills_from_the_others() -> None:
    labels = torch.tensor([0] * 8 + [1])
    ds = ArrayDataset(torch.zeros(9, 1, 2, 2, dtype=torch.uint8), labels)
    _, y = fixed_batch(ds, 5, seed=0)
    assert sorted(y.tolist()) == [0, 0, 0, 0, 1]


def test_fixed_batch_rejects_impossible_sizes() -> None:
    with pytest.raises(ConfigError):
        fixed_batch(_indexed_dataset(), 24)
    with pytest.raises(ConfigError):
        list(iterate_batches(_indexed_dataset(), 0))
