"""Image transforms on batched torch tensors.

They work on a whole ``(B, C, H, W)`` batch at once (a single ``(C, H, W)`` image is accepted
too), because one vectorised op per batch is far cheaper than a Python call per image. Random
transforms draw only from the ``generator`` they are given, so a seeded generator gives the
same augmented batch every time; ``generator=None`` falls back to torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.nn import functional

from vitnas.errors import ConfigError

# Per-channel statistics of the training splits (pixel values scaled to [0, 1]).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _as_batch(x: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim == 4:
        return x, False
    raise ConfigError(
        f"expected an image (C, H, W) or batch (B, C, H, W), got shape {tuple(x.shape)}"
    )


def _pair(size: int | Sequence[int], what: str) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    if h < 1 or w < 1:
        raise ConfigError(f"{what} must be positive, got {size}")
    return int(h), int(w)


class Transform:
    """Base class: ``t(x, generator=None)`` maps an image or batch to a new tensor."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def apply_transform(
    transform: Callable[..., torch.Tensor] | None,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Apply a vitnas ``Transform`` (passing the generator) or any plain ``f(x)`` callable."""
    if transform is None:
        return x
    if isinstance(transform, Transform):
        return transform(x, generator=generator)
    return transform(x)


class Compose(Transform):
    """Apply transforms in order, threading the same generator through all of them."""

    def __init__(self, transforms: Sequence[Callable[..., torch.Tensor]]) -> None:
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = apply_transform(t, x, generator)
        return x


class Normalize(Transform):
    """``(x - mean) / std`` per channel; ``inverse`` undoes it (e.g. to look at a batch)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        if len(mean) != len(std):
            raise ConfigError(f"mean has {len(mean)} channels but std has {len(std)}")
        if any(s <= 0 for s in std):
            raise ConfigError(f"std must be positive, got {tuple(std)}")
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)

    @classmethod
    def for_dataset(cls, dataset: object) -> Normalize:
        """The normalisation matching a dataset's ``mean``/``std`` attributes."""
        return cls(dataset.mean, dataset.std)  # type: ignore[attr-defined]

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        channels = x.shape[-3]
        if channels != len(self.mean):
            raise ConfigError(f"Normalize has {len(self.mean)} channels, input has {channels}")
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(-1, 1, 1)
        return mean, std

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = x if x.is_floating_point() else x.float()
        mean, std = self._stats(x)
        return (x - mean) / std

    def inverse(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = self._stats(x)
        return x * std + mean


class RandomCrop(Transform):
    """Zero-pad by ``padding`` then crop ``size`` at an independent random offset per sample.

    Apply it before ``Normalize`` so the padding is black, as in the usual CIFAR recipe.
    """

    def __init__(self, size: int | Sequence[int], padding: int = 0) -> None:
        self.size = _pair(size, "crop size")
        if padding < 0:
            raise ConfigError(f"padding must be >= 0, got {padding}")
        self.padding = int(padding)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(x)
        if self.padding:
            p = self.padding
            batch = functional.pad(batch, (p, p, p, p))
        b, _c, h, w = batch.shape
        ch, cw = self.size
        if ch > h or cw > w:
            raise ConfigError(f"crop {self.size} larger than padded image ({h}, {w})")
        top = torch.randint(0, h - ch + 1, (b,), generator=generator)
        left = torch.randint(0, w - cw + 1, (b,), generator=generator)
        rows = (top[:, None] + torch.arange(ch)).to(batch.device)  # (B, ch)
        cols = (left[:, None] + torch.arange(cw)).to(batch.device)  # (B, cw)
        idx_b = torch.arange(b, device=batch.device)[:, None, None, None]
        idx_c = torch.arange(batch.shape[1], device=batch.device)[None, :, None, None]
        out = batch[idx_b, idx_c, rows[:, None, :, None], cols[:, None, None, :]]
        return out[0] if single else out


class RandomHorizontalFlip(Transform):
    """Mirror each sample left-right independently with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1], got {p}")
        self.p = float(p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(x)
        flip = torch.rand(batch.shape[0], generator=generator) < self.p
        out = torch.where(flip.to(batch.device)[:, None, None, None], batch.flip(-1), batch)
        return out[0] if single else out


class Resize(Transform):
    """Resize to ``size`` (int = square) with ``interpolate``; antialiased when shrinking."""

    def __init__(self, size: int | Sequence[int], mode: str = "bilinear") -> None:
        self.size = _pair(size, "resize size")
        if mode not in ("nearest", "bilinear", "bicubic", "area"):
            raise ConfigError(f"unsupported resize mode {mode!r}")
        self.mode = mode

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        batch, single = _as_batch(x)
        if tuple(batch.shape[-2:]) == self.size:
            return x
        if not batch.is_floating_point():
            batch = batch.float()
        kwargs = {}
        if self.mode in ("bilinear", "bicubic"):
            shrinking = self.size[0] < batch.shape[-2] or self.size[1] < batch.shape[-1]
            kwargs = {"align_corners": False, "antialias": shrinking}
        out = functional.interpolate(batch, size=self.size, mode=self.mode, **kwargs)
        return out[0] if single else out


def cifar_train_transform(
    mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD, size: int = 32
) -> Compose:
    """The standard CIFAR augmentation: 4-pixel pad + random crop, flip, then normalise."""
    return Compose([RandomCrop(size, padding=4), RandomHorizontalFlip(), Normalize(mean, std)])
