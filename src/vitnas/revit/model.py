"""ReViT: one Vision Transformer, one set of weights, several token lengths.

Zhou & Zhu (ECML PKDD 2023) run a single ViT at the token length each image needs. Their paper
does not say how the length changes, so both published routes are offered:

- ``resize``: keep the patch size and resize the image (grid g -> image g x patch); the learned
  position embedding is interpolated (bicubic) from the native grid to g x g. The route DVT's
  token counts suggest, and the one any pretrained ViT supports.
- ``patch``: keep the image and change the patch size (patch = image // g, the image resized to
  g x patch when that does not divide it); the patch-embedding kernel is resized with FlexiViT's
  pseudo-inverse resize (Beyer et al., CVPR 2023) and the position embedding interpolated.

At the native grid neither route changes anything: the output equals the plain ViT's.
Reading order: TokenLength, length_grid, pi_resize_kernel, ResizableViT, build_revit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F

from vitnas.errors import ConfigError
from vitnas.flops import transformer_block_cost
from vitnas.models.vit import VisionTransformer

ROUTES = ("resize", "patch")
MAX_DEPTH = 10_000  # layers; the deepest published ViTs have under 100
MAX_UNITS = 2**24  # units in one layer (width, hidden, classes, image side): 16.7M


@dataclass(frozen=True)
class TokenLength:
    """One way to run the model: a ``grid`` x ``grid`` token grid, reached by feeding an
    ``image_size`` input cut into ``patch_size`` patches."""

    grid: int
    image_size: int
    patch_size: int

    @property
    def tokens(self) -> int:
        return self.grid * self.grid

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "tokens": self.tokens}


def fraction_grid(native: int, fraction: float) -> int:
    """The token grid that keeps about ``fraction`` of a ``native`` x ``native`` grid's tokens."""
    return max(1, round(native * math.sqrt(fraction)))


def check_fractions(img_size: int, patch_size: int, fractions: Sequence[float]) -> None:
    """Refuse token shares that round to one grid: the ReViT would train fewer lengths than
    asked, as ``--grids`` with a repeated grid would (which is refused too)."""
    native = img_size // patch_size
    shares_by_grid: dict[int, list[float]] = {}
    for fraction in fractions:
        shares_by_grid.setdefault(fraction_grid(native, fraction), []).append(fraction)
    for grid, shares in sorted(shares_by_grid.items()):
        if len(shares) > 1:
            raise ConfigError(f"--fractions {', '.join(f'{f:g}' for f in shares)} round to the "
                              f"same {grid}x{grid} token grid (native grid {native} at "
                              f"{img_size} px, patch {patch_size}); give fractions that differ "
                              f"more, or --grids")


def length_grid(
    img_size: int,
    patch_size: int,
    route: str = "resize",
    fractions: Sequence[float] = (0.25, 0.5, 1.0),
    grids: Sequence[int] | None = None,
) -> tuple[TokenLength, ...]:
    """Token lengths sorted from shortest to longest.

    ``fractions`` are shares of the native token count (grid = round(native grid x sqrt f)), so
    the default gives about 25%, 50% and 100% of the tokens; ``grids`` names the grids directly.
    """
    if route not in ROUTES:
        raise ConfigError(f"token-length route {route!r} is not one of {', '.join(ROUTES)}")
    if img_size % patch_size:
        raise ConfigError(f"image size {img_size} is not a multiple of patch size {patch_size}")
    native = img_size // patch_size
    if grids is None:
        if not fractions or any(not 0 < f <= 1 for f in fractions):
            raise ConfigError(f"token-length fractions must lie in (0, 1], got {list(fractions)}")
        grids = [fraction_grid(native, f) for f in fractions]
    chosen = sorted(set(int(g) for g in grids))
    if not chosen or chosen[0] < 1 or chosen[-1] > native:
        raise ConfigError(f"token grids {chosen} must lie in 1..{native}, the native grid of "
                          f"{img_size} px with patch {patch_size}")
    if len(chosen) < 2:
        raise ConfigError(f"ReViT needs at least two distinct token lengths, got grids {chosen}")
    lengths = []
    for grid in chosen:
        if route == "resize":
            lengths.append(TokenLength(grid, grid * patch_size, patch_size))
        else:
            patch = img_size // grid
            lengths.append(TokenLength(grid, grid * patch, patch))
    return tuple(lengths)


@lru_cache(maxsize=32)
def _resize_matrix(old: int, new: int) -> torch.Tensor:
    """(new*new, old*old) matrix of bilinear resizing of an old x old patch to new x new."""
    basis = torch.eye(old * old, dtype=torch.float64).reshape(old * old, 1, old, old)
    resized = F.interpolate(basis, size=(new, new), mode="bilinear", align_corners=False,
                            antialias=new < old)
    return resized.reshape(old * old, new * new).T


def pi_resize_kernel(weight: torch.Tensor, new_size: int) -> torch.Tensor:
    """FlexiViT's PI-resize of a patch-embedding kernel (out, in, p, p) to (out, in, q, q).

    It solves for the kernel w' that gives every bilinearly resized patch the embedding the
    original patch had: R^T w' = w, i.e. w' = pinv(R^T) w (exact when upsampling, least squares
    when downsampling).
    """
    old = weight.shape[-1]
    if new_size == old:
        return weight
    matrix = _resize_matrix(old, new_size).to(weight.device)
    solve = torch.linalg.pinv(matrix.T)  # (q*q, p*p)
    flat = weight.reshape(-1, old * old).to(torch.float64)  # (out*in, p*p)
    return (flat @ solve.T).reshape(*weight.shape[:2], new_size, new_size).to(weight.dtype)


def interpolate_pos_embed(pos_embed: torch.Tensor, prefix: int, old_grid: int,
                          new_grid: int) -> torch.Tensor:
    """Bicubic resize of the grid part of a (1, prefix + g*g, D) position embedding."""
    if new_grid == old_grid:
        return pos_embed
    head, grid = pos_embed[:, :prefix], pos_embed[:, prefix:]
    dim = grid.shape[-1]
    grid = grid.reshape(1, old_grid, old_grid, dim).permute(0, 3, 1, 2)  # (1, D, g, g)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False,
                         antialias=new_grid < old_grid)
    return torch.cat([head, grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, dim)], 1)


class ResizableViT(VisionTransformer):
    """A :class:`VisionTransformer` that also runs at the shorter token lengths of ``lengths``.

    ``model(x)`` is the plain ViT at its native length; ``model(x, length=k)`` runs length
    index ``k`` (0 = shortest), resizing the input as the route requires. The position
    embedding and (patch route) the embedding kernel are resized on the fly; their resized
    copies are cached in eval mode (keyed by the weights' versions), so inference pays once.
    """

    def __init__(self, *, lengths: Sequence[TokenLength], route: str = "resize",
                 **vit_options) -> None:
        super().__init__(**vit_options)
        if route not in ROUTES:
            raise ConfigError(f"token-length route {route!r} is not one of {', '.join(ROUTES)}")
        self.route = route
        self.lengths = tuple(lengths)
        self.native_grid = self.patch_embed.grid
        self.native_patch = self.patch_embed.proj.kernel_size[0]
        self._cache: dict[int, tuple] = {}

    @property
    def num_lengths(self) -> int:
        return len(self.lengths)

    def resized_weights(self, index: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(position embedding, patch kernel or None) for length ``index``."""
        weight = self.patch_embed.proj.weight
        # in-place updates (optimiser steps, load_state_dict) bump the versions: stale copies
        # are never served
        versions = (self.pos_embed._version, weight._version, self.pos_embed.data_ptr())
        cached = self._cache.get(index)
        if not self.training and cached is not None and cached[0] == versions:
            return cached[1], cached[2]
        length = self.lengths[index]
        prefix = 0 if self.cls_token is None else 1
        pos = interpolate_pos_embed(self.pos_embed, prefix, self.native_grid, length.grid)
        kernel = None
        if length.patch_size != self.native_patch:
            kernel = pi_resize_kernel(weight, length.patch_size)
        if not self.training:
            self._cache[index] = (versions, pos.detach(),
                                  None if kernel is None else kernel.detach())
        return pos, kernel

    def prepare(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """Resize a batch at the native resolution to the input size of length ``index``."""
        size = self.lengths[index].image_size
        if x.shape[-1] == size and x.shape[-2] == size:
            return x
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=size < x.shape[-1])

    def features_at(self, x: torch.Tensor, index: int) -> torch.Tensor:
        """forward_features at length ``index``; ``x`` is already at that length's input size."""
        pos, kernel = self.resized_weights(index)
        proj = self.patch_embed.proj
        if kernel is None:
            tokens = proj(x)
        else:
            tokens = F.conv2d(x, kernel, proj.bias, stride=self.lengths[index].patch_size)
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, g*g, D)
        if self.cls_token is not None:
            tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        return self.norm(self.blocks(tokens + pos))

    def forward(self, x: torch.Tensor, length: int | None = None) -> torch.Tensor:
        if length is None:
            return super().forward(x)
        if not -self.num_lengths <= length < self.num_lengths:
            raise ConfigError(f"length index {length} is out of range for "
                              f"{self.num_lengths} token lengths")
        index = length % self.num_lengths
        return self.forward_head(self.features_at(self.prepare(x, index), index))

    def flops_at(self, index: int) -> int:
        """Analytic FLOPs of one image at length ``index`` (2 x MACs of the patch embedding,
        every linear layer and the attention matmuls, as :mod:`vitnas.flops`); the input resize
        is not counted."""
        length = self.lengths[index]
        dim = self.embed_dim
        tokens = length.tokens + (0 if self.cls_token is None else 1)
        in_chans = self.patch_embed.proj.in_channels
        total = 2 * length.tokens * dim * in_chans * length.patch_size**2
        for block in self.blocks:
            attention = block.attn
            _, flops = transformer_block_cost(tokens, dim, attention.num_heads,
                                              attention.head_dim, block.mlp.fc1.out_features)
            total += flops
        return total + 2 * dim * self.head.out_features

    def describe(self) -> dict:
        return {"route": self.route, "lengths": [length.as_dict() for length in self.lengths],
                "flops": [self.flops_at(i) for i in range(self.num_lengths)]}


@dataclass(frozen=True)
class ReViTConfig:
    """Everything needed to rebuild a ReViT: the ViT's shape and the token-length grid.

    ``num_heads`` and ``mlp_ratio`` are one value for every layer or one per layer (an
    AutoFormer architecture); ``head_dim=None`` is the plain-ViT width (embed_dim // heads).
    ``space`` and ``arch`` record where a searched architecture came from
    (:func:`config_from_arch`); they do not change the model.
    """

    img_size: int = 32
    patch_size: int = 4
    embed_dim: int = 96
    depth: int = 6
    num_heads: int | tuple[int, ...] = 3
    mlp_ratio: float | tuple[float, ...] = 2.0
    num_classes: int = 10
    in_chans: int = 3
    pool: str = "cls"
    route: str = "resize"
    fractions: tuple[float, ...] = (0.25, 0.5, 1.0)
    grids: tuple[int, ...] | None = None
    head_dim: int | None = None
    cls_token: bool | None = None
    space: str | None = None
    arch: dict | None = None

    def lengths(self) -> tuple[TokenLength, ...]:
        return length_grid(self.img_size, self.patch_size, self.route, self.fractions,
                           self.grids)

    def check_lengths(self) -> tuple[TokenLength, ...]:
        """:meth:`lengths` for a new training, refusing fractions that round to one grid (a
        checkpoint trained with them before this check still loads)."""
        lengths = self.lengths()
        if self.grids is None:
            check_fractions(self.img_size, self.patch_size, self.fractions)
        return lengths

    def per_layer(self, field: str) -> list:
        """``num_heads`` or ``mlp_ratio`` as one entry per layer."""
        value = getattr(self, field)
        values = list(value) if isinstance(value, (tuple, list)) else [value] * self.depth
        if len(values) < self.depth:
            raise ConfigError(f"ReViT {field} has {len(values)} entries for depth {self.depth}")
        return values[:self.depth]

    def check(self) -> None:
        """Refuse a shape that cannot be built as asked: without ``head_dim`` every layer's
        heads must divide ``embed_dim`` (else the heads would silently drop channels). Depth
        and layer widths have ceilings (``MAX_DEPTH``, ``MAX_UNITS``) far above any trainable
        ViT, so an absurd value is one line at once rather than minutes of list building or
        an integer overflow in a layer's shape; the memory check judges the rest."""
        for name in ("img_size", "patch_size", "embed_dim", "depth", "num_classes", "in_chans"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"ReViT {name} must be a whole number >= 1, got {value!r}")
        if self.depth > MAX_DEPTH:
            raise ConfigError(f"ReViT depth must be at most {MAX_DEPTH:,}, got {self.depth:,}")
        for name in ("embed_dim", "num_classes", "img_size", "in_chans"):
            if getattr(self, name) > MAX_UNITS:
                raise ConfigError(f"ReViT {name} must be at most {MAX_UNITS:,}, got "
                                  f"{getattr(self, name):,}")
        heads = self.per_layer("num_heads")
        if any(isinstance(h, bool) or not isinstance(h, int) or not 1 <= h <= MAX_UNITS
               for h in heads):
            raise ConfigError(f"ReViT num_heads must be whole numbers in 1..{MAX_UNITS:,}, got "
                              f"{sorted(set(heads))}")
        ratios = self.per_layer("mlp_ratio")
        if any(isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r)
               or not 0 < r <= MAX_UNITS or not 1 <= round(self.embed_dim * r) <= MAX_UNITS
               for r in ratios):
            raise ConfigError(f"ReViT MLP ratios {sorted(set(ratios))} must give every MLP a "
                              f"hidden layer of 1 to {MAX_UNITS:,} units at embed dim "
                              f"{self.embed_dim} (ratio >= {0.5 / self.embed_dim:.3g})")
        if self.head_dim is not None and self.head_dim * max(heads) > MAX_UNITS:
            raise ConfigError(f"ReViT attention width (heads x head_dim) must be at most "
                              f"{MAX_UNITS:,}, got {self.head_dim * max(heads):,}")
        if self.head_dim is None:
            bad = sorted({h for h in heads if self.embed_dim % h})
            if bad:
                raise ConfigError(f"ReViT embed dim {self.embed_dim} is not divisible by "
                                  f"{', '.join(map(str, bad))} heads (--embed-dim, --num-heads)")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ReViTConfig:
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"ReViT config has unknown field(s) {', '.join(unknown)}")
        values = dict(data)
        for key in ("fractions", "grids", "num_heads", "mlp_ratio"):
            if isinstance(values.get(key), list):
                values[key] = tuple(values[key])
        return cls(**values)


def config_from_arch(space_name: str, arch: Any, route: str = "resize",
                     fractions: Sequence[float] = (0.25, 0.5, 1.0),
                     grids: Sequence[int] | None = None, **space_options: Any) -> ReViTConfig:
    """The ReViT of a searched architecture: any AutoFormer-family space (``autoformer-tiny``,
    ``autoformer-tiny-micro``, ...) and an architecture it accepts (JSON dict, record from
    ``vitnas search``/``sample``, or the space's object). At its native length the ReViT is
    exactly the model ``space.build(arch)`` gives (same layers, same widths)."""
    from vitnas.spaces import get_space

    space = get_space(space_name, **space_options)
    if not all(hasattr(space, a) for a in ("spec", "qkv", "pool", "cls_token", "patch_size")):
        raise ConfigError(f"revit takes an AutoFormer-family space (autoformer-tiny, "
                          f"autoformer-tiny-micro, ...), not {space_name}")
    arch = space.validate(arch)
    return ReViTConfig(
        img_size=space.img_size, patch_size=space.patch_size, embed_dim=arch.hidden_dim,
        depth=arch.depth, num_heads=tuple(arch.num_heads), mlp_ratio=tuple(arch.mlp_ratio),
        num_classes=space.num_classes, in_chans=space.in_chans, pool=space.pool, route=route,
        fractions=tuple(fractions), grids=None if grids is None else tuple(grids),
        head_dim=space.spec.head_dim if space.qkv == "per_head" else None,
        cls_token=space.cls_token, space=space_name, arch=space.to_json(arch))


def build_revit(config: ReViTConfig, seed: int = 0) -> ResizableViT:
    """A freshly initialised ReViT; the seed fixes the initial weights."""
    config.check()
    lengths = config.lengths()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResizableViT(
            lengths=lengths, route=config.route, embed_dim=config.embed_dim, depth=config.depth,
            num_heads=config.per_layer("num_heads"), mlp_ratio=config.per_layer("mlp_ratio"),
            img_size=config.img_size, patch_size=config.patch_size, in_chans=config.in_chans,
            num_classes=config.num_classes, head_dim=config.head_dim, pool=config.pool,
            cls_token=config.cls_token)


def revit_parameters(config: ReViTConfig) -> int:
    """The weight count of ``build_revit(config)`` without allocating it: a one-block model per
    distinct (heads, MLP ratio) layer, built on the meta device, gives the shared parts and each
    kind of block, so a config far too large to build (or deep enough to take minutes) is
    measured in milliseconds."""
    config.check()
    pairs = list(zip(config.per_layer("num_heads"), config.per_layer("mlp_ratio")))
    counts: dict[tuple, tuple[int, int]] = {}
    for pair in set(pairs):
        one = replace(config, depth=1, num_heads=(pair[0],), mlp_ratio=(pair[1],))
        with torch.device("meta"):
            model = ResizableViT(
                lengths=one.lengths(), route=one.route, embed_dim=one.embed_dim, depth=1,
                num_heads=[pair[0]], mlp_ratio=[pair[1]], img_size=one.img_size,
                patch_size=one.patch_size, in_chans=one.in_chans, num_classes=one.num_classes,
                head_dim=one.head_dim, pool=one.pool, cls_token=one.cls_token)
        block = sum(p.numel() for p in model.blocks.parameters())
        counts[pair] = (sum(p.numel() for p in model.parameters()) - block, block)
    shared = next(iter(counts.values()))[0]
    return shared + sum(counts[pair][1] for pair in pairs)


def training_bytes(config: ReViTConfig, batch_size: int) -> float:
    """A lower bound of training's memory: float32 weights, gradients and AdamW's two moments,
    plus each block's input at the longest length, which the backward pass keeps."""
    tokens = config.lengths()[-1].tokens  # a class token, where there is one, adds to this
    activations = float(batch_size) * tokens * config.embed_dim * config.depth * 4
    return float(revit_parameters(config)) * 4 * 4 + activations


def with_grids(model: ResizableViT, config: ReViTConfig, grids: Sequence[int]) -> ResizableViT:
    """The same weights at another set of token grids (e.g. the intermediate lengths a fixed-
    length curve needs: the resize route runs any grid up to the native one)."""
    other = build_revit(replace(config, grids=tuple(grids)))
    other.load_state_dict(model.state_dict())
    return other.to(next(model.parameters()).device).eval()


__all__ = ["ROUTES", "ReViTConfig", "ResizableViT", "TokenLength", "build_revit",
           "check_fractions", "config_from_arch", "fraction_grid", "interpolate_pos_embed",
           "length_grid", "pi_resize_kernel", "revit_parameters", "training_bytes",
           "with_grids"]
