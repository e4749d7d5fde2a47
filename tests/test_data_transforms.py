"""Batched tensor transforms."""

from __future__ import annotations

import pytest
import torch

from vitnas.data import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    cifar_train_transform,
)
from vitnas.errors import ConfigError


def _batch(b: int = 8, c: int = 3, h: int = 10, w: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=torch.Generator().manual_seed(seed))


def test_same_seed_gives_the_same_augmented_batch() -> None:
    x = _batch()
    t = cifar_train_transform(size=8)
    a = t(x, generator=torch.Generator().manual_seed(5))
    b = t(x, generator=torch.Generator().manual_seed(5))
    c = t(x, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_random_crop_shape_and_zero_padding() -> None:
    x = torch.ones(16, 3, 8, 8)
    out = RandomCrop(8, padding=4)(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == (16, 3, 8, 8)
    assert (out == 0).any() and set(out.unique().tolist()) <= {0.0, 1.0}
    assert RandomCrop((5, 7))(_batch()).shape == (8, 3, 5, 7)
    assert RandomCrop(4)(_batch()[0]).shape == (3, 4, 4)


def test_random_crop_picks_offsets_per_sample_and_copies_windows() -> None:
    x = torch.arange(36.0).reshape(1, 1, 6, 6).repeat(64, 3, 1, 1)
    out = RandomCrop(3)(x, generator=torch.Generator().manual_seed(1))
    corners = {int(v) for v in out[:, 0, 0, 0]}
    assert len(corners) > 5  # different offsets across the batch
    for window in out[:, 0]:
        top, left = divmod(int(window[0, 0]), 6)
        assert torch.equal(window, x[0, 0, top : top + 3, left : left + 3])
    assert torch.equal(out[:, 0], out[:, 2])  # same offset for all channels of a sample


def test_crop_larger_than_image_is_rejected() -> None:
    with pytest.raises(ConfigError):
        RandomCrop(20)(_batch())


def test_flip_mirrors_exactly_the_chosen_samples() -> None:
    x = _batch(b=64)
    out = RandomHorizontalFlip(0.5)(x, generator=torch.Generator().manual_seed(2))
    flipped = [torch.equal(o, s.flip(-1)) for o, s in zip(out, x, strict=True)]
    kept = [torch.equal(o, s) for o, s in zip(out, x, strict=True)]
    assert all(f != k for f, k in zip(flipped, kept, strict=True))
    assert 15 < sum(flipped) < 49
    assert torch.equal(RandomHorizontalFlip(1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(0.0)(x), x)


def test_normalize_inverse_round_trips() -> None:
    x = _batch()
    norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
    y = norm(x)
    torch.testing.assert_close(y[:, 1], (x[:, 1] - CIFAR10_MEAN[1]) / CIFAR10_STD[1])
    torch.testing.assert_close(norm.inverse(y), x)


def test_normalize_rejects_wrong_channel_count() -> None:
    with pytest.raises(ConfigError, match="channels"):
        Normalize((0.5,), (0.5,))(_batch(c=3))
    with pytest.raises(ConfigError):
        Normalize((0.5, 0.5), (0.5,))


def test_resize_changes_spatial_size_and_keeps_constants() -> None:
    x = torch.full((2, 3, 32, 32), 0.25)
    for size in (16, 48, (20, 40)):
        out = Resize(size)(x)
        expected = (size, size) if isinstance(size, int) else size
        assert out.shape == (2, 3, *expected)
        torch.testing.assert_close(out, torch.full_like(out, 0.25))
    assert Resize(8)(x[0]).shape == (3, 8, 8)


def test_compose_passes_plain_callables_and_the_generator() -> None:
    x = _batch()
    t = Compose([RandomHorizontalFlip(), lambda v: v * 2])
    a = t(x, generator=torch.Generator().manual_seed(3))
    b = RandomHorizontalFlip()(x, generator=torch.Generator().manual_seed(3)) * 2
    assert torch.equal(a, b)
