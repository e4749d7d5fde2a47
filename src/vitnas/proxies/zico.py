"""ZiCo (Li, Yang, Wang & Marculescu, ICLR 2023): inverse coefficient of variation of gradients.

Networks whose gradients are large in mean and steady across batches train faster and
generalise better (the paper's argument). With g_k = dL_k/dtheta the gradient of the mean loss of
batch k = 1..K, per weight: mean |g| over batches and std g over batches (population std, ddof 0).
``ZiCo = sum over layers l of log( sum over theta in l of mean|g_theta| / std(g_theta) )``
(the paper's score; weights whose std is 0 are left out, and a layer whose sum is 0 adds nothing,
as in the authors' code). Layers are the role-tagged convolutions and Linear layers (weights only).

The statistic needs K >= 2 gradients. The proxy batch is split into ``batches`` contiguous
mini-batches (ZiCo's search uses 2 batches); a forward and backward pass per mini-batch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.errors import ConfigError
from vitnas.models import tags
from vitnas.proxies.base import BACKWARD, PROXIES, Proxy, ProxyContext, ceiling


@dataclass(frozen=True)
class ZiCoConfig:
    """``batches``: how many mini-batches (K) the proxy batch is split into; ZiCo needs K >= 2
    and each mini-batch at least one image. Splits are contiguous and as equal as possible."""

    batches: int = ceiling(2, 1000)

    def check(self) -> None:
        if self.batches < 2:
            raise ConfigError(f"zico: batches must be >= 2 (a std needs two), got {self.batches}")


def zico_of_gradients(per_layer: Sequence[torch.Tensor]) -> float:
    """ZiCo from gradients stacked per layer, each (K batches, weights)."""
    total = 0.0
    for grads in per_layer:
        grads = grads.detach().to(torch.float64).flatten(1)
        std = grads.std(dim=0, unbiased=False)
        mean_abs = grads.abs().mean(dim=0)
        varying = std > 0
        ratio_sum = float((mean_abs[varying] / std[varying]).sum())
        if ratio_sum > 0:
            total += math.log(ratio_sum)
    return total


@PROXIES.register("zico")
class ZiCo(Proxy):
    name = "zico"
    min_batch = 2  # a statistic across samples
    direction = 1
    cost = BACKWARD
    reference = (
        "Li, Yang, Wang & Marculescu, ZiCo: Zero-shot NAS via Inverse Coefficient of Variation "
        "on Gradients, ICLR 2023"
    )
    Config = ZiCoConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        k = self.config.batches
        if len(ctx.inputs) < k:
            raise ConfigError(
                f"zico: a batch of {len(ctx.inputs)} cannot be split into {k} mini-batches; "
                "use a larger batch or fewer batches"
            )
        weights = [
            weight for _, module in tags.tagged_modules(model)
            if isinstance(weight := getattr(module, "weight", None), torch.Tensor)
            and weight.dim() >= 2
        ]
        device = weights[0].device if weights else torch.device("cpu")
        per_batch: list[list[torch.Tensor]] = []
        for inputs, labels in zip(ctx.inputs.tensor_split(k), ctx.labels.tensor_split(k)):
            loss = F.cross_entropy(model(inputs.to(device)), labels.to(device))
            grads = torch.autograd.grad(loss, weights, allow_unused=True)
            per_batch.append([
                torch.zeros_like(w) if g is None else g.detach() for w, g in zip(weights, grads)
            ])
        per_layer = [torch.stack([grads[i] for grads in per_batch]) for i in range(len(weights))]
        return zico_of_gradients(per_layer)
