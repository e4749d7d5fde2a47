"""PiT search spaces (pooling-based ViT; choice sets from TF-TAS's PiT experiments).

Three stages with a depth and a head count each, one global MLP ratio and a base width;
stage width = base_dim x heads. Choice sets: mlp_ratio {2, 4, 6, 8}; heads per stage {2, 4, 8};
depth per stage {1, 2, 3} / {4, 6, 8} / {2, 4, 6}. base_dim takes four values in step 8 for
tiny (16..40) and xs (40..64), step 12 for small (36..72): 11,664 architectures per preset.

Patches overlap as in PiT: ``stride`` defaults to half the patch size. The ``-micro`` presets
halve base_dim (it is already the per-head width, so halving keeps heads at least 8 wide) and
default to 32 px, patch 8 (stride 4: a 7x7, 4x4, 2x2 token pyramid, comparable in cost with
the AutoFormer micro presets), 10 classes; full presets to 224 px, patch 16 (stride 8),
100 classes.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import LayerCost, conv_cost, conv_out, linear_cost, transformer_block_cost
from vitnas.models.pit import PoolingTransformer, pit_grid
from vitnas.models.vit import mlp_hidden_dim
from vitnas.spaces.base import (
    SearchSpace,
    Shape,
    as_rng,
    build_seeded,
    check_choice,
    check_keys,
    register_presets,
)

STAGES = 3


@dataclass(frozen=True)
class PiTArch:
    base_dim: int
    mlp_ratio: int
    depth: tuple[int, ...]
    num_heads: tuple[int, ...]


@dataclass(frozen=True)
class PiTChoices:
    base_dims: tuple[int, ...]
    mlp_ratios: tuple[int, ...] = (2, 4, 6, 8)
    stage_depths: tuple[tuple[int, ...], ...] = ((1, 2, 3), (4, 6, 8), (2, 4, 6))
    num_heads: tuple[int, ...] = (2, 4, 8)


PRESETS = {
    "tiny": PiTChoices((16, 24, 32, 40)),
    "xs": PiTChoices((40, 48, 56, 64)),
    "small": PiTChoices((36, 48, 60, 72)),
}
MICRO_BASE_DIM_DIVISOR = 2
_KEYS = ("base_dim", "mlp_ratio", "depth", "num_heads")


class PiTSpace(SearchSpace):
    def __init__(
        self,
        name: str,
        choices: PiTChoices,
        *,
        img_size: int | None = None,
        patch_size: int | None = None,
        stride: int | None = None,
        in_chans: int = 3,
        num_classes: int | None = None,
        pool: str = "cls",
        is_micro: bool = False,
    ) -> None:
        self.name = name
        self.default_img_size = 32 if is_micro else 224
        self.default_num_classes = 10 if is_micro else 100
        super().__init__(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        self.spec = choices
        self.patch_size = (8 if is_micro else 16) if patch_size is None else patch_size
        self.stride = max(1, self.patch_size // 2) if stride is None else stride
        if self.patch_size <= 0 or self.stride <= 0:
            raise ConfigError(f"{name}: patch size and stride must be positive, got "
                              f"{self.patch_size} and {self.stride}")
        if self.patch_size > self.img_size:
            raise ArchitectureError(
                f"{name}: patch size {self.patch_size} exceeds image size {self.img_size}"
            )
        if pool not in ("cls", "mean"):
            raise ArchitectureError(f"{name}: pool must be 'cls' or 'mean', not {pool!r}")
        self.pool = pool

    def from_json(self, obj: Any) -> PiTArch:
        if not isinstance(obj, dict):
            raise ArchitectureError(f"{self.name} architecture must be a JSON object")
        fields = check_keys(self.name, obj, _KEYS, {})
        for field in ("base_dim", "mlp_ratio"):
            value = fields[field]
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ArchitectureError(f"{field} must be a number in {self.name}, got {value!r}")
        check_choice(self.name, "base_dim", fields["base_dim"], self.spec.base_dims)
        check_choice(self.name, "mlp_ratio", fields["mlp_ratio"], self.spec.mlp_ratios)
        depth = self._per_stage("depth", fields["depth"], self.spec.stage_depths)
        heads = self._per_stage("num_heads", fields["num_heads"], (self.spec.num_heads,) * STAGES)
        return PiTArch(int(fields["base_dim"]), int(fields["mlp_ratio"]), depth, heads)

    def _per_stage(self, field: str, values: Any, allowed: tuple) -> tuple[int, ...]:
        if not isinstance(values, list) or len(values) != STAGES:
            raise ArchitectureError(f"{field} must be a list of {STAGES} integers (one per stage)")
        for s, value in enumerate(values):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ArchitectureError(f"{field}[{s}] must be an integer, got {value!r}")
            check_choice(self.name, f"{field}[{s}]", value, allowed[s])
        return tuple(values)

    def to_json(self, arch: PiTArch) -> dict:
        return {
            "base_dim": arch.base_dim,
            "mlp_ratio": arch.mlp_ratio,
            "depth": list(arch.depth),
            "num_heads": list(arch.num_heads),
        }

    def sample(self, seed: int | random.Random | None = None) -> PiTArch:
        rng = as_rng(seed)
        return PiTArch(
            rng.choice(self.spec.base_dims),
            rng.choice(self.spec.mlp_ratios),
            tuple(rng.choice(options) for options in self.spec.stage_depths),
            tuple(rng.choice(self.spec.num_heads) for _ in range(STAGES)),
        )

    def mutate(
        self,
        arch: PiTArch,
        seed: int | random.Random | None = None,
        layer_prob: float = 0.2,
        structure_prob: float = 0.4,
    ) -> PiTArch:
        """Per-stage depth and heads resampled with ``layer_prob``; base_dim and mlp_ratio
        (global genes) with ``structure_prob``, mirroring AutoFormer's two rates."""
        rng = as_rng(seed)
        depth = tuple(
            rng.choice(self.spec.stage_depths[s]) if rng.random() < layer_prob else d
            for s, d in enumerate(arch.depth)
        )
        heads = tuple(
            rng.choice(self.spec.num_heads) if rng.random() < layer_prob else h
            for h in arch.num_heads
        )
        base = rng.choice(self.spec.base_dims) if rng.random() < structure_prob else arch.base_dim
        mlp = rng.choice(self.spec.mlp_ratios) if rng.random() < structure_prob else arch.mlp_ratio
        return PiTArch(base, mlp, depth, heads)

    def crossover(self, a: PiTArch, b: PiTArch, seed: int | random.Random | None = None) -> PiTArch:
        rng = as_rng(seed)
        return PiTArch(
            rng.choice((a.base_dim, b.base_dim)),
            rng.choice((a.mlp_ratio, b.mlp_ratio)),
            tuple(rng.choice(pair) for pair in zip(a.depth, b.depth)),
            tuple(rng.choice(pair) for pair in zip(a.num_heads, b.num_heads)),
        )

    def shape(self, arch: Any) -> Shape:
        """Blocks over all stages; width summed over the stages (base_dim x heads each)."""
        arch = self._as_arch(arch)
        return Shape(sum(arch.depth), sum(arch.base_dim * h for h in arch.num_heads))

    def layer_costs(self, arch: PiTArch) -> list[LayerCost]:
        widths = [arch.base_dim * h for h in arch.num_heads]
        cls = 1 if self.pool == "cls" else 0
        grid = pit_grid(self.img_size, self.patch_size, self.stride)
        rows = [
            LayerCost(
                "patch_embed",
                f"conv {self.patch_size}x{self.patch_size}/{self.stride} "
                f"{self.in_chans}->{widths[0]}",
                *conv_cost((grid, grid), self.in_chans, widths[0], self.patch_size),
            ),
            LayerCost("embeddings", f"pos {widths[0]}x{grid}x{grid}" + (" + cls" if cls else ""),
                      widths[0] * grid * grid + cls * widths[0], 0),
        ]
        for s in range(STAGES):
            tokens = grid * grid + cls
            hidden = mlp_hidden_dim(widths[s], arch.mlp_ratio)
            params, flops = transformer_block_cost(
                tokens, widths[s], arch.num_heads[s], arch.base_dim, hidden
            )
            rows.append(LayerCost(
                f"stage{s}",
                f"{arch.depth[s]} blocks, width {widths[s]}, heads {arch.num_heads[s]}, "
                f"{grid}x{grid} tokens",
                arch.depth[s] * params, arch.depth[s] * flops,
            ))
            if s < STAGES - 1:
                new_grid = conv_out(grid, 3, 2, 1)
                groups = math.gcd(widths[s], widths[s + 1])
                conv_p, conv_f = conv_cost(
                    (new_grid, new_grid), widths[s], widths[s + 1], 3, groups
                )
                fc_p, fc_f = linear_cost(1, widths[s], widths[s + 1]) if cls else (0, 0)
                rows.append(LayerCost(
                    f"pool{s}", f"conv3x3/2 groups {groups} {widths[s]}->{widths[s + 1]}",
                    conv_p + fc_p, conv_f + fc_f,
                ))
                grid = new_grid
        rows.append(LayerCost("norm", f"LayerNorm {widths[-1]}", 2 * widths[-1], 0))
        rows.append(LayerCost("head", f"linear {widths[-1]}->{self.num_classes}",
                              *linear_cost(1, widths[-1], self.num_classes)))
        return rows

    def build(self, arch: PiTArch, seed: int = 0) -> nn.Module:
        arch = self.validate(arch)
        return build_seeded(
            lambda: PoolingTransformer(
                base_dim=arch.base_dim,
                depth=arch.depth,
                num_heads=arch.num_heads,
                mlp_ratio=arch.mlp_ratio,
                img_size=self.img_size,
                patch_size=self.patch_size,
                stride=self.stride,
                in_chans=self.in_chans,
                num_classes=self.num_classes,
                pool=self.pool,
            ),
            seed,
        )

    def size(self) -> int:
        stages = math.prod(len(d) * len(self.spec.num_heads) for d in self.spec.stage_depths)
        return len(self.spec.base_dims) * len(self.spec.mlp_ratios) * stages

    def choices(self) -> dict[str, Any]:
        return {
            "family": "pit",
            "patch_size": self.patch_size,
            "stride": self.stride,
            "base_dim": list(self.spec.base_dims),
            "mlp_ratio": list(self.spec.mlp_ratios),
            "depth (per stage)": [list(d) for d in self.spec.stage_depths],
            "num_heads (per stage)": list(self.spec.num_heads),
            "pool": self.pool,
        }


def micro(choices: PiTChoices) -> PiTChoices:
    """The CPU-sized preset: base dims divided by MICRO_BASE_DIM_DIVISOR."""
    divided = tuple(b // MICRO_BASE_DIM_DIVISOR for b in choices.base_dims)
    return replace(choices, base_dims=divided)


register_presets("pit", PiTSpace, PRESETS, micro)
