"""Token entropy (Nguyen & Cheung, "Dissecting representation structure in vision transformers",
SUTD): how much information the token representations of an untrained ViT carry.

Their best variant scores the entropy of the token representations at four sites of every
block: the qkv projection, the MHSA output (after the output projection) and both MLP layers
(fc1 and fc2 outputs), summed over sites and blocks. Every token of every image is one sample
of a D-dimensional representation at a site; with C its covariance (unbiased, over the B x N
tokens), the entropy ``estimator`` is:

- ``gaussian`` (default): differential entropy of the fitted Gaussian,
  ``H = 0.5 (D log(2 pi e) + log det(C + ridge I))``: grows with width and with how
  decorrelated the features are;
- ``diagonal``: independent features, ``H = 0.5 sum_j log(2 pi e (C_jj + ridge))``;
- ``spectral``: Shannon entropy of the normalised eigenvalues of C (scale-free; a log
  effective rank).

The paper's own estimator could not be checked here (only its headline numbers are known), so
each reading is an option. Networks without attention / MLP tags (the NB201 CNN) use the output
of every stem and conv layer, each spatial position's channel vector being a token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.models import tags
from vitnas.proxies.base import FORWARD, PROXIES, Proxy, ProxyContext, ceiling

SITES = {"qkv": tags.ATTN_QKV, "attn": tags.ATTN_PROJ, "fc1": tags.MLP_FC1, "fc2": tags.MLP_FC2}
ESTIMATORS = ("gaussian", "diagonal", "spectral")
LOG_2PI_E = math.log(2 * math.pi * math.e)


def token_matrix(output: torch.Tensor) -> torch.Tensor:
    """A site's output as (tokens, features): (B, N, D) -> (B*N, D); (B, C, H, W) -> (B*H*W, C)."""
    if output.dim() == 4:
        output = output.flatten(2).transpose(1, 2)
    return output.reshape(-1, output.shape[-1])


def token_entropy(tokens: torch.Tensor, estimator: str = "gaussian", ridge: float = 1e-6) -> float:
    """Entropy of the rows of ``tokens`` (samples x features) under ``estimator``."""
    x = tokens.detach().float()
    x = x - x.mean(dim=0)
    m, d = x.shape
    if m < 2:
        return math.nan
    if estimator == "diagonal":
        variances = x.pow(2).sum(dim=0).double() / (m - 1)
        return float(0.5 * (LOG_2PI_E + torch.log(variances + ridge)).sum())
    cov = (x.T @ x).double() / (m - 1)  # float32 product (the cost), float64 factorisation
    if estimator == "gaussian":
        eye = torch.eye(d, dtype=cov.dtype)
        return float(0.5 * (d * LOG_2PI_E + torch.linalg.slogdet(cov + ridge * eye).logabsdet))
    eig = torch.linalg.eigvalsh(cov).clamp(min=0)
    if eig.sum() <= 0:
        return 0.0
    p = eig / eig.sum()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


@dataclass(frozen=True)
class TokenEntropyConfig:
    """``sites``: '+'-joined subset of qkv, attn, fc1, fc2; ``estimator``: gaussian, diagonal or
    spectral; ``ridge``: added to the covariance diagonal (keeps log det finite when there are
    fewer tokens than features); ``reduce``: sum or mean over the site outputs."""

    sites: str = "qkv+attn+fc1+fc2"
    estimator: str = "gaussian"
    ridge: float = ceiling(1e-6, 1e6)
    reduce: str = "sum"

    def site_roles(self) -> list[str]:
        return [SITES[s] for s in self.sites.split("+")]

    def check(self) -> None:
        sites = self.sites.split("+")
        unknown = [s for s in sites if s not in SITES]
        if unknown or not self.sites or len(set(sites)) != len(sites):
            raise ConfigError(f"token_entropy sites {self.sites!r}: use '+'-joined "
                              f"{', '.join(SITES)}, each once")
        if self.estimator not in ESTIMATORS:
            raise ConfigError(f"token_entropy estimator must be one of {', '.join(ESTIMATORS)}")
        if self.ridge < 0 or self.reduce not in ("sum", "mean"):
            raise ConfigError("token_entropy needs ridge >= 0 and reduce in sum, mean")


@PROXIES.register("token_entropy")
class TokenEntropy(Proxy):
    name = "token_entropy"
    direction = 1
    cost = FORWARD
    reference = (
        "Nguyen & Cheung, Dissecting representation structure in vision transformers (SUTD)"
    )
    Config = TokenEntropyConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        sites = [m for _, m in tags.tagged_modules(model, *c.site_roles())]
        if not any(True for _ in tags.tagged_modules(model, *tags.ATTENTION_ROLES)):
            sites = [m for _, m in tags.tagged_modules(model, tags.STEM, tags.CONV)]
        if not sites:
            ctx.warn("token_entropy: no tagged site in the model")
            return math.nan
        values: list[float] = []

        def hook(module, args, output):
            values.append(token_entropy(token_matrix(output), c.estimator, c.ridge))

        handles = [m.register_forward_hook(hook) for m in sites]
        device = next(model.parameters()).device
        try:
            with torch.no_grad():
                model(ctx.inputs.to(device))
        finally:
            for handle in handles:
                handle.remove()
        total = sum(values)
        return total / len(values) if c.reduce == "mean" else total
