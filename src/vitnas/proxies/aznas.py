"""AZ-NAS (Lee & Ham, CVPR 2024): four complementary proxies, combined by rank aggregation.

All four read the features of the network's residual blocks, from one forward (and one backward)
pass. Features are the outputs of the residual units: for ViT and PiT blocks, the token stream
after the attention residual and after the MLP residual (two per block, as the authors' ViT code);
for NAS-Bench-201, the stem, every cell and every reduction block. Each feature is read as rows
of C channels: (B, N, C) -> (B*N, C), (B, C, H, W) -> (B*H*W, C).

- expressivity: per feature, the entropy of the normalised eigenvalues of the
  channel covariance, ``-sum p_i log p_i``, ``p_i = lambda_i / sum lambda`` (isotropic features
  score high); summed over features. Eigenvalues below 0 (rounding) count as 0, a feature with
  zero covariance has entropy 0.
- progressivity: the smallest increase of that entropy from one feature to the next.
- trainability: per consecutive pair, with g_out a Rademacher vector and
  g_in = J^T g_out, ``M = (1/n) sum over rows g_in g_out^T`` estimates the block's Jacobian; with
  sigma its largest singular value, the score ``-sigma - 1/sigma + 2`` peaks (at 0) when
  sigma = 1; averaged over pairs. A pair whose resolution halves (a CNN reduction) compares
  g_in pixel-unshuffled to the output grid, as the authors do; pairs whose token count changes
  (PiT pooling) or identity blocks (g_in == g_out) are skipped, as the authors' ViT code skips
  identity layers.
- complexity: FLOPs (the space's analytic count when known, else measured).

Every component is "higher is better" and is a per-architecture value; AZ-NAS's score is the
population-level ``aznas_aggregate`` of them: sum over components of
log(rank / m), ranks ascending among the m architectures. The authors' AutoFormer search
aggregates expressivity, trainability and complexity (its ViT code computes no progressivity);
``VIT_COMPONENTS`` names that set, ``COMPONENTS`` all four (the paper's CNN setting).

The four proxies share one computation through ``ctx.cache`` within one scoring call: score
``aznas_trainability`` first (``PROXY_NAMES``' order, also the registry's) and it carries the cost
of one forward and backward pass while the others report milliseconds; expressivity or
progressivity scored alone need one forward pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata
from torch import nn

from vitnas.errors import ConfigError
from vitnas.models.nb201 import Cell, NB201Network, ResidualReduction
from vitnas.models.vit import Block
from vitnas.proxies.base import BACKWARD, FORWARD, FREE, PROXIES, Proxy, ProxyContext
from vitnas.proxies.zero_cost import Flops

COMPONENTS = ("expressivity", "progressivity", "trainability", "complexity")
VIT_COMPONENTS = ("expressivity", "trainability", "complexity")
# Trainability first: it computes every feature component in one pass that the others reuse.
PROXY_NAMES = ("aznas_trainability", "aznas_expressivity", "aznas_progressivity",
               "aznas_complexity")
REFERENCE = (
    "Lee & Ham, AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture Search, CVPR 2024"
)
INPUTS = ("batch", "gaussian")


@dataclass(frozen=True)
class AZNASConfig:
    """``inputs``: "batch" feeds the proxy batch; "gaussian" feeds standard-normal images of
    the batch's shape drawn from the seed (the authors' AutoFormer search)."""

    inputs: str = "batch"

    def check(self) -> None:
        if self.inputs not in INPUTS:
            raise ConfigError(f"aznas: inputs must be one of {INPUTS}, not {self.inputs!r}")


# --- the statistics ---------------------------------------------------------------------------
def channel_rows(feature: torch.Tensor) -> torch.Tensor:
    """(B, N, C) or (B, C, H, W) -> (rows, C): every token or pixel of every image is a row."""
    if feature.dim() == 4:
        return feature.permute(0, 2, 3, 1).reshape(-1, feature.shape[1])
    return feature.reshape(-1, feature.shape[-1])


def covariance_entropy(rows: torch.Tensor) -> float:
    """Expressivity of one feature: the entropy of its normalised channel-covariance spectrum."""
    x = rows.detach().to(torch.float64)
    x = x - x.mean(dim=0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(x.T @ x / x.shape[0]).clamp(min=0.0)
    total = eigenvalues.sum()
    if not total > 0:
        return 0.0
    p = eigenvalues / total
    return float(-torch.special.xlogy(p, p).sum())


def jacobian_score(g_in: torch.Tensor, g_out: torch.Tensor) -> float | None:
    """``-sigma - 1/sigma + 2`` for sigma the top singular value of (1/n) g_in^T g_out;
    None when the pair is not comparable (token counts differ) or the block is an identity."""
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return None
    if g_in.dim() == 4 and g_out.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        stride = g_in.shape[2] // max(g_out.shape[2], 1)
        if stride >= 1 and g_in.shape[2:] == (stride * g_out.shape[2], stride * g_out.shape[3]):
            g_in = F.pixel_unshuffle(g_in, stride)  # (B, C*s*s, H/s, W/s)
    rows_in = channel_rows(g_in).to(torch.float64)
    rows_out = channel_rows(g_out).to(torch.float64)
    if rows_in.shape[0] != rows_out.shape[0]:
        return None
    jacobian = rows_in.T @ rows_out / rows_in.shape[0]  # (C_in, C_out)
    sigma = float(torch.linalg.svdvals(jacobian).max())
    return -sigma - 1.0 / (sigma + 1e-6) + 2.0


def aznas_aggregate(
    scores: Mapping[str, Sequence[float]], components: Sequence[str] | None = None
) -> np.ndarray:
    """AZ-NAS's non-linear rank aggregation over a population of m architectures:
    ``sum over components of log(rank / m)``, rank 1 the lowest score, m the highest (ties share
    their average rank). Only an architecture ranked high by every component scores near 0.
    NaN counts as the lowest value. ``components`` picks and orders keys (default: all)."""
    keys = list(components) if components is not None else list(scores)
    if not keys:
        raise ConfigError("aznas_aggregate needs at least one component")
    sizes = {len(scores[k]) for k in keys}
    if len(sizes) != 1:
        raise ConfigError(f"aznas_aggregate: components have different lengths {sorted(sizes)}")
    m = sizes.pop()
    total = np.zeros(m)
    for key in keys:
        values = np.asarray(scores[key], dtype=float)
        values = np.where(np.isnan(values), -np.inf, values)
        total += np.log(rankdata(values) / m)
    return total


# --- the features -----------------------------------------------------------------------------
@contextmanager
def block_features(model: nn.Module) -> Iterator[list[torch.Tensor]]:
    """Collect the residual-unit features of one forward pass, in execution order."""
    features: list[torch.Tensor] = []

    def keep_output(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        features.append(output)

    def keep_input(module: nn.Module, inputs: tuple) -> None:
        features.append(inputs[0])

    handles = []
    for module in model.modules():
        if isinstance(module, Block):
            handles.append(module.norm2.register_forward_pre_hook(keep_input))  # after attn
            handles.append(module.register_forward_hook(keep_output))  # after the MLP
        elif isinstance(module, (Cell, ResidualReduction)):
            handles.append(module.register_forward_hook(keep_output))
        elif isinstance(module, NB201Network):
            handles.append(module.stem.register_forward_hook(keep_output))
    if not handles:
        raise ConfigError(
            f"aznas: {type(model).__name__} has no residual blocks AZ-NAS can read "
            "(vitnas ViT/PiT blocks or NAS-Bench-201 cells)"
        )
    try:
        yield features
    finally:
        for handle in handles:
            handle.remove()


def expressivity_terms(features: Sequence[torch.Tensor]) -> list[float]:
    return [covariance_entropy(channel_rows(f)) for f in features]


def progressivity_of(terms: Sequence[float]) -> float:
    """The smallest step of expressivity between consecutive features."""
    if len(terms) < 2:
        return -math.inf
    return float(np.min(np.diff(np.asarray(terms))))


def trainability_of(features: Sequence[torch.Tensor], generator: torch.Generator) -> float:
    """Mean Jacobian score over consecutive feature pairs, last pair first."""
    scores = []
    for i in reversed(range(1, len(features))):
        f_in, f_out = features[i - 1], features[i]
        if not f_out.requires_grad:
            continue
        signs = torch.randint(0, 2, f_out.shape, generator=generator, dtype=torch.int64)
        g_out = (2 * signs - 1).to(f_out.device, f_out.dtype)
        (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
        if g_in is None:
            continue
        score = jacobian_score(g_in, g_out)
        if score is not None:
            scores.append(score)
    return float(np.mean(scores)) if scores else -math.inf


def components(model: nn.Module, ctx: ProxyContext, config: AZNASConfig,
               trainability: bool) -> dict[str, float]:
    """Expressivity and progressivity (forward only), plus trainability when asked, cached in
    ``ctx.cache`` for the other AZ-NAS proxies of the same scoring call."""
    key = ("aznas", config.inputs)
    cached = ctx.cache.get(key)
    if cached is not None and (not trainability or "trainability" in cached):
        return cached
    generator = torch.Generator().manual_seed(ctx.seed)
    device = next(model.parameters()).device
    if config.inputs == "gaussian":
        inputs = torch.randn(ctx.inputs.shape, generator=generator)
    else:
        inputs = ctx.inputs
    with block_features(model) as features, torch.set_grad_enabled(trainability):
        model(inputs.to(device))
    terms = expressivity_terms(features)
    result = {"expressivity": float(sum(terms)), "progressivity": progressivity_of(terms)}
    if trainability:
        result["trainability"] = trainability_of(features, generator)
    ctx.cache[key] = result
    return result


# --- the proxies ------------------------------------------------------------------------------
class _AZNASComponent(Proxy):
    component = ""
    reference = REFERENCE
    Config = AZNASConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        needs_grad = self.component == "trainability"
        return components(model, ctx, self.config, needs_grad)[self.component]


@PROXIES.register("aznas_trainability")
class AZNASTrainability(_AZNASComponent):
    """Closeness of block Jacobians' spectral norm to 1; aggregate with
    ``aznas_aggregate``."""

    name = "aznas_trainability"
    component = "trainability"
    direction = 1
    cost = BACKWARD


@PROXIES.register("aznas_expressivity")
class AZNASExpressivity(_AZNASComponent):
    """Isotropy of block features; aggregate with ``aznas_aggregate``."""

    name = "aznas_expressivity"
    component = "expressivity"
    direction = 1
    cost = FORWARD


@PROXIES.register("aznas_progressivity")
class AZNASProgressivity(_AZNASComponent):
    """Least growth of expressivity with depth; aggregate with
    ``aznas_aggregate``."""

    name = "aznas_progressivity"
    component = "progressivity"
    direction = 1
    cost = FORWARD


@PROXIES.register("aznas_complexity")
class AZNASComplexity(Proxy):
    """FLOPs, AZ-NAS's complexity proxy (the ``flops`` proxy under AZ-NAS's name, so that a
    population scored with the four ``aznas_*`` proxies holds everything ``aznas_aggregate``
    needs)."""

    name = "aznas_complexity"
    direction = 1
    cost = FREE
    reference = REFERENCE

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return Flops().compute(model, ctx)
