"""Which device a command computes on: checked once, before any data is loaded or model built."""

from __future__ import annotations

import torch

from vitnas.errors import ConfigError


def check_device(name: str) -> str:
    """``name`` if this machine has it ("cpu", "cuda", "cuda:1", "mps"); else a ConfigError
    that says what is available."""
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {name!r}; use cpu or cuda (cuda:N for one GPU)"
                          ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device {name!r}: CUDA is not available on this machine; use "
                              "--device cpu")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"device {name!r}: this machine has {count} CUDA device(s)")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"device {name!r}: MPS is not available on this machine")
    elif device.type != "cpu":
        raise ConfigError(f"device {name!r} is not supported; use cpu or cuda")
    return name


def memory_bytes(device: str = "cpu") -> int:
    """The memory a device has: a CUDA device's total, else this machine's physical RAM."""
    if _is_cuda(device) and torch.cuda.is_available():
        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    import os

    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not POSIX: nothing to compare against
        return 2**63


def check_fits(nbytes: float, what: str, device: str = "cpu") -> None:
    """Refuse, before anything is allocated, a size whose estimate (a lower bound: ``nbytes``)
    exceeds the device's whole memory; ``what`` says which options make it."""
    have = memory_bytes(device)
    if nbytes > have:
        raise ConfigError(f"{what} needs at least {_gib(nbytes)} of memory; this machine's "
                          f"{'GPU' if _is_cuda(device) else 'RAM'} is "
                          f"{_gib(have)}")


def model_bytes(space, arch, batch_size: int, training: bool = False) -> float:
    """A lower bound of what scoring (or training) ``arch`` on a batch takes: float32 weights
    and their gradients (plus Adam's two moments when training) and the input batch."""
    weights = float(space.params(arch)) * 4 * (4 if training else 2)
    images = float(batch_size) * space.in_chans * float(space.img_size) ** 2 * 4
    return weights + images


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:,.1f} GiB"


def _is_cuda(device: str) -> bool:
    try:
        return torch.device(device).type == "cuda"
    except (RuntimeError, TypeError):  # an unknown name: check_device reports it
        return False
