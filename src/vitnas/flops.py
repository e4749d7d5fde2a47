"""Analytic parameter and FLOP counting, and a measured cross-check.

Convention (the one ``torch.utils.flop_counter`` uses): FLOPs = 2 x multiply-accumulates of
convolutions, linear layers and attention matmuls, per image. Normalisation, activations,
softmax, pooling and residual additions are not counted. Many ViT papers report MACs and call
them FLOPs: divide our numbers by 2 to compare with those.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class LayerCost:
    """One row of an architecture's layer table."""

    name: str
    detail: str
    params: int
    flops: int


def linear_cost(tokens: int, in_features: int, out_features: int, bias: bool = True) -> tuple:
    """(params, flops) of a Linear applied to ``tokens`` vectors."""
    params = in_features * out_features + (out_features if bias else 0)
    return params, 2 * tokens * in_features * out_features


def conv_cost(
    out_hw: tuple[int, int],
    in_ch: int,
    out_ch: int,
    kernel: int,
    groups: int = 1,
    bias: bool = True,
) -> tuple:
    """(params, flops) of a Conv2d producing an ``out_hw`` map."""
    weights = out_ch * (in_ch // groups) * kernel * kernel
    params = weights + (out_ch if bias else 0)
    return params, 2 * out_hw[0] * out_hw[1] * weights


def attention_matmul_flops(tokens: int, heads: int, head_dim: int) -> int:
    """FLOPs of q @ k^T plus attn @ v for one image."""
    return 2 * 2 * tokens * tokens * heads * head_dim


def transformer_block_cost(
    tokens: int, dim: int, heads: int, head_dim: int, mlp_hidden: int
) -> tuple:
    """(params, flops) of one pre-norm block: two LayerNorms, qkv, projection, attention, MLP."""
    inner = heads * head_dim
    parts = [
        linear_cost(tokens, dim, 3 * inner),
        linear_cost(tokens, inner, dim),
        linear_cost(tokens, dim, mlp_hidden),
        linear_cost(tokens, mlp_hidden, dim),
    ]
    params = sum(p for p, _ in parts) + 2 * 2 * dim
    flops = sum(f for _, f in parts) + attention_matmul_flops(tokens, heads, head_dim)
    return params, flops


def conv_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def measured_flops(model: nn.Module, example: torch.Tensor) -> int:
    """FLOPs per image of one forward pass, as counted by ``torch.utils.flop_counter``."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(example)
    model.train(was_training)
    return counter.get_total_flops() // example.shape[0]
