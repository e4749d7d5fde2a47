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
``position`` the count cannot exceed 2^N, and a count at that ceiling carries no signal (a
warning says so): at 224 px with a batch of 16 the ViT-Bench-101 AutoFormer-T architectures
count 34k-61k of 65,536 (mean over 32 initialisations), close to it. ``channel`` has no such
ceiling, but there every MLP unit's pattern is distinct (all 47 architectures of the
AutoFormer dev half): at one initialisation it equals the number of MLP units, a shape count.

Repeated initialisations (``inits``): the reference code (github.com/pym1024/SWAP,
``correlation.py``, ``--repeats`` default 32) scores each architecture 32 times, re-drawing every
weight before each pass, and ranks by the mean; one draw of a small net is noisy. Here the first
pass uses the model as built (the scoring seed's weights), and pass i > 0 re-draws the weights
as the model's constructor does (each layer's ``reset_parameters``, then the family's
``_init_weights``) under seed ``ctx.seed + i``, so a score stays a function of (architecture,
config, seed, batch); it costs ``inits`` forward passes. The reference re-draws with N(0, 1)
weights (its ``network_weight_gaussian_init``), the first pass included, rather than with the
family's initialisation; the boards compare every proxy at the weights a model is trained from,
so the family's own routine is kept.

The optional size regulariser (the paper's "SWAP with regularisation") multiplies the score by
f(P) = exp(-(P - mu)^2 / sigma). The reference code counts P in thousands of parameters
(``count_parameters`` divides by 1e3), so ``param_unit="thousands"`` is the default and ``mu`` and
``sigma`` are read in that unit; ``param_unit="millions"`` keeps this package's earlier reading.
Which ``mu`` and ``sigma`` the paper used for each space could not be checked here.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.flops import count_params
from vitnas.proxies.base import FORWARD, PROXIES, Proxy, ProxyContext, ceiling, read_when

ACTIVATION_TYPES = (nn.ReLU, nn.GELU)
UNITS = ("position", "channel")
PARAM_UNITS = {"thousands": 1e3, "millions": 1e6}
REFERENCE_INITS = 32  # the reference code's --repeats
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
    """Cardinality of the union of the unit patterns in ``keys`` (rows from ``pattern_keys``).

    Patterns are grouped by their length (a block's first column, one value per block); a
    length of at most 62 bits is one int64 per pattern, counted with a flat ``unique``, which
    is about 50x faster than the row-wise ``unique(dim=0)`` the longer patterns need (at
    224 px a ViT has millions of position units, and SWAP counts them 32 times)."""
    by_length: dict[int, list[torch.Tensor]] = {}
    for block in keys:
        if block.shape[0]:
            by_length.setdefault(int(block[0, 0]), []).append(block[:, 1:])
    total = 0
    for blocks in by_length.values():
        joined = torch.cat(blocks)
        total += int((torch.unique(joined[:, 0]) if joined.shape[1] == 1
                      else torch.unique(joined, dim=0)).shape[0])
    return total


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


def size_regulariser(params: float, mu: float, sigma: float) -> float:
    """SWAP's f(P) = exp(-(P - mu)^2 / sigma), P and mu in one unit (``param_unit``)."""
    return math.exp(-((params - mu) ** 2) / sigma)


def reinitialise(model: nn.Module, seed: int) -> None:
    """Re-draw every weight of ``model`` under ``seed`` as its constructor would: each layer's
    ``reset_parameters``, then every ``_init_weights`` (the family's initialisation, inner
    modules before the ones holding them, as they run when a model is built)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        modules = list(model.modules())
        for module in modules:
            reset = getattr(module, "reset_parameters", None)
            if callable(reset):
                reset()
        for module in reversed(modules):
            init = getattr(module, "_init_weights", None)
            if callable(init):
                init()


@dataclass(frozen=True)
class SwapConfig:
    """``inits``: initialisations averaged (the reference's 32; 1 scores the model as built).
    ``mu`` > 0 switches the size regulariser on (target size in ``param_unit``); ``sigma`` is
    its width in that unit squared (f = 1/e at |P - mu| = sqrt(sigma)); ``param_unit``:
    thousands (the reference code) or millions."""

    mu: float = ceiling(0.0, 1e9)
    sigma: float = ceiling(1.0, 1e9)
    unit: str = "position"
    inits: int = ceiling(REFERENCE_INITS, 1024)
    param_unit: str = "thousands"

    def check(self) -> None:
        if self.unit not in UNITS:
            raise ConfigError(f"swap unit must be one of {', '.join(UNITS)}, not {self.unit!r}")
        if self.mu < 0 or not self.sigma > 0:
            raise ConfigError(f"swap needs mu >= 0 and sigma > 0, got {self.mu}, {self.sigma}")
        if self.inits < 1:
            raise ConfigError(f"swap needs inits >= 1 initialisations, got {self.inits}")
        if self.param_unit not in PARAM_UNITS:
            raise ConfigError(f"swap param_unit must be one of {', '.join(PARAM_UNITS)}, "
                              f"not {self.param_unit!r}")

    def read_options(self) -> frozenset[str]:
        """The regulariser's width and unit are read only when it is on (mu > 0)."""
        names = {f.name for f in dataclasses.fields(self)}
        return frozenset(names if self.mu > 0 else names - {"sigma", "param_unit"})

    def setting(self) -> str:
        return f"mu={self.mu:g}"

    @classmethod
    def readers(cls) -> dict[str, str]:
        return read_when(cls, {"sigma": "mu > 0", "param_unit": "mu > 0"})


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
        c = self.config
        modules = activation_modules(model)
        if not modules:
            ctx.warn("swap: the model has no nn.ReLU or nn.GELU module")
            return math.nan
        device = next(model.parameters()).device
        inputs = ctx.inputs.to(device)
        counts = []
        for i in range(c.inits):
            if i:
                reinitialise(model, ctx.seed + i)
            counts.append(count_patterns(record_pattern_keys(model, inputs, modules, c.unit)))
        score = sum(counts) / len(counts)
        warn_if_saturated(ctx, self.name, c.unit, min(counts))
        if c.mu > 0:
            params = (ctx.space.params(ctx.arch) if ctx.space is not None and ctx.arch is not None
                      else count_params(model))
            score *= size_regulariser(params / PARAM_UNITS[c.param_unit], c.mu, c.sigma)
        return score
