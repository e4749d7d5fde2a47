"""Adaptive inference on one ReViT: assigner-driven buckets, and the DVT-style cascade.

- :func:`bucketed_predict`: the TLA assigns a length to every image of the batch, images are
  grouped by length, one ReViT pass runs per group, and the logits go back to the original
  order. Every image in a group has the same token count, so no padding is wasted. A router
  that reads the shortest pass (``features='coarse'``) runs that pass first.
- :func:`cascade_predict`: DVT's exit rule on the same shared-weight ReViT: run the shortest
  length on everything, keep the images whose top softmax probability reaches the threshold,
  send the rest to the next length; the longest length takes whatever remains. It needs no
  router, recovers from a wrong early guess, but pays for every length an image passes through.

Both return per-image FLOPs, so costs are reported per image actually processed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from vitnas.errors import ConfigError
from vitnas.revit.assigner import TokenLengthAssigner
from vitnas.revit.model import ResizableViT


@dataclass
class AdaptiveOutput:
    logits: torch.Tensor  # (B, C), in input order
    length: torch.Tensor  # (B,) the length index that produced each image's logits
    flops: torch.Tensor  # (B,) FLOPs spent on each image (assigner included)


def lengths_flops(model: ResizableViT) -> torch.Tensor:
    return torch.tensor([model.flops_at(i) for i in range(model.num_lengths)], dtype=torch.int64)


@torch.no_grad()
def predict_at(model: ResizableViT, x: torch.Tensor, index: torch.Tensor | int) -> AdaptiveOutput:
    """Per-length dispatch: image b runs at length ``index[b]`` (an int: all at one length)."""
    batch = x.shape[0]
    if isinstance(index, int):
        index = torch.full((batch,), index, dtype=torch.int64)
    if index.shape != (batch,):
        raise ConfigError(f"need one length index per image, got shape {tuple(index.shape)}")
    costs = lengths_flops(model)
    logits = None
    for value in torch.unique(index).tolist():
        members = torch.nonzero(index == value).flatten()
        out = model(x[members.to(x.device)], length=int(value))
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
def cascade_predict(model: ResizableViT, x: torch.Tensor,
                    thresholds: float | Sequence[float]) -> AdaptiveOutput:
    """Confidence cascade: exit at length k when max softmax >= thresholds[k]."""
    count = model.num_lengths
    if isinstance(thresholds, (int, float)):
        thresholds = [float(thresholds)] * (count - 1)
    if len(thresholds) < count - 1:
        raise ConfigError(f"a cascade over {count} lengths needs {count - 1} thresholds")
    costs = lengths_flops(model)
    batch = x.shape[0]
    remaining = torch.arange(batch)
    exit_at = torch.full((batch,), count - 1, dtype=torch.int64)
    spent = torch.zeros(batch, dtype=torch.int64)
    logits = None
    for index in range(count):
        if len(remaining) == 0:
            break
        out = model(x[remaining.to(x.device)], length=index).cpu()
        if logits is None:
            logits = out.new_empty(batch, out.shape[-1])
        spent[remaining] += costs[index]
        if index == count - 1:
            done = torch.ones(len(remaining), dtype=torch.bool)
        else:
            done = out.float().softmax(-1).amax(-1) >= thresholds[index]
        logits[remaining[done]] = out[done]
        exit_at[remaining[done]] = index
        remaining = remaining[~done]
    return AdaptiveOutput(logits, exit_at, spent)
