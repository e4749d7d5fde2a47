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
