"""AutoProxA: the zero-cost proxy Auto-Prox (Wei et al., AAAI 2024) discovered for AutoFormer.

Auto-Prox evolves proxies as small expression trees over network statistics. Its discovered
proxy for AutoFormer on CIFAR-100 with distillation is the genotype in its repository
(lliai/Auto-Prox-AAAI24, ``configs/auto/rank/autoformer/autoformer_tree_c100_kd.yaml``)::

    input_geno: ['t2', 't4g'];  op_geno: [[16, 8], [12, 14], 0]
    INPUT:(t2, t4g) TREE:(min_max_normalize|frobenius_norm|sigmoid|element_wise_sqrt)
    BINARY:(element_wise_sum)

A tree genotype is read (Auto-Prox's tree structure, as in its authors' public LPZero code)
as: each input is a list of per-layer tensors; input 1 gets its two unary ops, input 2 its two;
layer i of one list is paired with layer i of the other (``zip``: the longer list is cut), each
side reduced to a scalar by its mean, combined by the binary op; the score is the mean over the
pairs. Here, per pair i::

    a_i = || minmax(W_i) ||_F                 minmax(x) = (x - min x) / (max x - min x)
    b_i = mean( sqrt( sigmoid(G_i) ) )
    AutoProxA = mean_i (a_i + b_i)

The config names the ops but the repository does not hold the code that defines its ViT
statistics. ``t2`` is read as the weight of every Linear / Conv layer, in module order (the
authors' ViT port of Auto-Prox in PicoNAS defines t2 so); ``t4g`` as dL/d(output) of every
normalisation layer (their NB201 definition hooks BatchNorm; a ViT's are its LayerNorms), under
the cross-entropy on the batch. Options give the alternatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vitnas.errors import ConfigError
from vitnas.proxies.base import BACKWARD, PROXIES, Proxy, ProxyContext
from vitnas.proxies.zero_cost import weight_layers

NORM_TYPES = (nn.LayerNorm, _BatchNorm, nn.GroupNorm)
T2_CHOICES = ("weight", "input")
T4G_CHOICES = ("norm", "layer")
PAIRINGS = ("zip", "separate")


def min_max_normalize(x: torch.Tensor) -> torch.Tensor:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else torch.zeros_like(x)


def weight_branch(tensor: torch.Tensor) -> float:
    """t2's ops: min-max normalise, Frobenius norm (already a scalar)."""
    return float(torch.linalg.vector_norm(min_max_normalize(tensor.detach().double())))


def gradient_branch(tensor: torch.Tensor) -> float:
    """t4g's ops: element-wise sigmoid then square root, reduced by the mean."""
    return float(torch.sigmoid(tensor.detach().double()).sqrt().mean())


def autoprox_score(t2: list[torch.Tensor], t4g: list[torch.Tensor], pairing: str = "zip") -> float:
    """Combine the two per-layer lists as Auto-Prox's tree does (``separate``: each list
    averaged over all its layers, then summed, i.e. no truncation to the shorter list)."""
    a = [weight_branch(t) for t in t2]
    b = [gradient_branch(t) for t in t4g]
    if pairing == "zip":
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    if not a or not b:
        return float("nan")
    return sum(a) / len(a) + sum(b) / len(b)


@dataclass(frozen=True)
class AutoProxConfig:
    """``t2``: weight (layer weights) or input (each layer's input activation, Auto-Prox's NB201
    meaning); ``t4g``: norm (gradient at every norm layer's output) or layer (at every Linear /
    Conv output); ``pairing``: zip (the reference interpreter) or separate."""

    t2: str = "weight"
    t4g: str = "norm"
    pairing: str = "zip"

    def check(self) -> None:
        for key, value, choices in (("t2", self.t2, T2_CHOICES), ("t4g", self.t4g, T4G_CHOICES),
                                    ("pairing", self.pairing, PAIRINGS)):
            if value not in choices:
                raise ConfigError(f"autoprox {key} must be one of {', '.join(choices)}")


@PROXIES.register("autoprox")
class AutoProxA(Proxy):
    name = "autoprox"
    direction = 1
    cost = BACKWARD
    reference = (
        "Wei et al., Auto-Prox: Training-Free Vision Transformer Architecture Search via "
        "Automatic Proxy Discovery, AAAI 2024 (genotype autoformer_tree_c100_kd)"
    )
    Config = AutoProxConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        layers = weight_layers(model)
        grad_sites = ([m for m in model.modules() if isinstance(m, NORM_TYPES)]
                      if c.t4g == "norm" else layers)
        t2 = [layer.weight for layer in layers] if c.t2 == "weight" else []
        grads: list[torch.Tensor] = []
        outputs: list[torch.Tensor] = []

        def keep_input(module, args):
            t2.append(args[0].detach())

        def keep_output(module, args, output):
            if output.requires_grad:
                outputs.append(output)

        handles = [m.register_forward_hook(keep_output) for m in grad_sites]
        if c.t2 == "input":
            handles += [layer.register_forward_pre_hook(keep_input) for layer in layers]
        device = next(model.parameters()).device
        try:
            loss = F.cross_entropy(model(ctx.inputs.to(device)), ctx.labels.to(device))
        finally:
            for handle in handles:
                handle.remove()
        if outputs:
            grads = list(torch.autograd.grad(loss, outputs, allow_unused=True))
            grads = [torch.zeros_like(o) if g is None else g for o, g in zip(outputs, grads)]
        if not t2 or not grads:
            ctx.warn("autoprox: the model has no weight layer or no gradient site")
        return autoprox_score(t2, grads, c.pairing)
