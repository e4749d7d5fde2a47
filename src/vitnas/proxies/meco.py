"""MeCo (Jiang, Wang & Bie, NeurIPS 2023): the minimum eigenvalue of feature-map correlations.

For one input image X and every layer i, the feature map f_i(X) in R^{c x h x w} is reshaped to a
c x hw matrix (channels are the variables, positions the observations) and P(f_i(X)) is its
c x c Pearson correlation matrix. ``MeCo = sum_i lambda_min(P(f_i(X)))``: a larger smallest
eigenvalue means less redundant channels. MeCo_opt (same paper) estimates each term from n
randomly chosen channels, ``(c_i / n) lambda_min(P(f_i^n(X)))``, with n = 8.

P has rank at most (observations - 1), so a layer with at least as many variables as
observations has lambda_min = 0. Read channel-major, that is every ViT layer (AutoFormer-T at
224 px: 197 tokens, 192-960 channels) and exact MeCo is rounding noise (the proxy warns);
MeCo_opt (8 variables) is not, and neither is the authors' token-major reading of most layers.

Which layers and which axis (the default is the authors' reading): their code
(github.com/HamsterMimi/MeCo, ``correlation/foresight/pruners/measures/meco.py``) hooks every
module (``named_modules``: containers and activations too) and reshapes the first image's output
to (its first axis, the rest). A convolution map (C, H, W) so gives channels x positions, as the
paper writes it; a ViT's (N, C) token output gives N rows, a token x token correlation.
``layers="all", layout="authors"`` does exactly that (one version of that file feeds a random
64 px image instead of the data; here the batch's first image is used, the paper's "one data").
``layout="channels"`` reads every output channel-major (a token output as C x N, the paper's
formula transplanted to tokens); ``layout="tokens"`` transposes every output, convolution maps
included (kept because committed boards name ``meco:layers=all,layout=tokens``).
``layers="tagged", layout="channels"`` was this package's default until the authors' reading
became it: committed boards' rows ``meco`` and ``meco:opt_channels=8`` measured that variant,
spelled out today as ``meco:layers=tagged,layout=channels[,opt_channels=8]``. Whether the paper's
ViT experiments (if any) ran through exactly this code path could not be checked here.
Entries of P that are undefined (a constant channel) are set to 0, as in the authors' code.
A layer whose per-image output has a single position (a classifier) has an all-undefined P and
contributes 0; it is skipped, as are outputs that are not one tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.models import tags
from vitnas.proxies.base import FORWARD, PROXIES, Proxy, ProxyContext, ceiling

LAYERS = ("tagged", "all")
LAYOUTS = ("authors", "channels", "tokens")


@dataclass(frozen=True)
class MeCoConfig:
    """``layers``: "tagged" reads the outputs of the role-tagged layers (``vitnas.models.tags``:
    patch embedding, qkv, attention projection, fc1, fc2, convolutions, pooling, head); "all"
    hooks every module with a tensor output, containers included, as the authors' code does.
    ``layout``: which axis is the correlated variable (authors, channels or tokens: module
    docstring).
    ``samples``: images of the batch scored, from the first; their MeCo values are averaged
    (the paper: 1). ``opt_channels``: 0 is exact MeCo; n > 0 is MeCo_opt with n channels
    drawn per layer from the seed (the paper: 8); layers with at most n channels stay exact."""

    layers: str = "all"
    layout: str = "authors"
    samples: int = ceiling(1, 10_000)
    opt_channels: int = ceiling(0, 65_536)

    def check(self) -> None:
        if self.layers not in LAYERS:
            raise ConfigError(f"meco: layers must be one of {LAYERS}, not {self.layers!r}")
        if self.layout not in LAYOUTS:
            raise ConfigError(f"meco: layout must be one of {LAYOUTS}, not {self.layout!r}")
        if self.samples < 1:
            raise ConfigError(f"meco: samples must be >= 1, got {self.samples}")
        if self.opt_channels < 0 or self.opt_channels == 1:
            raise ConfigError(f"meco: opt_channels must be 0 or >= 2, got {self.opt_channels}")


def feature_matrix(output: torch.Tensor, layout: str = "authors") -> torch.Tensor | None:
    """Per-image (variables, observations) matrices, shape (B, V, P), of a layer's output.

    (B, C, H, W) convolution maps give (B, C, HW) (``authors``, ``channels``) or (B, HW, C)
    (``tokens``); (B, N, C) token sequences give (B, N, C) (``authors``, ``tokens``) or
    (B, C, N) (``channels``); outputs with one position per image give None.
    """
    if output.dim() == 4:
        matrix = output.flatten(2)  # (B, C, H*W)
        if layout == "tokens":
            matrix = matrix.transpose(1, 2)  # (B, H*W, C)
    elif output.dim() == 3:
        matrix = output if layout != "channels" else output.transpose(1, 2)  # (B, N, C) | (B, C, N)
    else:
        return None
    return matrix if matrix.shape[2] >= 2 and matrix.shape[1] >= 2 else None


def min_correlation_eigenvalue(matrix: torch.Tensor) -> float:
    """lambda_min of the Pearson correlation of the rows of ``matrix`` (V x P), undefined
    entries set to 0 (MeCo's per-layer term)."""
    corr = torch.corrcoef(matrix.detach().to(torch.float64))
    corr = torch.nan_to_num(corr, nan=0.0, posinf=0.0, neginf=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


def meco_of_matrix(
    matrix: torch.Tensor, opt_channels: int = 0, generator: torch.Generator | None = None
) -> float:
    """One layer's term: exact, or MeCo_opt's (c / n) lambda_min on n random rows."""
    variables = matrix.shape[0]
    if not opt_channels or variables <= opt_channels:
        return min_correlation_eigenvalue(matrix)
    rows = torch.randperm(variables, generator=generator)[:opt_channels]
    return variables / opt_channels * min_correlation_eigenvalue(matrix[rows.to(matrix.device)])


@PROXIES.register("meco")
class MeCo(Proxy):
    name = "meco"
    direction = 1
    cost = FORWARD
    reference = (
        "Jiang, Wang & Bie, MeCo: Zero-Shot NAS with One Data and Single Forward Pass via "
        "Minimum Eigenvalue of Correlation, NeurIPS 2023"
    )
    Config = MeCoConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        config = self.config
        if config.layers == "tagged":
            modules = [module for _, module in tags.tagged_modules(model)]
        else:
            modules = list(model.modules())
        outputs: list[torch.Tensor] = []

        def keep(module: nn.Module, inputs: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                outputs.append(output.detach())

        handles = [module.register_forward_hook(keep) for module in modules]
        device = next(model.parameters()).device
        try:
            with torch.no_grad():
                model(ctx.inputs[: config.samples].to(device))
        finally:
            for handle in handles:
                handle.remove()
        generator = torch.Generator().manual_seed(ctx.seed)
        total, layers, singular = 0.0, 0, 0
        for output in outputs:
            matrices = feature_matrix(output, config.layout)
            if matrices is None:
                continue
            layers += 1
            variables = min(matrices.shape[1], config.opt_channels or matrices.shape[1])
            singular += variables >= matrices.shape[2]
            for matrix in matrices:
                total += meco_of_matrix(matrix, config.opt_channels, generator)
        if singular:
            ctx.warn(
                f"meco: {singular} of {layers} layers have no fewer variables than observations, "
                "so their correlation is singular and lambda_min is 0 up to rounding "
                "(fewer channels: opt_channels=8)"
            )
        return total / min(config.samples, len(ctx.inputs))
