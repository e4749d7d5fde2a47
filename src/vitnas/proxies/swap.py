"""SWAP (Peng et al., ICLR 2024): how many distinct sample-wise activation patterns a net makes.

Every activation unit (one channel at one position: a CNN feature-map entry, or one MLP hidden
unit of one ViT token) gets a binary code over the batch: bit n is [pre-activation of sample n
> 0] (ReLU, and GELU, are positive exactly there). SWAP is the cardinality |A| of the *set* of
these sample-wise patterns over the whole network (duplicates count once), bounded by
min(#units, 2^N) for a batch of N. NASWOT compares samples (an N x N kernel); SWAP compares
units, so it keeps growing with width and depth until the 2^N ceiling.

What a "unit" is (``unit``): ``position`` (default, the paper's CNN reading) makes every
channel at every position a unit with an N-bit pattern over the images; ``channel`` makes every
channel (MLP hidden unit) one unit whose pattern runs over all images x positions (tokens). With
``position`` the count cannot exceed 2^N: at 224 px an AutoFormer-T batch of 16 saturates at
65536 for every architecture (a warning says so); ``channel`` has no such ceiling.

The optional size regulariser (the paper's "SWAP with regularisation") multiplies the score by
f(P) = exp(-(P - mu)^2 / sigma), P the parameter count in millions, to steer a search towards a
target size ``mu``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.flops import count_params
from vitnas.proxies.base import FORWARD, PROXIES, Proxy, ProxyContext

ACTIVATION_TYPES = (nn.ReLU, nn.GELU)
UNITS = ("position", "channel")
_BITS = 62  # sample bits packed per int64 key (sign bit and one spare left free)


def activation_modules(model: nn.Module) -> list[nn.Module]:
    """The ReLU / GELU modules in module order (NB201's ReLUs; every ViT / PiT MLP's GELU)."""
    return [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]


def pattern_keys(codes: torch.Tensor) -> torch.Tensor:
    """(N bits, M units) booleans -> (M, 1 + ceil(N/62)) int64 keys, one row per unit's pattern.

    The first column is N: patterns of different lengths (PiT's stages have different token
    counts, so ``unit=channel`` patterns differ in length) are different patterns."""
    n = codes.shape[0]
    units = codes.T.to(torch.int64)  # (M, N)
    chunks = [torch.full((units.shape[0],), n, dtype=torch.int64)]
    for start in range(0, n, _BITS):
        part = units[:, start:start + _BITS]
        weights = torch.pow(2, torch.arange(part.shape[1], dtype=torch.int64))
        chunks.append(part @ weights)
    return torch.stack(chunks, dim=1)


def count_patterns(keys: list[torch.Tensor]) -> int:
    """Cardinality of the union of the unit patterns in ``keys`` (rows from ``pattern_keys``)."""
    by_width: dict[int, list[torch.Tensor]] = {}
    for block in keys:
        by_width.setdefault(block.shape[1], []).append(block)
    return sum(int(torch.unique(torch.cat(blocks), dim=0).shape[0])
               for blocks in by_width.values())


def unit_codes(act: torch.Tensor, unit: str) -> torch.Tensor:
    """Activation signs as (pattern bits, units): see ``unit`` in the module docstring."""
    codes = act.detach() > 0
    if unit == "position":
        return codes.reshape(codes.shape[0], -1)
    if codes.dim() == 4:  # (B, C, H, W): channels last
        codes = codes.movedim(1, -1)
    return codes.reshape(-1, codes.shape[-1])


def record_pattern_keys(model: nn.Module, inputs: torch.Tensor, modules: list[nn.Module],
                        unit: str = "position") -> list[torch.Tensor]:
    """One forward pass; the pattern keys of the input of each module in ``modules``."""
    keys: list[torch.Tensor] = []

    def hook(module, args):
        keys.append(pattern_keys(unit_codes(args[0], unit).cpu()))

    handles = [m.register_forward_pre_hook(hook) for m in modules]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return keys


def warn_if_saturated(ctx: ProxyContext, name: str, unit: str, count: float) -> None:
    """Say so when a position count sits at its 2^N ceiling (every pattern seen: no signal)."""
    bits = ctx.inputs.shape[0]
    if unit == "position" and bits < 62 and count >= 2**bits:
        ctx.warn(f"{name}: all 2^{bits} patterns occur (saturated); try unit=channel")


def size_regulariser(params_millions: float, mu: float, sigma: float) -> float:
    """SWAP's f(P) = exp(-(P - mu)^2 / sigma), P and mu in millions of parameters."""
    return math.exp(-((params_millions - mu) ** 2) / sigma)


@dataclass(frozen=True)
class SwapConfig:
    """``mu`` > 0 switches the size regulariser on (target size, millions of parameters);
    ``sigma`` is its width (millions squared: f = 1/e at |P - mu| = sqrt(sigma))."""

    mu: float = 0.0
    sigma: float = 1.0
    unit: str = "position"

    def check(self) -> None:
        if self.unit not in UNITS:
            raise ConfigError(f"swap unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.mu < 0 or not self.sigma > 0:
            raise ConfigError(f"swap needs mu >= 0 and sigma > 0, got {self.mu}, {self.sigma}")


@PROXIES.register("swap")
class Swap(Proxy):
    name = "swap"
    direction = 1
    cost = FORWARD
    reference = (
        "Peng et al., SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS, ICLR 2024"
    )
    Config = SwapConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        modules = activation_modules(model)
        if not modules:
            ctx.warn("swap: the model has no nn.ReLU or nn.GELU module")
            return math.nan
        device = next(model.parameters()).device
        keys = record_pattern_keys(model, ctx.inputs.to(device), modules, self.config.unit)
        score = float(count_patterns(keys))
        warn_if_saturated(ctx, self.name, self.config.unit, score)
        if self.config.mu > 0:
            params = (ctx.space.params(ctx.arch) if ctx.space is not None and ctx.arch is not None
                      else count_params(model))
            score *= size_regulariser(params / 1e6, self.config.mu, self.config.sigma)
        return score
