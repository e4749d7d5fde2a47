"""Shape baselines: counts of an architecture's shape that need no data and no weights.

On trained ViTs the best training-free proxies rank about as well as these counts do (issue
23): a proxy adds information only if it beats the best of them, not only #params. Each is a
registered proxy tagged ``baseline``, so every scoreboard, search and calibration can use it
like any other row. ``params`` and ``flops`` (``zero_cost.py``) are baselines too.

- ``depth``: blocks a sample passes through (``SearchSpace.shape``).
- ``width``: embedding width, summed over stages where it changes.
- ``logsize``: sum over Linear and Conv layers of log(#weights), which grows with depth
  (more layers) far faster than with width (a log per layer).
- ``depth>params``: depth first, #params breaking ties (lexicographic).
"""

from __future__ import annotations

import math

from torch import nn

from vitnas.proxies.base import FREE, PROXIES, Proxy, ProxyContext

# depth>params: depth x this + #params orders by depth, then #params (exact in a float64 for
# any depth below 9,000 and any count below 1e12)
_DEPTH_UNIT = 1e12


def architecture_shape(ctx: ProxyContext, proxy: str):
    ctx.require_architecture(proxy)
    return ctx.space.shape(ctx.arch)


class ShapeBaseline(Proxy):
    direction = 1
    cost = FREE
    baseline = True
    reference = "shape baseline (issue 23)"


@PROXIES.register("depth")
class Depth(ShapeBaseline):
    """Number of blocks (transformer blocks over all stages; NAS-Bench-201: convolutions on
    the cell's longest path)."""

    name = "depth"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return float(architecture_shape(ctx, self.name).depth)


@PROXIES.register("width")
class Width(ShapeBaseline):
    """Embedding width, summed over stages (NAS-Bench-201: the cell's convolution edges)."""

    name = "width"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return float(architecture_shape(ctx, self.name).width)


def log_size(model: nn.Module) -> float:
    """Sum over Linear and Conv layers of log(#weights) (biases and norms left out)."""
    return math.fsum(math.log(m.weight.numel()) for m in model.modules()
                     if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)) and m.weight.numel())


@PROXIES.register("logsize")
class LogSize(ShapeBaseline):
    """Sum over Linear and Conv layers of log(#weights): a data-free count that the best
    zero-cost ViT proxies track closely (tau 0.91 with L-SWAG on ViT-Bench-101)."""

    name = "logsize"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return log_size(model)


@PROXIES.register("depth>params")
class DepthThenParams(ShapeBaseline):
    """Depth first, #params breaking ties: the lexicographic order (a search ranks by it)."""

    name = "depth>params"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        depth = architecture_shape(ctx, self.name).depth
        return depth * _DEPTH_UNIT + float(ctx.space.params(ctx.arch))


SHAPE_BASELINES = ("params", "flops", "depth", "width", "logsize", "depth>params")


def is_baseline(spec: str) -> bool:
    """Whether a spec names a shape baseline (any options)."""
    name = spec.partition(":")[0]
    return name in PROXIES and getattr(PROXIES.get(name), "baseline", False)
