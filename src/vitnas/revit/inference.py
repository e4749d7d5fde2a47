"""Adaptive inference on one ReViT: assigner-driven buckets, the DVT-style cascade, and the
confidence-skip rule.

- :func:`bucketed_predict`: the TLA assigns a length to every image of the batch, images are
  grouped by length, one ReViT pass runs per group, and the logits go back to the original
  order. Every image in a group has the same token count, so no padding is wasted. A router
  that reads the shortest pass (``features='coarse'``) runs that pass first.
- :func:`cascade_predict`: DVT's exit rule on the same shared-weight ReViT: run the shortest
  length on everything, keep the images whose top softmax probability reaches the threshold,
  send the rest to the next length; the longest length takes whatever remains. It needs no
  router, recovers from a wrong early guess, but pays for every length an image passes through.
  Per-exit thresholds and a skip straight to the longest length make it the fair cascade.
- :func:`skip_predict`: the router's hand-written twin: the shortest pass's top softmax
  probability alone picks the length (keep, or one more pass at the length it points to).

All return per-image FLOPs, so costs are reported per image actually processed. Each takes
``merge`` (ToMe's r per length, :mod:`vitnas.revit.tome`): the passes then merge tokens, and the
FLOPs charged are the merged passes'.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vitnas.errors import ConfigError
from vitnas.revit.assigner import TokenLengthAssigner
from vitnas.revit.model import ResizableViT
from vitnas.revit.tome import tome_flops, tome_forward


@dataclass
class AdaptiveOutput:
    logits: torch.Tensor  # (B, C), in input order
    length: torch.Tensor  # (B,) the length index that produced each image's logits
    flops: torch.Tensor  # (B,) FLOPs spent on each image (assigner included)


def lengths_flops(model: ResizableViT, merge: Sequence[int] = ()) -> torch.Tensor:
    """FLOPs per image of one pass at each length (with ToMe at ``merge[k]`` where > 0)."""
    if merge and len(merge) != model.num_lengths:
        raise ConfigError(f"merge gives {len(merge)} rates, the ReViT has {model.num_lengths} "
                          f"lengths")
    return torch.tensor([tome_flops(model, merge[i], length=i) if merge and merge[i]
                         else model.flops_at(i) for i in range(model.num_lengths)],
                        dtype=torch.int64)


def length_pass(model: ResizableViT, x: torch.Tensor, index: int,
                merge: Sequence[int] = ()) -> torch.Tensor:
    """Logits of one pass at length ``index`` (merging ``merge[index]`` tokens per block)."""
    rate = merge[index] if merge else 0
    return model(x, length=index) if rate == 0 else tome_forward(model, x, rate, length=index)


@torch.no_grad()
def predict_at(model: ResizableViT, x: torch.Tensor, index: torch.Tensor | int,
               merge: Sequence[int] = ()) -> AdaptiveOutput:
    """Per-length dispatch: image b runs at length ``index[b]`` (an int: all at one length)."""
    batch = x.shape[0]
    if isinstance(index, int):
        index = torch.full((batch,), index, dtype=torch.int64)
    if index.shape != (batch,):
        raise ConfigError(f"need one length index per image, got shape {tuple(index.shape)}")
    costs = lengths_flops(model, merge)
    logits = None
    for value in torch.unique(index).tolist():
        members = torch.nonzero(index == value).flatten()
        out = length_pass(model, x[members.to(x.device)], int(value), merge)
        if logits is None:
            logits = out.new_empty(batch, out.shape[-1])
        logits[members.to(out.device)] = out
    return AdaptiveOutput(logits, index.clone(), costs[index])


@torch.no_grad()
def bucketed_predict(model: ResizableViT, assigner: TokenLengthAssigner, x: torch.Tensor,
                     threshold: float | None = None) -> AdaptiveOutput:
    """The TLA picks each image's length; one ReViT pass per length bucket. A ``coarse``
    assigner first runs the shortest length on the whole batch and reads its logits; images it
    keeps there reuse that pass, the others run once more at their length."""
    costs = lengths_flops(model)
    if not assigner.config.reads_coarse_pass:
        chosen = assigner.assign(x, threshold).cpu()
        out = predict_at(model, x, chosen)
    else:
        coarse = model(x, length=0)
        chosen = assigner.assign(coarse, threshold).cpu()
        out = AdaptiveOutput(coarse.clone(), chosen.clone(), costs[chosen])
        further = torch.nonzero(chosen > 0).flatten()
        if len(further):
            more = predict_at(model, x[further.to(x.device)], chosen[further])
            out.logits[further.to(out.logits.device)] = more.logits.to(out.logits.dtype)
    out.flops = assigner.spent(costs, chosen)
    return out


@torch.no_grad()
def cascade_predict(model: ResizableViT, x: torch.Tensor, thresholds: float | Sequence[float],
                    skips: Sequence[float] | None = None, merge: Sequence[int] = ()
                    ) -> AdaptiveOutput:
    """Confidence cascade: exit at length k when max softmax >= thresholds[k]; with ``skips``,
    an image whose max softmax at length k is below skips[k] goes straight to the longest
    length (the fair cascade of :class:`vitnas.revit.peers.CascadeRule`)."""
    count = model.num_lengths
    if isinstance(thresholds, (int, float)):
        thresholds = [float(thresholds)] * (count - 1)
    if len(thresholds) < count - 1:
        raise ConfigError(f"a cascade over {count} lengths needs {count - 1} thresholds")
    skips = [0.0] * (count - 1) if skips is None else list(skips)
    if len(skips) < count - 1:
        raise ConfigError(f"a cascade over {count} lengths needs {count - 1} skip thresholds")
    costs = lengths_flops(model, merge)
    batch = x.shape[0]
    remaining = torch.arange(batch)
    jumped = torch.zeros(0, dtype=torch.int64)
    exit_at = torch.full((batch,), count - 1, dtype=torch.int64)
    spent = torch.zeros(batch, dtype=torch.int64)
    logits = None
    for index in range(count):
        if index == count - 1:
            remaining = torch.cat([remaining, jumped]).sort().values
        if len(remaining) == 0:
            continue
        out = length_pass(model, x[remaining.to(x.device)], index, merge).cpu()
        if logits is None:
            logits = out.new_empty(batch, out.shape[-1])
        spent[remaining] += costs[index]
        if index == count - 1:
            done = torch.ones(len(remaining), dtype=torch.bool)
            jump = torch.zeros(len(remaining), dtype=torch.bool)
        else:
            confidence = out.float().softmax(-1).amax(-1)
            done = confidence >= thresholds[index]
            jump = ~done & (confidence < skips[index])
        logits[remaining[done]] = out[done]
        exit_at[remaining[done]] = index
        jumped = torch.cat([jumped, remaining[jump]])
        remaining = remaining[~done & ~jump]
    return AdaptiveOutput(logits, exit_at, spent)


@torch.no_grad()
def skip_predict(model: ResizableViT, x: torch.Tensor, thresholds: Sequence[float],
                 merge: Sequence[int] = ()) -> AdaptiveOutput:
    """Confidence-skip (:class:`vitnas.revit.peers.SkipRule`): the shortest pass on the batch,
    then each image at the length its top softmax probability p_0 picks (p_0 >= thresholds[0]:
    keep; >= thresholds[1]: length 1; ...; else the longest), one pass per bucket."""
    count = model.num_lengths
    if len(thresholds) != count - 1:
        raise ConfigError(f"confidence-skip over {count} lengths needs {count - 1} thresholds")
    costs = lengths_flops(model, merge)
    coarse = length_pass(model, x, 0, merge)
    confidence = coarse.float().softmax(-1).amax(-1).cpu()
    bounds = torch.tensor(thresholds, dtype=confidence.dtype)
    chosen = (confidence.unsqueeze(0) < bounds.unsqueeze(1)).sum(0)
    out = AdaptiveOutput(coarse.clone(), chosen.clone(),
                         torch.where(chosen > 0, costs[chosen] + costs[0], costs[0]))
    further = torch.nonzero(chosen > 0).flatten()
    if len(further):
        more = predict_at(model, x[further.to(x.device)], chosen[further], merge)
        out.logits[further.to(out.logits.device)] = more.logits.to(out.logits.dtype)
    return out
