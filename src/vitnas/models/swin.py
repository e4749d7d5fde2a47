"""A hierarchical (Swin-style) Vision Transformer whose stages come from an architecture.

The standalone model behind the S3 spaces (Chen et al., "Searching the Search Space of Vision
Transformer", NeurIPS 2021), whose architectures are Swin Transformers (Liu et al., ICCV 2021)
with a depth, width, MLP ratio, head count and window size chosen per stage. Four stages; a
patch embedding (stride ``patch_size``) before the first and a 2x2 patch merging before each
other halves the token grid. Every block attends inside non-overlapping windows, with a
learned relative position bias; every second block of a stage shifts its windows by half a
window (cyclically, with a mask keeping the wrapped-around regions apart).

Any feature size works, odd ones included:

- A map no larger than the window (``grid <= window``, known from ``img_size`` when the model
  is built) gets one window covering it and no shift, as Swin does; the relative-bias table is
  sized for that effective window.
- Otherwise the map is zero-padded at the bottom and right to a multiple of the window, and
  the padded keys are masked out of attention, so padding never changes a real token's output
  (Swin's detection code pads without masking; here it is masked so the features of a 7x7 map
  are the same function of its 49 tokens whatever the window).
- Patch embedding pads the image, and patch merging pads an odd map, by one zero row/column.

``qkv`` is applied to the real tokens and ``proj`` to the real outputs; only the attention
matmuls see the padding. Reading order: window helpers, WindowAttention, SwinBlock,
PatchEmbed, PatchMerging, HierarchicalViT.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.models import tags
from vitnas.models.vit import Block, mlp_hidden_dim

# Added to the attention logits of masked pairs: exp(-1e4) is 0 in float32, and it is
# representable in float16 (Swin uses -100).
MASK_VALUE = -1e4


# --- window helpers ---------------------------------------------------------------------------
def stage_grids(img_size: int, patch_size: int, stages: int) -> list[int]:
    """Side of each stage's token grid: ceil(img / patch), then halved (rounding up) per stage."""
    grid = math.ceil(img_size / patch_size)
    grids = [grid]
    for _ in range(stages - 1):
        grid = math.ceil(grid / 2)
        grids.append(grid)
    return grids


def stage_window(grid: int, window: int) -> tuple[int, int]:
    """(effective window, shift) of a stage: a map no larger than the window is one window and
    is not shifted (shifting would only roll the whole map); otherwise shift half a window."""
    if grid <= window:
        return grid, 0
    return window, window // 2


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of ``window`` -> (B * windows, window * window, C)."""
    batch, height, width, channels = x.shape
    x = x.view(batch, height // window, window, width // window, window, channels)
    # (B, H/w, W/w, w, w, C): windows in raster order, batch outermost
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, channels)


def window_reverse(windows: torch.Tensor, window: int, height: int, width: int) -> torch.Tensor:
    """(B * windows, window * window, C) -> (B, H, W, C); the inverse of ``window_partition``."""
    channels = windows.shape[-1]
    x = windows.view(-1, height // window, width // window, window, window, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window: int) -> torch.Tensor:
    """(w*w, w*w) row of the bias table for each (query, key) pair of one window: the pair's
    offset (dy, dx), each in [-(w-1), w-1], flattened as (dy + w - 1) * (2w - 1) + dx + w - 1."""
    ys, xs = torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")
    coords = torch.stack([ys.flatten(), xs.flatten()])  # (2, w*w)
    offsets = coords[:, :, None] - coords[:, None, :] + window - 1  # (2, w*w, w*w), >= 0
    return offsets[0] * (2 * window - 1) + offsets[1]


def window_regions(
    height: int, width: int, window: int, shift: int, device: torch.device | None = None
) -> torch.Tensor:
    """(H_pad, W_pad) region id of every token in original (unrolled) coordinates; padding
    is -1, an id no real token has. Two tokens may attend to each other iff they share an id:
    a real query never sees padding, and a padded query (cropped later) sees only padding,
    so no row of the softmax is empty.

    The shifted windows are the regular ones displaced by ``shift``: row r lies in window
    floor((r - shift) / window), the first ``shift`` rows forming a partial window of their
    own. After the cyclic roll, each region sits inside one rolled window, and the partial
    regions that the roll brought together keep their different ids (Swin's shifted-window
    mask)."""
    padded_h, padded_w = _padded(height, window), _padded(width, window)
    rows = torch.div(torch.arange(height, device=device) - shift, window, rounding_mode="floor")
    cols = torch.div(torch.arange(width, device=device) - shift, window, rounding_mode="floor")
    ids = (rows[:, None] + 1) * (padded_w // window + 2) + (cols[None, :] + 1)  # (H, W), >= 0
    return F.pad(ids, (0, padded_w - width, 0, padded_h - height), value=-1)


def attention_mask(
    height: int,
    width: int,
    window: int,
    shift: int,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | None:
    """Additive mask (windows, w*w, w*w) for the rolled, padded map, or None when no pair needs
    masking (no shift and no padding). Masks every key of another region (padding included)."""
    if shift == 0 and height % window == 0 and width % window == 0:
        return None
    ids = window_regions(height, width, window, shift, device)
    if shift:
        ids = torch.roll(ids, (-shift, -shift), dims=(0, 1))
    ids = window_partition(ids[None, :, :, None], window).squeeze(-1)  # (windows, w*w)
    blocked = ids[:, :, None] != ids[:, None, :]
    zeros = torch.zeros(blocked.shape, device=device, dtype=dtype)
    return zeros.masked_fill(blocked, MASK_VALUE)  # (windows, w*w, w*w)


def _padded(size: int, window: int) -> int:
    return math.ceil(size / window) * window


# --- layers -----------------------------------------------------------------------------------
class WindowAttention(nn.Module):
    """Multi-head self-attention inside (shifted) windows, with a relative position bias.

    Takes and returns tokens (B, H*W, C) with their grid size, so the tagged ``qkv`` and ``proj``
    see (B, N, C) tokens like every other model's. Explicit matmuls, as ``vit.Attention``.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, window: int, shift: int = 0):
        super().__init__()
        if not 0 <= shift < window:
            raise ValueError(f"shift {shift} must be in [0, window {window})")
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.window = window
        self.shift = shift
        self.scale = head_dim**-0.5
        inner = num_heads * head_dim
        self.qkv = tags.tag(nn.Linear(dim, 3 * inner), tags.ATTN_QKV)
        self.proj = tags.tag(nn.Linear(inner, dim), tags.ATTN_PROJ)
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window - 1) ** 2, num_heads)
        )
        self.register_buffer(
            "relative_position_index", relative_position_index(window), persistent=False
        )

    def relative_position_bias(self) -> torch.Tensor:
        n = self.window * self.window
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(n, n, self.num_heads).permute(2, 0, 1)  # (heads, w*w, w*w)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        batch, tokens, _ = x.shape
        height, width = size
        w, s, inner = self.window, self.shift, self.num_heads * self.head_dim
        qkv = self.qkv(x).view(batch, height, width, 3 * inner)
        padded_h, padded_w = _padded(height, w), _padded(width, w)
        qkv = F.pad(qkv, (0, 0, 0, padded_w - width, 0, padded_h - height))
        if s:
            qkv = torch.roll(qkv, (-s, -s), dims=(1, 2))
        windows = window_partition(qkv, w)  # (B*nW, w*w, 3*inner)
        q, k, v = windows.view(-1, w * w, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)  # (B*nW, heads, w*w, w*w)
        attn = attn + self.relative_position_bias().unsqueeze(0)
        mask = attention_mask(height, width, w, s, x.device, attn.dtype)
        if mask is not None:
            count = mask.shape[0]
            attn = attn.view(batch, count, self.num_heads, w * w, w * w) + mask[None, :, None]
            attn = attn.view(batch * count, self.num_heads, w * w, w * w)
        attn = attn.softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(-1, w * w, inner)  # (B*nW, w*w, inner)
        out = window_reverse(out, w, padded_h, padded_w)  # (B, H_pad, W_pad, inner)
        if s:
            out = torch.roll(out, (s, s), dims=(1, 2))
        out = out[:, :height, :width].reshape(batch, tokens, inner)  # (B, H*W, inner)
        return self.proj(out)


class SwinBlock(Block):
    """A pre-norm ``vit.Block`` whose attention is windowed: x + attn(norm1(x)), then
    x + mlp(norm2(x)). Being a ``Block``, proxies that read ViT blocks (AZ-NAS) read it too."""

    def __init__(
        self, dim: int, num_heads: int, head_dim: int, mlp_hidden: int, window: int, shift: int
    ) -> None:
        attn = WindowAttention(dim, num_heads, head_dim, window, shift)
        super().__init__(dim, num_heads, head_dim, mlp_hidden, attn=attn)

    def forward(self, x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), size)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    """Non-overlapping patches -> tokens (a strided conv) + LayerNorm, as Swin; an image whose
    side is not a multiple of the patch is zero-padded at the bottom and right."""

    def __init__(self, patch_size: int, in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = tags.tag(
            nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size), tags.PATCH_EMBED
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        p = self.patch_size
        x = F.pad(x, (0, (-x.shape[3]) % p, 0, (-x.shape[2]) % p))
        x = self.proj(x)  # (B, C, H/p, W/p)
        size = (x.shape[2], x.shape[3])
        return self.norm(x.flatten(2).transpose(1, 2)), size  # (B, N, C)


class PatchMerging(nn.Module):
    """Halve the grid: concatenate each 2x2 neighbourhood (4C), LayerNorm, Linear 4C -> C_next
    without bias (Swin's reduction; C_next is searched here, not fixed at 2C). An odd map is
    padded by one zero row/column first."""

    def __init__(self, dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(4 * dim)
        self.reduction = tags.tag(nn.Linear(4 * dim, out_dim, bias=False), tags.POOL)

    def forward(
        self, x: torch.Tensor, size: tuple[int, int]
    ) -> tuple[torch.Tensor, tuple[int, int]]:
        batch, _, channels = x.shape
        height, width = size
        x = x.view(batch, height, width, channels)
        x = F.pad(x, (0, 0, 0, width % 2, 0, height % 2))
        x = torch.cat(
            [x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1
        )  # (B, ceil(H/2), ceil(W/2), 4C)
        size = (x.shape[1], x.shape[2])
        return self.reduction(self.norm(x.view(batch, -1, 4 * channels))), size


# --- the model --------------------------------------------------------------------------------
class HierarchicalViT(nn.Module):
    """Four (or any number of) Swin stages with per-stage width, depth, heads, MLP ratio and
    window; qkv width = heads x ``head_dim`` (32 in Swin, so Swin-T is heads 3/6/12/24 on
    widths 96/192/384/768).

    ``forward_features`` returns the per-stage maps [(B, C_i, H_i, W_i)] (what a dense head
    reads); ``forward_head`` takes that list and classifies the last map: LayerNorm per token,
    global mean, Linear (Swin's order). ``num_classes=0`` builds a backbone without norm and
    head (the segmentation model's).
    """

    def __init__(
        self,
        *,
        embed_dims: Sequence[int],
        depths: Sequence[int],
        num_heads: Sequence[int],
        mlp_ratios: Sequence[float],
        window_sizes: Sequence[int],
        head_dim: int = 32,
        img_size: int = 224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        stages = len(depths)
        if not all(len(g) == stages for g in (embed_dims, num_heads, mlp_ratios, window_sizes)):
            raise ValueError("embed_dims, depths, num_heads, mlp_ratios and window_sizes need "
                             "one entry per stage")
        self.patch_size = patch_size
        self.embed_dims = list(embed_dims)
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dims[0])
        self.windows = []  # (effective window, shift) per stage, at img_size
        for grid, window in zip(stage_grids(img_size, patch_size, stages), window_sizes):
            self.windows.append(stage_window(grid, window))
        self.merges = nn.ModuleList(
            PatchMerging(embed_dims[s], embed_dims[s + 1]) for s in range(stages - 1)
        )
        self.stages = nn.ModuleList(
            nn.ModuleList(
                SwinBlock(
                    embed_dims[s],
                    num_heads[s],
                    head_dim,
                    mlp_hidden_dim(embed_dims[s], mlp_ratios[s]),
                    self.windows[s][0],
                    self.windows[s][1] if i % 2 else 0,
                )
                for i in range(depths[s])
            )
            for s in range(stages)
        )
        self.num_classes = num_classes
        self.norm = nn.LayerNorm(embed_dims[-1]) if num_classes else None
        self.head = (
            tags.tag(nn.Linear(embed_dims[-1], num_classes), tags.HEAD) if num_classes else None
        )
        self._init_weights()

    def _init_weights(self) -> None:
        """Swin's initialisation: truncated normal (std 0.02) for every weight matrix and the
        relative-bias tables, zero biases, unit LayerNorm gains."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d)):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, WindowAttention):
                nn.init.trunc_normal_(module.relative_position_bias_table, std=0.02)

    def forward_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch = x.shape[0]
        x, size = self.patch_embed(x)  # (B, H0*W0, C0)
        features = []
        for s, blocks in enumerate(self.stages):
            if s:
                x, size = self.merges[s - 1](x, size)  # (B, H_s*W_s, C_s)
            for block in blocks:
                x = block(x, size)
            features.append(x.transpose(1, 2).reshape(batch, -1, *size))  # (B, C_s, H_s, W_s)
        return features

    def forward_head(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this backbone was built with num_classes=0 and has no head")
        tokens = features[-1].flatten(2).transpose(1, 2)  # (B, N, C)
        return self.head(self.norm(tokens).mean(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
