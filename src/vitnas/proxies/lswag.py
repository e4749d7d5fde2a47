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
benchmark; its band for AutoFormer, and the variance-vs-inverse choice of its equation, could
not be checked against the paper text here: both are options. The default band, 33-67 (the
middle third), was chosen on the ViT-Bench-101 AutoFormer dev half (``benchmarks/lswag_band.py``,
``results/lswag_band/band_study.json``): among nine bands it had the best mean Kendall tau over
the three KD labels, 0.425 against 0.369 for every layer (0-100), above the 0.02 margin a band
had to clear to replace 0-100; on the test half, judged after the choice, 0.579 against 0.560.
Boards scored before the study name the every-layer proxy ``lswag`` (now ``lswag:layers=0-100``).
Psi moves little across those ViTs (2-5% relative spread against Lambda's 4-6%), so Lambda
carries most of the product's ranking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import BACKWARD, PROXIES, Proxy, ProxyContext, ceiling
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


def layer_gradient_terms(chunk_grads: list[torch.Tensor], gradient: str = "inv_std") -> list[float]:
    """Each layer's share of Lambda, from its gradients stacked over batch chunks
    (chunks, *weight shape): log(sum over weights of 1 / sigma), or of mean|g| / sigma for
    ``zico``; 0 for a layer whose gradient never varies across the chunks."""
    terms = []
    for grads in chunk_grads:
        grads = grads.detach().to(torch.float64).flatten(1)
        sigma = grads.std(dim=0, unbiased=False)
        keep = sigma > 0
        layer_sum = 0.0
        if keep.any():
            numerator = grads.abs().mean(dim=0)[keep] if gradient == "zico" else 1.0
            layer_sum = float((numerator / sigma[keep]).sum())
        terms.append(math.log(layer_sum) if layer_sum > 0 else 0.0)
    return terms


def gradient_term(chunk_grads: list[torch.Tensor], gradient: str = "inv_std") -> float:
    """Lambda: the sum of the layers' terms (``layer_gradient_terms``)."""
    return sum(layer_gradient_terms(chunk_grads, gradient))


def chunk_gradients(model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor,
                    layers: list[nn.Module], splits: int) -> list[torch.Tensor]:
    """Per layer, dL/dW of each of ``splits`` disjoint batch chunks, stacked (chunks, *W)."""
    weights = [layer.weight for layer in layers]
    per_chunk = []
    for x, y in zip(inputs.tensor_split(splits), labels.tensor_split(splits)):
        grads = torch.autograd.grad(F.cross_entropy(model(x), y), weights, allow_unused=True)
        per_chunk.append([torch.zeros_like(w) if g is None else g
                          for w, g in zip(weights, grads)])
    return [torch.stack(chunk) for chunk in zip(*per_chunk)]


@dataclass(frozen=True)
class LswagTerms:
    """L-SWAG's two factors over the band: ``trainability`` Lambda and ``expressivity`` Psi."""

    trainability: float
    expressivity: float

    @property
    def score(self) -> float:
        return self.trainability * self.expressivity


@dataclass(frozen=True)
class LayerTerms:
    """Every weight layer's share of Lambda and every activation layer's pattern keys, before a
    band is chosen: one pass gives L-SWAG at any band (``band``), as the band study needs."""

    gradient: list[float]
    patterns: list[torch.Tensor]

    def band(self, band: tuple[float, float]) -> LswagTerms:
        shares, keys = select_band(self.gradient, band), select_band(self.patterns, band)
        if not shares or not keys:
            return LswagTerms(math.nan, math.nan)
        return LswagTerms(sum(shares), float(count_patterns(keys)))


@dataclass(frozen=True)
class LswagConfig:
    """``layers``: depth band in percent (see the module docstring); ``splits``: batch chunks
    for the gradient statistics (>= 2); ``gradient``: inv_std (L-SWAG) or zico (with mean);
    ``unit``: SWAP's unit for Psi (``vitnas.proxies.swap``)."""

    layers: str = "33-67"
    splits: int = ceiling(4, 1000)
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

    @property
    def min_batch(self) -> int:  # type: ignore[override]
        """One sample per chunk at least: the variance is over ``splits`` chunks."""
        return self.config.splits

    def layer_terms(self, model: nn.Module, ctx: ProxyContext) -> LayerTerms | None:
        """Every layer's terms (no band); None, with a warning, when the batch is too small."""
        c = self.config
        device = next(model.parameters()).device
        inputs, labels = ctx.inputs.to(device), ctx.labels.to(device)
        if inputs.shape[0] < c.splits:
            ctx.warn(f"lswag: a batch of {inputs.shape[0]} cannot make {c.splits} chunks")
            return None
        keys = record_pattern_keys(model, inputs, activation_modules(model), c.unit)
        grads = chunk_gradients(model, inputs, labels, weight_layers(model), c.splits)
        return LayerTerms(layer_gradient_terms(grads, c.gradient), keys)

    def terms(self, model: nn.Module, ctx: ProxyContext) -> LswagTerms:
        """Lambda and Psi over the band, apart, so a caller can see which moves a ranking."""
        layers = self.layer_terms(model, ctx)
        if layers is None:
            return LswagTerms(math.nan, math.nan)
        terms = layers.band(parse_band(self.config.layers))
        if math.isnan(terms.expressivity):
            ctx.warn("lswag: the layer band holds no weight layer or no ReLU / GELU")
        else:
            warn_if_saturated(ctx, self.name, self.config.unit, terms.expressivity)
        return terms

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return self.terms(model, ctx).score
