"""Explicit layer roles, so proxies find attention and MLP weights without name heuristics.

TF-TAS's DSS treats attention projections (synaptic diversity) and MLP/head weights (synaptic
saliency) differently; its reference code guesses which is which from module names and shapes.
Our models say it: every such layer carries a ``vitnas_role`` attribute.
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

PATCH_EMBED = "patch_embed"
ATTN_QKV = "attn_qkv"
ATTN_PROJ = "attn_proj"
MLP_FC1 = "mlp_fc1"
MLP_FC2 = "mlp_fc2"
HEAD = "head"
POOL = "pool"
STEM = "stem"
CONV = "conv"

ATTENTION_ROLES = (ATTN_QKV, ATTN_PROJ)
MLP_ROLES = (MLP_FC1, MLP_FC2)
ALL_ROLES = (PATCH_EMBED, ATTN_QKV, ATTN_PROJ, MLP_FC1, MLP_FC2, HEAD, POOL, STEM, CONV)


def tag(module: nn.Module, role: str) -> nn.Module:
    """Mark ``module`` with ``role`` and return it (so it can wrap a constructor call)."""
    if role not in ALL_ROLES:
        raise ValueError(f"unknown layer role {role!r}")
    module.vitnas_role = role
    return module


def role_of(module: nn.Module) -> str | None:
    return getattr(module, "vitnas_role", None)


def tagged_modules(model: nn.Module, *roles: str) -> Iterator[tuple[str, nn.Module]]:
    """(name, module) of every tagged module, restricted to ``roles`` when given."""
    for name, module in model.named_modules():
        role = role_of(module)
        if role is not None and (not roles or role in roles):
            yield name, module
