"""AutoFormer search spaces (Chen et al., ICCV 2021): tiny, small, base, and their -micro presets.

One global embedding dimension and depth; heads and MLP ratio chosen per layer. Choice sets
follow AutoFormer's supernet files. Options, documented:

- ``qkv="per_head"`` (default): qkv width = heads x head_dim with head_dim 64, as AutoFormer's
  ``--change_qkv``; ``qkv="embed"``: head width = embed_dim // heads, the plain-ViT convention.
- ``pool="cls"`` (default, class token) or ``"mean"`` (no class token; mean of patch tokens).
- ``cls_token``: defaults to ``pool == "cls"``; ``pool="mean", cls_token=True`` keeps a class
  token (and its position row) in attention but pools the patch tokens, as Auto-Prox's
  ``AutoFormerSub`` that trained ViT-Bench-101 (``true``/``false`` from the command line).

The ``-micro`` presets keep every choice count and the depths, and divide all widths by 4
(embedding dims and the 64-wide heads become 16-wide), so a whole ranking study fits a CPU.
Full presets default to 224 px, patch 16, 100 classes (the reference counting setting);
micro presets to 32 px, patch 4, 10 classes (CIFAR-10).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from numbers import Real
from typing import Any

from torch import nn

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import LayerCost, conv_cost, linear_cost, transformer_block_cost
from vitnas.models.vit import VisionTransformer, mlp_hidden_dim
from vitnas.spaces.base import (
    SearchSpace,
    Shape,
    as_rng,
    build_seeded,
    check_choice,
    check_keys,
    register_presets,
)


@dataclass(frozen=True)
class ViTArch:
    hidden_dim: int
    depth: int
    mlp_ratio: tuple[float, ...]
    num_heads: tuple[int, ...]


@dataclass(frozen=True)
class AutoFormerChoices:
    embed_dims: tuple[int, ...]
    depths: tuple[int, ...]
    mlp_ratios: tuple[float, ...]
    num_heads: tuple[int, ...]
    head_dim: int


PRESETS = {
    "tiny": AutoFormerChoices((192, 216, 240), (12, 13, 14), (3.5, 4.0), (3, 4), 64),
    "small": AutoFormerChoices((320, 384, 448), (12, 13, 14), (3.0, 3.5, 4.0), (5, 6, 7), 64),
    "base": AutoFormerChoices((528, 576, 624), (14, 15, 16), (3.0, 3.5, 4.0), (9, 10), 64),
}
MICRO_WIDTH_DIVISOR = 4


def micro(choices: AutoFormerChoices) -> AutoFormerChoices:
    d = MICRO_WIDTH_DIVISOR
    return AutoFormerChoices(
        tuple(e // d for e in choices.embed_dims),
        choices.depths,
        choices.mlp_ratios,
        choices.num_heads,
        choices.head_dim // d,
    )


_ALIASES = {"embed_dim": "hidden_dim"}
_KEYS = ("hidden_dim", "depth", "mlp_ratio", "num_heads")


class AutoFormerSpace(SearchSpace):
    def __init__(
        self,
        name: str,
        choices: AutoFormerChoices,
        *,
        img_size: int | None = None,
        patch_size: int | None = None,
        in_chans: int = 3,
        num_classes: int | None = None,
        qkv: str = "per_head",
        pool: str = "cls",
        cls_token: bool | str | None = None,
        is_micro: bool = False,
    ) -> None:
        self.name = name
        self.default_img_size = 32 if is_micro else 224
        self.default_num_classes = 10 if is_micro else 100
        super().__init__(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        self.spec = choices
        self.patch_size = (4 if is_micro else 16) if patch_size is None else patch_size
        if self.patch_size <= 0:
            raise ConfigError(f"{name}: patch size must be positive, got {self.patch_size}")
        if self.img_size % self.patch_size:
            raise ArchitectureError(
                f"{name}: image size {self.img_size} is not a multiple of patch size "
                f"{self.patch_size}"
            )
        if qkv not in ("per_head", "embed"):
            raise ArchitectureError(f"{name}: qkv must be 'per_head' or 'embed', not {qkv!r}")
        if pool not in ("cls", "mean"):
            raise ArchitectureError(f"{name}: pool must be 'cls' or 'mean', not {pool!r}")
        self.qkv = qkv
        self.pool = pool
        self.cls_token = _flag(name, "cls_token", cls_token, default=pool == "cls")
        if pool == "cls" and not self.cls_token:
            raise ArchitectureError(f"{name}: pool='cls' needs cls_token")

    # --- JSON ---------------------------------------------------------------------------------
    def from_json(self, obj: Any) -> ViTArch:
        if not isinstance(obj, dict):
            raise ArchitectureError(f"{self.name} architecture must be a JSON object")
        fields = check_keys(self.name, obj, _KEYS, _ALIASES)
        hidden, depth = fields["hidden_dim"], fields["depth"]
        for field, value in (("hidden_dim", hidden), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ArchitectureError(f"{field} must be an integer in {self.name}, got {value!r}")
        check_choice(self.name, "hidden_dim", hidden, self.spec.embed_dims)
        check_choice(self.name, "depth", depth, self.spec.depths)
        mlp = self._per_layer("mlp_ratio", fields["mlp_ratio"], depth, self.spec.mlp_ratios)
        heads = self._per_layer("num_heads", fields["num_heads"], depth, self.spec.num_heads,
                                integer=True)
        return ViTArch(hidden, depth, tuple(float(m) for m in mlp), tuple(int(h) for h in heads))

    def _per_layer(self, field: str, values: Any, depth: int, allowed: tuple,
                   integer: bool = False) -> list:
        """Per-layer list: a longer list is truncated to ``depth``, a shorter one is an error;
        ``integer`` refuses 3.0 as depth and width do (a head count is a count)."""
        if not isinstance(values, list):
            raise ArchitectureError(f"{field} must be a list with one entry per layer")
        if len(values) < depth:
            raise ArchitectureError(
                f"{field} has {len(values)} entries but depth is {depth} in {self.name}"
            )
        values = values[:depth]
        for i, value in enumerate(values):
            if not isinstance(value, Real) or isinstance(value, bool):
                raise ArchitectureError(f"{field}[{i}] must be a number, got {value!r}")
            if integer and not isinstance(value, int):
                raise ArchitectureError(f"{field}[{i}] must be an integer in {self.name}, got "
                                        f"{value!r}")
            check_choice(self.name, f"{field}[{i}]", value, allowed)
        return values

    def to_json(self, arch: ViTArch) -> dict:
        return {
            "hidden_dim": arch.hidden_dim,
            "depth": arch.depth,
            "mlp_ratio": list(arch.mlp_ratio),
            "num_heads": list(arch.num_heads),
        }

    # --- variation ----------------------------------------------------------------------------
    def sample(self, seed: int | random.Random | None = None) -> ViTArch:
        rng = as_rng(seed)
        depth = rng.choice(self.spec.depths)
        return ViTArch(
            rng.choice(self.spec.embed_dims),
            depth,
            tuple(rng.choice(self.spec.mlp_ratios) for _ in range(depth)),
            tuple(rng.choice(self.spec.num_heads) for _ in range(depth)),
        )

    def mutate(
        self,
        arch: ViTArch,
        seed: int | random.Random | None = None,
        layer_prob: float = 0.2,
        structure_prob: float = 0.4,
    ) -> ViTArch:
        """AutoFormer's mutation: resample depth and embedding dim each with ``structure_prob``
        (new layers drawn at random, removed ones truncated), then every layer's MLP ratio and
        heads each with ``layer_prob``."""
        rng = as_rng(seed)
        depth, mlp, heads = arch.depth, list(arch.mlp_ratio), list(arch.num_heads)
        if rng.random() < structure_prob:
            depth = rng.choice(self.spec.depths)
            while len(mlp) < depth:
                mlp.append(rng.choice(self.spec.mlp_ratios))
                heads.append(rng.choice(self.spec.num_heads))
            mlp, heads = mlp[:depth], heads[:depth]
        for i in range(depth):
            if rng.random() < layer_prob:
                mlp[i] = rng.choice(self.spec.mlp_ratios)
            if rng.random() < layer_prob:
                heads[i] = rng.choice(self.spec.num_heads)
        hidden = arch.hidden_dim
        if rng.random() < structure_prob:
            hidden = rng.choice(self.spec.embed_dims)
        return ViTArch(hidden, depth, tuple(mlp), tuple(heads))

    def crossover(self, a: ViTArch, b: ViTArch, seed: int | random.Random | None = None) -> ViTArch:
        """Gene-wise uniform crossover. AutoFormer only crosses equal-depth parents; here the
        child takes its depth from one parent and each layer from a parent that has that layer,
        so any two parents give a valid child."""
        rng = as_rng(seed)
        depth = rng.choice((a.depth, b.depth))
        mlp, heads = [], []
        for i in range(depth):
            donors = [p for p in (a, b) if i < p.depth]
            mlp.append(rng.choice(donors).mlp_ratio[i])
            heads.append(rng.choice(donors).num_heads[i])
        hidden = rng.choice((a.hidden_dim, b.hidden_dim))
        return ViTArch(hidden, depth, tuple(mlp), tuple(heads))

    # --- counting and building ----------------------------------------------------------------
    def head_dim(self, arch: ViTArch, layer: int) -> int:
        if self.qkv == "per_head":
            return self.spec.head_dim
        return arch.hidden_dim // arch.num_heads[layer]

    def shape(self, arch: Any) -> Shape:
        arch = self._as_arch(arch)
        return Shape(arch.depth, arch.hidden_dim)

    def layer_costs(self, arch: ViTArch) -> list[LayerCost]:
        dim, grid = arch.hidden_dim, self.img_size // self.patch_size
        cls = 1 if self.cls_token else 0
        tokens = grid * grid + cls
        rows = [
            LayerCost(
                "patch_embed",
                f"conv {self.patch_size}x{self.patch_size} {self.in_chans}->{dim}",
                *conv_cost((grid, grid), self.in_chans, dim, self.patch_size),
            ),
            LayerCost("embeddings", f"pos {tokens}x{dim}" + (" + cls" if cls else ""),
                      tokens * dim + cls * dim, 0),
        ]
        for i in range(arch.depth):
            heads, head_dim = arch.num_heads[i], self.head_dim(arch, i)
            hidden = mlp_hidden_dim(dim, arch.mlp_ratio[i])
            rows.append(
                LayerCost(
                    f"block{i}",
                    f"heads {heads}x{head_dim}, mlp {arch.mlp_ratio[i]:g} ({hidden})",
                    *transformer_block_cost(tokens, dim, heads, head_dim, hidden),
                )
            )
        rows.append(LayerCost("norm", f"LayerNorm {dim}", 2 * dim, 0))
        rows.append(LayerCost("head", f"linear {dim}->{self.num_classes}",
                              *linear_cost(1, dim, self.num_classes)))
        return rows

    def build(self, arch: ViTArch, seed: int = 0) -> nn.Module:
        arch = self.validate(arch)
        return build_seeded(
            lambda: VisionTransformer(
                embed_dim=arch.hidden_dim,
                depth=arch.depth,
                num_heads=arch.num_heads,
                mlp_ratio=arch.mlp_ratio,
                img_size=self.img_size,
                patch_size=self.patch_size,
                in_chans=self.in_chans,
                num_classes=self.num_classes,
                head_dim=self.spec.head_dim if self.qkv == "per_head" else None,
                pool=self.pool,
                cls_token=self.cls_token,
            ),
            seed,
        )

    def size(self) -> int:
        per_layer = len(self.spec.mlp_ratios) * len(self.spec.num_heads)
        return len(self.spec.embed_dims) * sum(per_layer**d for d in self.spec.depths)

    def choices(self) -> dict[str, Any]:
        # cls_token is listed only when it differs from its default, so the score-store
        # identity of every space that existed before the option stays the same.
        extra = {"cls_token": self.cls_token} if self.cls_token != (self.pool == "cls") else {}
        return {
            "family": "autoformer",
            "patch_size": self.patch_size,
            "hidden_dim": list(self.spec.embed_dims),
            "depth": list(self.spec.depths),
            "mlp_ratio (per layer)": list(self.spec.mlp_ratios),
            "num_heads (per layer)": list(self.spec.num_heads),
            "head_dim": self.spec.head_dim if self.qkv == "per_head" else "embed/heads",
            "pool": self.pool,
            **extra,
        }


def _flag(space: str, field: str, value: bool | str | int | None, default: bool) -> bool:
    """A boolean option that may arrive as text from ``--space-options``."""
    if value is None:
        return default
    text = str(value).lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise ArchitectureError(f"{space}: {field} must be true or false, not {value!r}")


register_presets("autoformer", AutoFormerSpace, PRESETS, micro)
