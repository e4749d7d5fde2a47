"""Pooling-based Vision Transformer (PiT, Heo et al., ICCV 2021) with searchable stages.

Three transformer stages; stage i has width base_dim x heads[i] (head width = base_dim).
Between stages a strided grouped convolution halves the token grid and a Linear maps the class
token to the new width. PiT widens by integer factors and uses a depthwise convolution; since
heads may also shrink here, the group count is gcd(in, out), which equals PiT's depthwise choice
whenever the width grows by an integer factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from vitnas.models import tags
from vitnas.models.vit import Block, init_vit_weights, mlp_hidden_dim


class ConvHeadPooling(nn.Module):
    """Halve the token grid with a 3x3 stride-2 grouped conv; map the class token with a Linear."""

    def __init__(self, in_dim: int, out_dim: int, with_cls: bool = True) -> None:
        super().__init__()
        self.conv = tags.tag(
            nn.Conv2d(in_dim, out_dim, 3, stride=2, padding=1, groups=math.gcd(in_dim, out_dim)),
            tags.POOL,
        )
        self.fc = tags.tag(nn.Linear(in_dim, out_dim), tags.POOL) if with_cls else None

    def forward(self, grid: torch.Tensor, cls: torch.Tensor | None) -> tuple:
        grid = self.conv(grid)  # (B, out_dim, ceil(H/2), ceil(W/2))
        return grid, (self.fc(cls) if cls is not None else None)


def pit_grid(img_size: int, patch_size: int, stride: int) -> int:
    """Side of the first token grid: patches of ``patch_size`` every ``stride`` pixels."""
    return (img_size - patch_size) // stride + 1


class PoolingTransformer(nn.Module):
    def __init__(
        self,
        *,
        base_dim: int,
        depth: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratio: float,
        img_size: int = 224,
        patch_size: int = 16,
        stride: int = 8,
        in_chans: int = 3,
        num_classes: int = 1000,
        pool: str = "cls",
    ) -> None:
        super().__init__()
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', not {pool!r}")
        if patch_size > img_size:
            raise ValueError(f"patch size {patch_size} exceeds image size {img_size}")
        self.pool = pool
        widths = [base_dim * h for h in num_heads]
        self.widths = widths
        grid = pit_grid(img_size, patch_size, stride)
        self.patch_embed = tags.tag(
            nn.Conv2d(in_chans, widths[0], kernel_size=patch_size, stride=stride), tags.PATCH_EMBED
        )
        self.pos_embed = nn.Parameter(torch.zeros(1, widths[0], grid, grid))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, widths[0])) if pool == "cls" else None
        self.stages = nn.ModuleList(
            nn.Sequential(
                *(
                    Block(widths[s], num_heads[s], base_dim, mlp_hidden_dim(widths[s], mlp_ratio))
                    for _ in range(depth[s])
                )
            )
            for s in range(len(depth))
        )
        self.pools = nn.ModuleList(
            ConvHeadPooling(widths[s], widths[s + 1], pool == "cls") for s in range(len(depth) - 1)
        )
        self.norm = nn.LayerNorm(widths[-1])
        self.head = tags.tag(nn.Linear(widths[-1], num_classes), tags.HEAD)
        self._init_weights()

    def _init_weights(self) -> None:
        init_vit_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        grid = self.patch_embed(x) + self.pos_embed  # (B, C0, H, W)
        batch = grid.shape[0]
        cls = self.cls_token.expand(batch, -1, -1) if self.cls_token is not None else None
        for s, stage in enumerate(self.stages):
            channels, height, width = grid.shape[1:]
            tokens = grid.flatten(2).transpose(1, 2)  # (B, H*W, C)
            if cls is not None:
                tokens = torch.cat([cls, tokens], dim=1)
            tokens = stage(tokens)
            if cls is not None:
                cls, tokens = tokens[:, :1], tokens[:, 1:]
            grid = tokens.transpose(1, 2).reshape(batch, channels, height, width)
            if s < len(self.pools):
                grid, cls = self.pools[s](grid, cls)
        tokens = grid.flatten(2).transpose(1, 2)
        if cls is not None:
            tokens = torch.cat([cls, tokens], dim=1)
        return self.norm(tokens)  # (B, N(+1), C_last)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features[:, 0] if self.pool == "cls" else features.mean(dim=1)
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
