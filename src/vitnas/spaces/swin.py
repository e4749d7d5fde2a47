"""S3 search spaces (Chen et al., "Searching the Search Space of Vision Transformer", NeurIPS
2021): hierarchical Swin-style ViTs with four stages, each with its own genes.

Per stage: ``depth``, ``embed_dim``, ``mlp_ratio``, ``num_heads`` and ``window_size`` (shifted
windows on every second block, relative position bias; see ``vitnas.models.swin``). Between
stages a 2x2 patch merging maps the width of one stage to the next.

Where the choice sets come from:

- S3's released architectures (microsoft/Cream, ``AutoFormerV2/configs/S3-T.yaml`` and
  ``S3-S.yaml``): S3-T has widths 96/192/384/768, heads 3/6/12/24 (head width 32), MLP ratio
  4, depths 2/2/6/2 and windows 7/7/14/7; S3-S the same with depths 2/2/18/2 and window 14
  everywhere. The files give MLP ratio, heads and window per block, but every released model
  is constant within a stage, so per-stage genes (the granularity at which the paper evolves
  its space) express them exactly.
- The paper's search dimensions (depth, embedding dim, MLP ratio, heads, window size and
  Q-K-V dim, per stage) and its window choices 7 and 14. Its table of final per-stage ranges
  could not be checked here, so the sets below are this project's construction, documented:
  each brackets the released model the way AutoFormer's sets bracket AutoFormer-T/S (one step
  either side), so S3-T lies inside ``s3-tiny`` and S3-S inside ``s3-small``.
- ``s3-wide`` is also this project's construction, for ground truths whose sizes must differ by
  more than training noise: every width is S3-T's times 1/2, 1 or 3/2, stage 3 takes 2 to 8
  blocks, heads run from a third to 1.5x S3-T's and the MLP ratio from 2 to 4. S3-T lies inside
  it; its micro segmentation backbones span 29x in parameters from the smallest to the
  largest (``s3-tiny-micro``'s 5x). With 12 epochs of training that range lifts the
  segmentation ground truth above its seed noise (README, segmentation section).
- Q-K-V width is not a separate gene: it is heads x ``head_dim`` (32, Swin's and S3's head
  width), AutoFormer's ``--change_qkv`` convention; S3's finding that the Q-K-V dim may be
  smaller than the embedding dim is what letting heads vary independently of width expresses.

=================  ======================================  ======================================
gene (per stage)   s3-tiny                                 s3-small
=================  ======================================  ======================================
depth              {1,2,3} {1,2,3} {4,6,8} {1,2,3}         {1,2,3} {1,2,3} {16,18,20} {1,2,3}
embed_dim          {80,96,112} {160,192,224}               same as s3-tiny
                   {320,384,448} {640,768,896}
num_heads          {2,3,4} {5,6,7} {10,12,14} {20,24,28}   same as s3-tiny
mlp_ratio          {3.5, 4}                                {3, 3.5, 4}
window_size        {7, 14}                                 {7, 14}
=================  ======================================  ======================================

=================  ===========================================================================
gene (per stage)   s3-wide
=================  ===========================================================================
depth              {1,2,3} {1,2,3} {2,4,6,8} {1,2,3}
embed_dim          {48,96,144} {96,192,288} {192,384,576} {384,768,1152}
num_heads          {1,3,5} {3,6,9} {6,12,18} {12,24,36}
mlp_ratio          {2, 3, 4}
window_size        {7, 14}
=================  ===========================================================================

Full presets default to 224 px, patch 4 (token grids 56/28/14/7, Swin's), 100 classes. The
``-micro`` presets keep every choice count and depth, divide widths and the head width by 4
(head width 8), take windows {2, 4} (the same windows-per-side as 7 and 14 at 224 px) and
default to 32 px, patch 2 (grids 16/8/4/2), 10 classes, for CPU-sized ranking studies.

Options: ``task="classification"`` (default; logits (B, classes)) or ``"segmentation"``: the
backbone without its classification head plus the light FPN decoder of
``vitnas.models.segmentation`` of width ``decoder_dim`` (128 full, 32 micro); the model's
output is per-pixel logits (B, classes, H, W) and ``layer_costs`` count the decoder too.
Any ``img_size`` works: odd grids are padded (and the padding masked) as the model documents.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from numbers import Real
from typing import Any

from torch import nn

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import LayerCost, attention_matmul_flops, conv_cost, linear_cost
from vitnas.models.segmentation import FPNDecoder, SegmentationModel
from vitnas.models.swin import HierarchicalViT, stage_grids, stage_window
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

STAGES = 4
TASKS = ("classification", "segmentation")


@dataclass(frozen=True)
class SwinArch:
    depth: tuple[int, ...]
    embed_dim: tuple[int, ...]
    mlp_ratio: tuple[float, ...]
    num_heads: tuple[int, ...]
    window_size: tuple[int, ...]


@dataclass(frozen=True)
class S3Choices:
    depths: tuple[tuple[int, ...], ...]  # per stage
    embed_dims: tuple[tuple[int, ...], ...]  # per stage
    num_heads: tuple[tuple[int, ...], ...]  # per stage
    mlp_ratios: tuple[float, ...]  # every stage
    window_sizes: tuple[int, ...]  # every stage
    head_dim: int


_WIDTHS = ((80, 96, 112), (160, 192, 224), (320, 384, 448), (640, 768, 896))
_HEADS = ((2, 3, 4), (5, 6, 7), (10, 12, 14), (20, 24, 28))
PRESETS = {
    "tiny": S3Choices(((1, 2, 3), (1, 2, 3), (4, 6, 8), (1, 2, 3)), _WIDTHS, _HEADS,
                      (3.5, 4.0), (7, 14), 32),
    "small": S3Choices(((1, 2, 3), (1, 2, 3), (16, 18, 20), (1, 2, 3)), _WIDTHS, _HEADS,
                       (3.0, 3.5, 4.0), (7, 14), 32),
    "wide": S3Choices(((1, 2, 3), (1, 2, 3), (2, 4, 6, 8), (1, 2, 3)),
                      ((48, 96, 144), (96, 192, 288), (192, 384, 576), (384, 768, 1152)),
                      ((1, 3, 5), (3, 6, 9), (6, 12, 18), (12, 24, 36)),
                      (2.0, 3.0, 4.0), (7, 14), 32),
}
MICRO_WIDTH_DIVISOR = 4
MICRO_WINDOWS = (2, 4)


def micro(choices: S3Choices) -> S3Choices:
    d = MICRO_WIDTH_DIVISOR
    return S3Choices(
        choices.depths,
        tuple(tuple(w // d for w in stage) for stage in choices.embed_dims),
        choices.num_heads,
        choices.mlp_ratios,
        MICRO_WINDOWS,
        choices.head_dim // d,
    )


_KEYS = ("depth", "embed_dim", "mlp_ratio", "num_heads", "window_size")
_ALIASES = {"hidden_dim": "embed_dim", "window": "window_size"}


class S3Space(SearchSpace):
    def __init__(
        self,
        name: str,
        choices: S3Choices,
        *,
        img_size: int | None = None,
        patch_size: int | None = None,
        in_chans: int = 3,
        num_classes: int | None = None,
        task: str = "classification",
        decoder_dim: int | None = None,
        is_micro: bool = False,
    ) -> None:
        self.name = name
        self.default_img_size = 32 if is_micro else 224
        self.default_num_classes = 10 if is_micro else 100
        super().__init__(img_size=img_size, in_chans=in_chans, num_classes=num_classes)
        self.spec = choices
        self.patch_size = (2 if is_micro else 4) if patch_size is None else patch_size
        if not isinstance(self.patch_size, int) or self.patch_size <= 0:
            raise ConfigError(f"{name}: patch size must be a positive integer, got "
                              f"{self.patch_size!r}")
        if self.patch_size > self.img_size:  # as AutoFormer and PiT: not a padded single patch
            raise ConfigError(f"{name}: patch size {self.patch_size} exceeds image size "
                              f"{self.img_size}")
        if task not in TASKS:
            raise ConfigError(f"{name}: task must be one of {', '.join(TASKS)}, not {task!r}")
        self.task = task
        self.decoder_dim = (32 if is_micro else 128) if decoder_dim is None else decoder_dim
        if not isinstance(self.decoder_dim, int) or self.decoder_dim <= 0:
            raise ConfigError(f"{name}: decoder_dim must be a positive integer, got "
                              f"{self.decoder_dim!r}")
        self.grids = stage_grids(self.img_size, self.patch_size, STAGES)

    # --- JSON ---------------------------------------------------------------------------------
    def from_json(self, obj: Any) -> SwinArch:
        if not isinstance(obj, dict):
            raise ArchitectureError(f"{self.name} architecture must be a JSON object")
        fields = check_keys(self.name, obj, _KEYS, _ALIASES)
        spec = self.spec
        return SwinArch(
            tuple(int(v) for v in self._per_stage("depth", fields["depth"], spec.depths, int)),
            tuple(int(v) for v in self._per_stage("embed_dim", fields["embed_dim"],
                                                  spec.embed_dims, int)),
            tuple(float(v) for v in self._per_stage("mlp_ratio", fields["mlp_ratio"],
                                                    (spec.mlp_ratios,) * STAGES, Real)),
            tuple(int(v) for v in self._per_stage("num_heads", fields["num_heads"],
                                                  spec.num_heads, int)),
            tuple(int(v) for v in self._per_stage("window_size", fields["window_size"],
                                                  (spec.window_sizes,) * STAGES, int)),
        )

    def _per_stage(self, field: str, values: Any, allowed: tuple, kind: type) -> list:
        if not isinstance(values, list) or len(values) != STAGES:
            raise ArchitectureError(
                f"{field} must be a list of {STAGES} values (one per stage) in {self.name}"
            )
        for s, value in enumerate(values):
            if not isinstance(value, kind) or isinstance(value, bool):
                what = "an integer" if kind is int else "a number"
                raise ArchitectureError(f"{field}[{s}] must be {what}, got {value!r}")
            check_choice(self.name, f"{field}[{s}]", value, allowed[s])
        return values

    def to_json(self, arch: SwinArch) -> dict:
        return {
            "depth": list(arch.depth),
            "embed_dim": list(arch.embed_dim),
            "mlp_ratio": list(arch.mlp_ratio),
            "num_heads": list(arch.num_heads),
            "window_size": list(arch.window_size),
        }

    # --- variation ----------------------------------------------------------------------------
    def sample(self, seed: int | random.Random | None = None) -> SwinArch:
        rng = as_rng(seed)
        spec = self.spec
        return SwinArch(
            tuple(rng.choice(spec.depths[s]) for s in range(STAGES)),
            tuple(rng.choice(spec.embed_dims[s]) for s in range(STAGES)),
            tuple(rng.choice(spec.mlp_ratios) for _ in range(STAGES)),
            tuple(rng.choice(spec.num_heads[s]) for s in range(STAGES)),
            tuple(rng.choice(spec.window_sizes) for _ in range(STAGES)),
        )

    def mutate(
        self,
        arch: SwinArch,
        seed: int | random.Random | None = None,
        layer_prob: float = 0.2,
        structure_prob: float = 0.4,
    ) -> SwinArch:
        """AutoFormer's two rates, per stage: depth and width (the stage's structure) are each
        resampled with ``structure_prob``; MLP ratio, heads and window with ``layer_prob``."""
        rng = as_rng(seed)
        spec = self.spec

        def resample(values: tuple, options: tuple, prob: float) -> tuple:
            return tuple(rng.choice(options[s]) if rng.random() < prob else v
                         for s, v in enumerate(values))

        return SwinArch(
            resample(arch.depth, spec.depths, structure_prob),
            resample(arch.embed_dim, spec.embed_dims, structure_prob),
            resample(arch.mlp_ratio, (spec.mlp_ratios,) * STAGES, layer_prob),
            resample(arch.num_heads, spec.num_heads, layer_prob),
            resample(arch.window_size, (spec.window_sizes,) * STAGES, layer_prob),
        )

    def crossover(
        self, a: SwinArch, b: SwinArch, seed: int | random.Random | None = None
    ) -> SwinArch:
        """Gene-wise uniform crossover: every gene of every stage from either parent (stages
        have fixed positions, so any two parents give a valid child)."""
        rng = as_rng(seed)
        genes = [
            tuple(rng.choice(pair) for pair in zip(getattr(a, f), getattr(b, f))) for f in _KEYS
        ]
        return SwinArch(*genes)

    # --- counting and building ----------------------------------------------------------------
    def shape(self, arch: Any) -> Shape:
        """Blocks over all stages; width summed over the stages."""
        arch = self._as_arch(arch)
        return Shape(sum(arch.depth), sum(arch.embed_dim))

    def layer_costs(self, arch: SwinArch) -> list[LayerCost]:
        dims, hd, p = arch.embed_dim, self.spec.head_dim, self.patch_size
        g0 = self.grids[0]
        conv_p, conv_f = conv_cost((g0, g0), self.in_chans, dims[0], p)
        rows = [LayerCost("patch_embed", f"conv {p}x{p} {self.in_chans}->{dims[0]} + LayerNorm",
                          conv_p + 2 * dims[0], conv_f)]
        for s, grid in enumerate(self.grids):
            dim, heads = dims[s], arch.num_heads[s]
            if s:
                params, flops = linear_cost(grid * grid, 4 * dims[s - 1], dim, bias=False)
                rows.append(LayerCost(f"merge{s - 1}", f"patch merging {4 * dims[s - 1]}->{dim}",
                                      params + 2 * 4 * dims[s - 1], flops))
            window, shift = stage_window(grid, arch.window_size[s])
            hidden = mlp_hidden_dim(dim, arch.mlp_ratio[s])
            params, flops = self.block_cost(grid, dim, heads, hidden, window)
            rows.append(LayerCost(
                f"stage{s}",
                f"{arch.depth[s]} blocks, width {dim}, heads {heads}x{hd}, mlp "
                f"{arch.mlp_ratio[s]:g} ({hidden}), window {window}"
                + (f" shift {shift}" if shift and arch.depth[s] > 1 else "")
                + f", {grid}x{grid} tokens",
                arch.depth[s] * params, arch.depth[s] * flops,
            ))
        if self.task == "classification":
            rows.append(LayerCost("norm", f"LayerNorm {dims[-1]}", 2 * dims[-1], 0))
            rows.append(LayerCost("head", f"linear {dims[-1]}->{self.num_classes}",
                                  *linear_cost(1, dims[-1], self.num_classes)))
        else:
            rows.extend(self.decoder_costs(dims))
        return rows

    def block_cost(self, grid: int, dim: int, heads: int, hidden: int, window: int) -> tuple:
        """(params, flops) of one Swin block on a grid x grid map: the linear layers on the
        real tokens, the attention matmuls on every (padded) window."""
        inner = heads * self.spec.head_dim
        tokens = grid * grid
        windows = math.ceil(grid / window) ** 2
        parts = [
            linear_cost(tokens, dim, 3 * inner),
            linear_cost(tokens, inner, dim),
            linear_cost(tokens, dim, hidden),
            linear_cost(tokens, hidden, dim),
        ]
        bias_table = (2 * window - 1) ** 2 * heads
        params = sum(p for p, _ in parts) + 2 * 2 * dim + bias_table
        attention = windows * attention_matmul_flops(window * window, heads, self.spec.head_dim)
        return params, sum(f for _, f in parts) + attention

    def decoder_costs(self, dims: tuple[int, ...]) -> list[LayerCost]:
        d, fine = self.decoder_dim, self.grids[0]
        lateral_p = lateral_f = smooth_p = smooth_f = 0
        for dim, grid in zip(dims, self.grids):
            params, flops = conv_cost((grid, grid), dim, d, 1)
            lateral_p, lateral_f = lateral_p + params + 2 * dim, lateral_f + flops
            params, flops = conv_cost((grid, grid), d, d, 3)
            smooth_p, smooth_f = smooth_p + params, smooth_f + flops
        return [
            LayerCost("fpn_lateral", f"LayerNorm + conv 1x1 ->{d} per stage", lateral_p, lateral_f),
            LayerCost("fpn_smooth", f"conv 3x3 {d}->{d} per stage", smooth_p, smooth_f),
            LayerCost("fpn_fuse", f"conv 1x1 {STAGES * d}->{d} at {fine}x{fine}",
                      *conv_cost((fine, fine), STAGES * d, d, 1)),
            LayerCost("seg_head", f"conv 1x1 {d}->{self.num_classes} at {fine}x{fine}",
                      *conv_cost((fine, fine), d, self.num_classes, 1)),
        ]

    def build(self, arch: SwinArch, seed: int = 0) -> nn.Module:
        arch = self.validate(arch)
        segmentation = self.task == "segmentation"

        def backbone() -> HierarchicalViT:
            return HierarchicalViT(
                embed_dims=arch.embed_dim,
                depths=arch.depth,
                num_heads=arch.num_heads,
                mlp_ratios=arch.mlp_ratio,
                window_sizes=arch.window_size,
                head_dim=self.spec.head_dim,
                img_size=self.img_size,
                patch_size=self.patch_size,
                in_chans=self.in_chans,
                num_classes=0 if segmentation else self.num_classes,
            )

        if not segmentation:
            return build_seeded(backbone, seed)
        return build_seeded(
            lambda: SegmentationModel(
                backbone(), FPNDecoder(arch.embed_dim, self.decoder_dim, self.num_classes)
            ),
            seed,
        )

    def size(self) -> int:
        spec = self.spec
        per_stage_shared = len(spec.mlp_ratios) * len(spec.window_sizes)
        return math.prod(
            len(spec.depths[s]) * len(spec.embed_dims[s]) * len(spec.num_heads[s])
            * per_stage_shared
            for s in range(STAGES)
        )

    def choices(self) -> dict[str, Any]:
        spec = self.spec
        extra = {"decoder_dim": self.decoder_dim} if self.task == "segmentation" else {}
        return {
            "family": "s3",
            "patch_size": self.patch_size,
            "task": self.task,
            "depth (per stage)": [list(d) for d in spec.depths],
            "embed_dim (per stage)": [list(w) for w in spec.embed_dims],
            "num_heads (per stage)": [list(h) for h in spec.num_heads],
            "mlp_ratio (each stage)": list(spec.mlp_ratios),
            "window_size (each stage)": list(spec.window_sizes),
            "head_dim": spec.head_dim,
            **extra,
        }


register_presets("s3", S3Space, PRESETS, micro)
