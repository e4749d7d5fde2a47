"""Token merging (ToMe, Bolya et al., ICLR 2023) on a trained ViT or ReViT, no training.

Written here from the paper's description (section 3; its released code is non-commercial):
in every block, between the attention and the MLP, ``r`` tokens are merged away by
*bipartite soft matching*:

1. split the tokens alternately into two sets A and B (A = tokens 0, 2, 4, ..., B = 1, 3, ...);
2. for every token of A, its most similar token of B, similarity = cosine similarity of the
   attention keys (averaged over the heads);
3. keep the ``r`` most similar of those edges;
4. merge each kept A token into its B partner by a size-weighted average
   (x_B <- (s_A x_A + s_B x_B) / (s_A + s_B), s_B <- s_A + s_B); the rest of A stays;
5. attention is *proportional*: softmax(q k^T / sqrt(d) + log s), so a token standing for s
   patches counts s times.

The class token is never merged (it is left out of the matching). ``r`` is the same in every
block (the paper's constant schedule), clipped to half the mergeable tokens. With ``r = 0`` no
token is merged and every size stays 1, so the computation is the plain model's, operation
for operation (tested to be bit-identical). Mean pooling takes the size-weighted mean of the
remaining tokens: the mean over the original patches.

FLOPs follow :mod:`vitnas.flops` (2 x MACs of the linear layers, attention matmuls, and here
the similarity matmul of the matching, the only extra matmul), and equal
``torch.utils.flop_counter`` exactly (tested).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from vitnas.errors import ConfigError
from vitnas.flops import attention_matmul_flops, linear_cost
from vitnas.models.vit import Block, VisionTransformer


def bipartite_soft_matching(metric: torch.Tensor, r: int) -> tuple[torch.Tensor, ...]:
    """Which tokens of ``metric`` (B, N, d) to merge: returns (kept A indices (B, Na - r),
    merged A indices (B, r), their B partners (B, r)); A = even positions, B = odd ones."""
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    a, b = metric[:, ::2], metric[:, 1::2]
    similarity = a @ b.transpose(-1, -2)  # (B, Na, Nb)
    best, partner = similarity.max(dim=-1)  # (B, Na) each
    order = best.argsort(dim=-1, descending=True)
    merged = order[:, :r]
    kept = order[:, r:].sort(dim=-1).values  # the survivors of A in their original order
    return kept, merged, partner.gather(1, merged)


def merge_tokens(x: torch.Tensor, size: torch.Tensor, kept: torch.Tensor, merged: torch.Tensor,
                 partner: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted merge of tokens ``x`` (B, N, D) with sizes ``size`` (B, N, 1): each merged
    A token is averaged into its B partner; returns ([kept A, B] tokens, their sizes)."""
    dim = x.shape[-1]
    weighted = torch.cat([x * size, size], dim=-1)  # carry sum(s x) and sum(s) together
    a, b = weighted[:, ::2], weighted[:, 1::2]
    keep = a.gather(1, kept.unsqueeze(-1).expand(-1, -1, dim + 1))
    move = a.gather(1, merged.unsqueeze(-1).expand(-1, -1, dim + 1))
    b = b.scatter_add(1, partner.unsqueeze(-1).expand(-1, -1, dim + 1), move)
    out = torch.cat([keep, b], dim=1)
    new_size = out[..., dim:]
    return out[..., :dim] / new_size, new_size


def _attention(block: Block, x: torch.Tensor, size: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """The block's attention on normalised tokens ``x`` (B, N, D), proportional to ``size``
    when tokens have been merged; returns (output, keys averaged over heads (B, N, d)).
    Without ``size`` it is :class:`vitnas.models.vit.Attention`'s computation exactly."""
    attn = block.attn
    batch, tokens, _ = x.shape
    qkv = attn.qkv(x).reshape(batch, tokens, 3, attn.num_heads, attn.head_dim)
    q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (B, heads, N, head_dim)
    scores = (q * attn.scale) @ k.transpose(-2, -1)  # (B, heads, N, N)
    if size is not None:
        scores = scores + size.log().transpose(1, 2).unsqueeze(1)  # + log s over the keys
    out = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(batch, tokens, -1)
    return attn.proj(out), k.mean(dim=1)


def tome_features(model: VisionTransformer, x: torch.Tensor, r: int,
                  length: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Normalised tokens (B, N', D) and their sizes (B, N', 1) (None when nothing merged) of
    ``model`` with ToMe at ``r`` tokens per block; ``length`` a ReViT length index (None: the
    native length, the plain ViT)."""
    if r < 0:
        raise ConfigError(f"ToMe merges r >= 0 tokens per block, got {r}")
    if length is None:
        tokens = model.patch_embed(x)  # (B, N, D)
        pos = model.pos_embed
    else:
        index = length % model.num_lengths
        x = model.prepare(x, index)
        pos, kernel = model.resized_weights(index)
        proj = model.patch_embed.proj
        tokens = (proj(x) if kernel is None else
                  F.conv2d(x, kernel, proj.bias, stride=model.lengths[index].patch_size))
        tokens = tokens.flatten(2).transpose(1, 2)  # (B, g*g, D)
    prefix = 0
    if model.cls_token is not None:
        tokens = torch.cat([model.cls_token.expand(tokens.shape[0], -1, -1), tokens], dim=1)
        prefix = 1
    x = tokens + pos
    size = None
    for block in model.blocks:
        out, keys = _attention(block, block.norm1(x), size)
        x = x + out
        step = min(r, (x.shape[1] - prefix) // 2)
        if step > 0:
            if size is None:
                size = torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
            kept, merged, partner = bipartite_soft_matching(keys[:, prefix:], step)
            patches, patch_size = merge_tokens(x[:, prefix:], size[:, prefix:], kept, merged,
                                               partner)
            x = torch.cat([x[:, :prefix], patches], dim=1)
            size = torch.cat([size[:, :prefix], patch_size], dim=1)
        x = x + block.mlp(block.norm2(x))
    return model.norm(x), size


def tome_forward(model: VisionTransformer, x: torch.Tensor, r: int,
                 length: int | None = None) -> torch.Tensor:
    """Logits (B, classes) of ``model`` with ToMe at ``r`` tokens per block."""
    features, size = tome_features(model, x, r, length)
    if model.pool == "cls" or size is None:
        return model.forward_head(features)
    prefix = 0 if model.cls_token is None else 1
    patches, weights = features[:, prefix:], size[:, prefix:]
    return model.head((patches * weights).sum(dim=1) / weights.sum(dim=1))


@torch.no_grad()
def tome_logits(model: VisionTransformer, images: torch.Tensor, r: int, length: int | None = None,
                batch_size: int = 256) -> torch.Tensor:
    """Logits (N, classes), float on the CPU, of :func:`tome_forward` over ``images`` in
    batches: a merged pass cached like :func:`vitnas.revit.training.logits_by_length`."""
    return torch.cat([tome_forward(model, images[i:i + batch_size], r, length).float().cpu()
                      for i in range(0, len(images), batch_size)])


def token_schedule(patches: int, prefix: int, depth: int, r: int) -> list[int]:
    """Tokens entering each block and leaving the last one (depth + 1 counts, prefix
    included) under a constant ``r``."""
    counts, tokens = [patches + prefix], patches
    for _ in range(depth):
        tokens -= min(r, tokens // 2)
        counts.append(tokens + prefix)
    return counts


def _patches(model: VisionTransformer, length: int | None) -> int:
    """Patch tokens (class token excluded) at ReViT ``length`` (None: the native length)."""
    grid = (model.patch_embed.grid if length is None
            else model.lengths[length % model.num_lengths].grid)
    return grid * grid


def largest_rate(model: VisionTransformer, length: int | None = None) -> int:
    """The largest ToMe rate that means anything at ``length``: a block merges at most half of
    its patch tokens, so a larger ``r`` is clipped to this one in the first block and runs the
    same computation."""
    return _patches(model, length) // 2


def check_rates(model: VisionTransformer, rates: Sequence[int], length: int | None = None,
                what: str = "ToMe rate") -> None:
    """Refuse a rate below 1 or above :func:`largest_rate` at ``length``: a report would name
    a rate that never ran (r=1000 on 64 tokens runs r=32)."""
    limit = largest_rate(model, length)
    for rate in rates:
        if rate < 1:
            raise ConfigError(f"{what} r={rate}: ToMe merges r >= 1 tokens per block")
        if rate > limit:
            usable = f"the largest usable rate there is {limit}" if limit else "none is usable"
            raise ConfigError(f"{what} r={rate} cannot be applied at {_patches(model, length)} "
                              f"tokens: ToMe merges at most half of them per block, so "
                              f"{usable}")


def tome_flops(model: VisionTransformer, r: int, length: int | None = None) -> int:
    """FLOPs per image of :func:`tome_forward`: the patch embedding, per block qkv, attention
    and projection at the tokens entering it, the matching's similarity matmul (A x B keys of
    head width) and the MLP at the tokens leaving it, and the head."""
    if length is None:
        grid, patch = model.patch_embed.grid, model.patch_embed.proj.kernel_size[0]
    else:
        chosen = model.lengths[length % model.num_lengths]
        grid, patch = chosen.grid, chosen.patch_size
    prefix = 0 if model.cls_token is None else 1
    dim, in_chans = model.embed_dim, model.patch_embed.proj.in_channels
    counts = token_schedule(grid * grid, prefix, len(model.blocks), r)
    total = 2 * grid * grid * dim * in_chans * patch * patch
    for block, before, after in zip(model.blocks, counts, counts[1:]):
        attn = block.attn
        inner = attn.num_heads * attn.head_dim
        total += linear_cost(before, dim, 3 * inner)[1] + linear_cost(before, inner, dim)[1]
        total += attention_matmul_flops(before, attn.num_heads, attn.head_dim)
        if after < before:  # a merge happened: the similarity of ceil(n/2) x floor(n/2) keys
            mergeable = before - prefix
            total += 2 * ((mergeable + 1) // 2) * (mergeable // 2) * attn.head_dim
        hidden = block.mlp.fc1.out_features
        total += linear_cost(after, dim, hidden)[1] + linear_cost(after, hidden, dim)[1]
    return total + 2 * dim * model.head.out_features


__all__ = ["bipartite_soft_matching", "check_rates", "largest_rate", "merge_tokens",
           "token_schedule", "tome_features", "tome_flops", "tome_forward", "tome_logits"]
