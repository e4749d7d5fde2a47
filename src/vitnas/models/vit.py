"""A plain Vision Transformer whose width and per-layer shape come from an architecture.

This is the standalone model behind the AutoFormer spaces (Chen et al., ICCV 2021): a global
embedding dimension, and heads and MLP ratio chosen per layer. Pre-norm blocks, learned position
embedding, class token or mean pooling, every Linear with bias. Reading order: Attention, Mlp,
Block, PatchEmbed, VisionTransformer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from vitnas.models import tags


class Attention(nn.Module):
    """Multi-head self-attention with an explicit head width (qkv width = heads x head_dim).

    The matmuls are written out rather than calling ``scaled_dot_product_attention``: the FLOP
    counter sees them, and second-order proxies (GraSP) can differentiate through them twice.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        inner = num_heads * head_dim
        self.qkv = tags.tag(nn.Linear(dim, 3 * inner), tags.ATTN_QKV)
        self.proj = tags.tag(nn.Linear(inner, dim), tags.ATTN_PROJ)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, _ = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(batch, tokens, -1)  # (B, N, heads*head_dim)
        return self.proj(out)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = tags.tag(nn.Linear(dim, hidden), tags.MLP_FC1)
        self.act = nn.GELU()
        self.fc2 = tags.tag(nn.Linear(hidden, dim), tags.MLP_FC2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).

    ``attn`` replaces the global attention (the Swin block passes its window attention)."""

    def __init__(
        self, dim: int, num_heads: int, head_dim: int, mlp_hidden: int,
        attn: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, head_dim) if attn is None else attn
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, mlp_hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens, as a strided convolution."""

    def __init__(self, img_size: int, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        if img_size % patch_size:
            raise ValueError(f"image size {img_size} is not a multiple of patch size {patch_size}")
        self.grid = img_size // patch_size
        self.num_patches = self.grid * self.grid
        self.proj = tags.tag(
            nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size), tags.PATCH_EMBED
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (B, N, dim)


def init_vit_weights(model: nn.Module) -> None:
    """Truncated normal (std 0.02) for every weight matrix, class token and position embedding;
    zero biases; unit LayerNorm gains (the DeiT / AutoFormer initialisation)."""
    nn.init.trunc_normal_(model.pos_embed, std=0.02)
    if model.cls_token is not None:
        nn.init.trunc_normal_(model.cls_token, std=0.02)
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            nn.init.trunc_normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def mlp_hidden_dim(dim: int, mlp_ratio: float) -> int:
    """MLP width for a ratio; rounded so 3.5 x 216 = 756 and odd micro widths stay integral."""
    return int(round(dim * mlp_ratio))


class VisionTransformer(nn.Module):
    """ViT with per-layer heads and MLP ratios.

    ``head_dim=None`` makes the qkv width follow the embedding dimension (head width =
    embed_dim // heads), the plain-ViT convention; an integer fixes the width per head, as
    AutoFormer's ``--change_qkv`` (64). ``cls_token`` defaults to ``pool == "cls"``;
    ``pool="mean", cls_token=True`` keeps a class token in attention but pools the patch tokens,
    as Auto-Prox's AutoFormer subnets (ViT-Bench-101) were trained.
    """

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: Sequence[int],
        mlp_ratio: Sequence[float],
        img_size: int = 224,
        patch_size: int = 16,
        in_chans: int = 3,
        num_classes: int = 1000,
        head_dim: int | None = 64,
        pool: str = "cls",
        cls_token: bool | None = None,
    ) -> None:
        super().__init__()
        if len(num_heads) < depth or len(mlp_ratio) < depth:
            raise ValueError("num_heads and mlp_ratio need one entry per layer")
        if pool not in ("cls", "mean"):
            raise ValueError(f"pool must be 'cls' or 'mean', not {pool!r}")
        if cls_token is None:
            cls_token = pool == "cls"
        if pool == "cls" and not cls_token:
            raise ValueError("pool='cls' needs a class token")
        self.pool = pool
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        extra = 1 if cls_token else 0
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if extra else None
        tokens = self.patch_embed.num_patches + extra
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens, embed_dim))
        self.blocks = nn.Sequential(
            *(
                Block(
                    embed_dim,
                    num_heads[i],
                    head_dim or embed_dim // num_heads[i],
                    mlp_hidden_dim(embed_dim, mlp_ratio[i]),
                )
                for i in range(depth)
            )
        )
        self.norm = nn.LayerNorm(embed_dim)
        self.head = tags.tag(nn.Linear(embed_dim, num_classes), tags.HEAD)
        self._init_weights()

    def _init_weights(self) -> None:
        init_vit_weights(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)  # (B, N, dim)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.norm(x)  # (B, N(+1), dim)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        if self.pool == "cls":
            pooled = features[:, 0]
        else:
            prefix = 0 if self.cls_token is None else 1
            pooled = features[:, prefix:].mean(dim=1)  # mean of the patch tokens
        return self.head(pooled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
