"""L-SWAG (Casarin, Escalera & Lanz, CVPR 2025): trainability x expressivity over chosen layers.

L-SWAG = Lambda x Psi, both taken over a band of layers [l_lo, l_hi] rather than the whole net
(the paper's finding: gradient statistics of different layers carry very different signal).

- Lambda (trainability): ZiCo's layer-wise gradient statistic with the gradient mean dropped (the
  paper argues mu plays no role in ZiCo's bound and keeps the variance only):
  ``sum over selected weight layers l of log(sum over weights theta in l of 1 / sigma_theta)``,
  sigma_theta the standard deviation (population, as ZiCo's ``np.std``) of dL/dtheta across
  ``splits`` disjoint chunks of the batch (one backward per chunk; no per-sample gradients).
  ``gradient=zico`` keeps ZiCo's mean: ``mean|g| / sigma`` inside the sum.
- Psi (expressivity): SWAP's cardinality of distinct sample-wise activation patterns
  (``vitnas.proxies.swap``) over the selected activation layers.

Layer selection (``layers="lo-hi"``, percent of depth): the weight layers (every Linear / Conv,
module order, so patch embedding first and classifier last) and, separately, the ReLU / GELU
layers are each cut to the slice [floor(lo% n), ceil(hi% n)). The paper tunes the band per
benchmark; the default keeps every layer. Its exact band and the variance-vs-inverse choice of
its equation could not be checked against the paper text here: both are options.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import BACKWARD, PROXIES, Proxy, ProxyContext
from vitnas.proxies.swap import (
    UNITS,
    activation_modules,
    count_patterns,
    record_pattern_keys,
    warn_if_saturated,
)
from vitnas.proxies.zero_cost import weight_layers

GRADIENT_TERMS = ("inv_std", "zico")


def parse_band(text: str) -> tuple[float, float]:
    """``"25-75"`` -> (25.0, 75.0): a band of depth in percent."""
    lo, sep, hi = text.partition("-")
    try:
        band = (float(lo), float(hi))
    except ValueError:
        band = None
    if not sep or band is None or not 0 <= band[0] < band[1] <= 100:
        raise ConfigError(f"layer band {text!r} must look like lo-hi with 0 <= lo < hi <= 100")
    return band


def select_band(items: list, band: tuple[float, float]) -> list:
    n = len(items)
    return items[math.floor(band[0] / 100 * n): math.ceil(band[1] / 100 * n)]


def gradient_term(chunk_grads: list[torch.Tensor], gradient: str = "inv_std") -> float:
    """Lambda from per-layer gradients stacked over batch chunks, each (chunks, *weight shape)."""
    total = 0.0
    for grads in chunk_grads:
        grads = grads.detach().to(torch.float64).flatten(1)
        sigma = grads.std(dim=0, unbiased=False)
        keep = sigma > 0
        if not keep.any():
            continue
        numerator = grads.abs().mean(dim=0)[keep] if gradient == "zico" else 1.0
        layer_sum = float((numerator / sigma[keep]).sum())
        if layer_sum > 0:
            total += math.log(layer_sum)
    return total


@dataclass(frozen=True)
class LswagConfig:
    """``layers``: depth band in percent (see the module docstring); ``splits``: batch chunks
    for the gradient statistics (>= 2); ``gradient``: inv_std (L-SWAG) or zico (with mean);
    ``unit``: SWAP's unit for Psi (``vitnas.proxies.swap``)."""

    layers: str = "0-100"
    splits: int = 4
    gradient: str = "inv_std"
    unit: str = "position"

    def check(self) -> None:
        parse_band(self.layers)
        if self.splits < 2:
            raise ConfigError(f"lswag needs splits >= 2 chunks for a variance, got {self.splits}")
        if self.gradient not in GRADIENT_TERMS:
            raise ConfigError(f"lswag gradient must be one of {', '.join(GRADIENT_TERMS)}")
        if self.unit not in UNITS:
            raise ConfigError(f"lswag unit must be one of {', '.join(UNITS)}")


@PROXIES.register("lswag")
class Lswag(Proxy):
    name = "lswag"
    direction = 1
    cost = BACKWARD
    reference = (
        "Casarin, Escalera & Lanz, L-SWAG: Layer-Sample Wise Activation with Gradients "
        "information for Zero-Shot NAS on Vision Transformers, CVPR 2025"
    )
    Config = LswagConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        band = parse_band(c.layers)
        device = next(model.parameters()).device
        inputs, labels = ctx.inputs.to(device), ctx.labels.to(device)
        if inputs.shape[0] < c.splits:
            ctx.warn(f"lswag: a batch of {inputs.shape[0]} cannot make {c.splits} chunks")
            return math.nan
        layers = select_band(weight_layers(model), band)
        acts = select_band(activation_modules(model), band)
        if not layers or not acts:
            ctx.warn("lswag: the layer band holds no weight layer or no ReLU / GELU")
            return math.nan
        keys = record_pattern_keys(model, inputs, acts, c.unit)
        psi = count_patterns(keys)
        warn_if_saturated(ctx, self.name, c.unit, psi)
        weights = [layer.weight for layer in layers]
        per_chunk = []
        for x, y in zip(inputs.tensor_split(c.splits), labels.tensor_split(c.splits)):
            grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
            per_chunk.append([torch.zeros_like(w) if g is None else g
                              for w, g in zip(weights, grads)])
        stacked = [torch.stack(chunk) for chunk in zip(*per_chunk)]
        return gradient_term(stacked, c.gradient) * psi
