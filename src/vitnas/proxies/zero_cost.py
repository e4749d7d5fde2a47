"""The classic zero-cost proxies, following their papers and NASLib's conventions.

Registered names: ``synflow``, ``snip``, ``grasp``, ``fisher``, ``grad_norm``, ``jacov``,
``nwot``, ``zen``, ``l2_norm``, ``params``, ``flops``. Every one is "higher raw is better"
(``direction = +1``) in the convention NASLib uses for its zero-cost benchmark
(``naslib_zc_subset725.json``), which ``benchmarks/naslib_crosscheck.py`` compares against.

Shared conventions (NASLib's, from Abdelfattah et al.'s ``zero-cost-nas``):

- "Layers" are every ``Conv1d/2d/3d`` and ``Linear`` module, so on a ViT: the patch embedding,
  qkv, attention projection, fc1, fc2 and the head; on NAS-Bench-201: stem, cell and reduction
  convolutions and the classifier. Only their ``weight`` enters the per-weight sums; biases,
  norm layers, position embeddings and class tokens do not.
- The model is used as given: in train mode (``score_model`` passes one), so BatchNorm uses
  the batch statistics. The loss is cross-entropy of the logits against ``ctx.labels``.
- A proxy may change the model it receives (weights, dtype, forwards): the scoring functions
  hand each proxy a private deep copy. Call a proxy directly on a model you still need only
  through ``score_model``, or on a copy.
- A non-finite value (a NaN from a degenerate correlation matrix, ``-inf`` from a singular
  NASWOT kernel) is returned as is; the base class records a warning. NASLib replaced such
  values by ``-1e8``; the cross-check benchmark ranks them last the same way.

Activation-hook proxies (``fisher``, ``nwot``) find activations through ``nn.ReLU`` /
``nn.GELU`` modules and the layer roles of ``vitnas.models.tags``; an activation written as a
function call inside ``forward`` is invisible to them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vitnas.errors import ConfigError
from vitnas.flops import count_params, measured_flops
from vitnas.models import tags
from vitnas.proxies.base import BACKWARD, FORWARD, FREE, PROXIES, Proxy, ProxyContext, ceiling

LAYER_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
ACTIVATION_TYPES = (nn.ReLU, nn.GELU)


# --- helpers ----------------------------------------------------------------------------------
def weight_layers(model: nn.Module) -> list[nn.Module]:
    """Every convolution and Linear layer with a weight, in module order (NASLib's selection)."""
    return [
        m for m in model.modules()
        if isinstance(m, LAYER_TYPES) and isinstance(getattr(m, "weight", None), torch.Tensor)
    ]


def _device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _batch(model: nn.Module, ctx: ProxyContext) -> tuple[torch.Tensor, torch.Tensor]:
    device = _device(model)
    return ctx.inputs.to(device), ctx.labels.to(device)


def _loss(model: nn.Module, ctx: ProxyContext, temperature: float = 1.0) -> torch.Tensor:
    inputs, labels = _batch(model, ctx)
    return F.cross_entropy(model(inputs) / temperature, labels)


def _layer_grads(
    model: nn.Module, ctx: ProxyContext
) -> tuple[list[nn.Module], list[torch.Tensor | None]]:
    """The layers and dL/dW of their weights (None where a weight does not reach the loss)."""
    layers = weight_layers(model)
    weights = [layer.weight for layer in layers]
    for w in weights:
        w.requires_grad_(True)
    loss = _loss(model, ctx)
    if not loss.requires_grad:  # nothing in the graph depends on a parameter
        return layers, [None] * len(layers)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return layers, list(grads)


def _total(values: Iterator[torch.Tensor]) -> float:
    """Sum of scalar tensors in float64 (0.0 for an empty sequence)."""
    total = torch.zeros((), dtype=torch.float64)
    for value in values:
        total = total + value.detach().to("cpu", torch.float64)
    return float(total)


@contextmanager
def _hooks(handles: list) -> Iterator[list]:
    try:
        yield handles
    finally:
        for handle in handles:
            handle.remove()


def _bypass_batchnorm(model: nn.Module) -> int:
    """Make every BatchNorm an identity (NASLib's ``bn=False`` copy); returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.forward = _identity  # instance attribute shadows the class method
            count += 1
    return count


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def linearise(model: nn.Module) -> nn.Module:
    """SynFlow's trick, shared with DSS: the model in float64 with every floating-point tensor
    of its state replaced by its absolute value (in place; proxies own their model copy)."""
    model.double()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.abs_()
    return model


# --- synflow ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynflowConfig:
    """``bn=False`` (NASLib's ``synflow``) turns BatchNorm into the identity; ``bn=True`` is
    NASLib's ``synflow_bn``. ``log=True`` returns log(score), as NASLib's ZeroCost predictor
    stores it (its benchmark file holds the log; ranks are the same)."""

    bn: bool = False
    log: bool = False


@PROXIES.register("synflow")
class Synflow(Proxy):
    """SynFlow (Tanaka et al., NeurIPS 2020), data-free.

    Every floating-point tensor of the state dict is replaced by its absolute value and the model
    is run in float64 (NASLib; avoids overflow) on one all-ones input of the batch's image shape.
    With R the sum of the outputs, the score is ``sum over layer weights |theta * dR/dtheta|``.
    BatchNorm is bypassed by default as in NASLib. LayerNorm (ViTs) is kept: it is part of every
    block and has no running statistics to bypass; note that it breaks SynFlow's all-positive
    signal assumption (centring can make activations negative), as in other ViT uses of SynFlow.
    """

    name = "synflow"
    direction = 1
    cost = BACKWARD
    reference = (
        "Tanaka et al., Pruning neural networks without any data by iteratively conserving "
        "synaptic flow, NeurIPS 2020"
    )
    Config = SynflowConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        linearise(model)
        if not self.config.bn:
            _bypass_batchnorm(model)
        layers = weight_layers(model)
        for layer in layers:
            layer.weight.requires_grad_(True)
        ones = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64, device=_device(model))
        output = model(ones).sum()
        if not output.requires_grad:
            return 0.0 if not self.config.log else -math.inf
        grads = torch.autograd.grad(output, [layer.weight for layer in layers], allow_unused=True)
        score = _total(
            (layer.weight * g).abs().sum() for layer, g in zip(layers, grads) if g is not None
        )
        if self.config.log:
            if score > 0:
                return math.log(score)
            ctx.warn(f"synflow: score {score} has no logarithm")
            return -math.inf if score == 0 else math.nan
        return score


# --- snip -------------------------------------------------------------------------------------
@PROXIES.register("snip")
class Snip(Proxy):
    """SNIP connection sensitivity (Lee et al., ICLR 2019): ``sum |dL/dW * W|`` over every layer
    weight, L the cross-entropy on the batch. This equals NASLib's ``|dL/d mask|`` at mask = 1."""

    name = "snip"
    direction = 1
    cost = BACKWARD
    reference = (
        "Lee et al., SNIP: Single-shot network pruning based on connection sensitivity, ICLR 2019"
    )

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        layers, grads = _layer_grads(model, ctx)
        return _total(
            (g * layer.weight).abs().sum() for layer, g in zip(layers, grads) if g is not None
        )


# --- grad_norm --------------------------------------------------------------------------------
@PROXIES.register("grad_norm")
class GradNorm(Proxy):
    """Gradient norm (Abdelfattah et al., ICLR 2021, as in NASLib): ``sum over layers of
    ||dL/dW||_2`` (the Frobenius norm of each weight's gradient, summed, not squared)."""

    name = "grad_norm"
    direction = 1
    cost = BACKWARD
    reference = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        _, grads = _layer_grads(model, ctx)
        return _total(g.norm() for g in grads if g is not None)


# --- grasp ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GraspConfig:
    """``temperature`` divides the logits before the loss (NASLib: 1)."""

    temperature: float = ceiling(1.0, 1e6)

    def check(self) -> None:
        if not self.temperature > 0:
            raise ConfigError(f"grasp: temperature must be > 0, got {self.temperature}")


@PROXIES.register("grasp")
class Grasp(Proxy):
    """GraSP gradient signal preservation (Wang et al., ICLR 2020), NASLib's form:
    ``sum over layer weights of -theta * (H g)``, g = dL/dtheta, H the Hessian of L, on one batch.

    H g is a Hessian-vector product by double backward: z = <stop_grad(g), dL/dtheta> with the
    graph kept, then dz/dtheta. NASLib runs two forward passes on the same batch for g and for
    the graph; one pass gives the same values. The sign is NASLib's (they negate GraSP's pruning
    score because accuracy correlates with the negated one): higher is better.
    """

    name = "grasp"
    direction = 1
    cost = BACKWARD
    reference = (
        "Wang et al., Picking winning tickets before training by preserving gradient flow, "
        "ICLR 2020"
    )
    Config = GraspConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        layers = weight_layers(model)
        weights = [layer.weight for layer in layers]
        for w in weights:
            w.requires_grad_(True)
        loss = _loss(model, ctx, self.config.temperature)
        if not loss.requires_grad:
            return 0.0
        grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
        z = sum(
            ((g.detach() * g).sum() for g in grads if g is not None),
            torch.zeros((), device=loss.device),
        )
        if not z.requires_grad:  # every gradient is constant in the weights
            return 0.0
        hg = torch.autograd.grad(z, weights, allow_unused=True)
        return _total((-w.detach() * h).sum() for w, h in zip(weights, hg) if h is not None)


# --- fisher -----------------------------------------------------------------------------------
FISHER_SITES = ("auto", "layers", "mlp")


@dataclass(frozen=True)
class FisherConfig:
    """``site``: which activations are the "channels" (see the class docstring)."""

    site: str = "auto"

    def check(self) -> None:
        if self.site not in FISHER_SITES:
            raise ConfigError(
                f"fisher: site must be one of {', '.join(FISHER_SITES)}, not {self.site!r}"
            )


def _channel_saliency(act: torch.Tensor, grad: torch.Tensor, channel_dim: int) -> torch.Tensor:
    """Theis et al.'s per-channel Fisher estimate 0.5 * mean_n (sum_positions a * dL/da)^2."""
    prod = (act * grad).to(torch.float64).movedim(channel_dim, -1)
    per_channel = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(dim=1)  # (N, channels)
    return per_channel.pow(2).mean(dim=0).mul(0.5)


@PROXIES.register("fisher")
class Fisher(Proxy):
    """Fisher pruning saliency (Theis et al. 2018; as a NAS proxy, Turner et al. ICLR 2020 and
    Abdelfattah et al. 2021): per activation channel k, ``0.5 * mean_n (sum over positions of
    a_nk * dL/da_nk)^2``, summed over channels, L the cross-entropy on the batch.

    Where the activations are taken (``site``):

    - ``layers`` (NASLib, used for CNNs): the output of every Conv/Linear layer (for NB201's
      ReLU-Conv-BN ops that is the conv output before BatchNorm). As in NASLib, each channel's
      value is counted once per weight of its filter (NASLib broadcasts it over
      ``weight.shape[1:]`` before summing), i.e. weighted by the filter's fan-in.
      Channels are dim 1 of a conv output and the last dim of a Linear output (NASLib sums a
      3-D Linear output over the channel dim instead, which is wrong for token sequences).
    - ``mlp`` (used for ViTs): the MLP hidden activations, i.e. the GELU output in every ``Mlp``
      (the input of each layer tagged ``mlp_fc2``), channel = hidden unit, summed over tokens;
      the plain per-channel sum of Theis et al. (no fan-in weighting). These are the prunable
      channels of a transformer block, the analogue of a CNN's feature maps.
    - ``auto`` (default): ``mlp`` when the model has ``mlp_fc2`` layers, else ``layers``.
    """

    name = "fisher"
    direction = 1
    cost = BACKWARD
    reference = (
        "Theis et al., Faster gaze prediction with dense networks and Fisher pruning, 2018; "
        "Turner et al., BlockSwap, ICLR 2020"
    )
    Config = FisherConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        site = self.config.site
        mlp_layers = [m for _, m in tags.tagged_modules(model, tags.MLP_FC2)]
        if site == "auto":
            site = "mlp" if mlp_layers else "layers"
        contributions: list[torch.Tensor] = []

        def record(act: torch.Tensor, channel_dim: int, per_channel_weight: int) -> None:
            if not act.requires_grad:
                return
            saved = act.detach()

            def on_grad(grad: torch.Tensor) -> None:
                saliency = _channel_saliency(saved, grad.detach(), channel_dim)
                contributions.append(saliency.sum() * per_channel_weight)

            act.register_hook(on_grad)

        handles = []
        if site == "layers":
            for layer in weight_layers(model):
                fan_in = math.prod(layer.weight.shape[1:])
                channel_dim = -1 if isinstance(layer, nn.Linear) else 1

                def hook(module, args, output, channel_dim=channel_dim, fan_in=fan_in):
                    record(output, channel_dim, fan_in)

                handles.append(layer.register_forward_hook(hook))
        else:
            if not mlp_layers:
                ctx.warn("fisher: site=mlp but the model has no layer tagged mlp_fc2")
                return math.nan
            for layer in mlp_layers:
                handles.append(
                    layer.register_forward_pre_hook(lambda module, args: record(args[0], -1, 1))
                )
        with _hooks(handles):
            loss = _loss(model, ctx)
            if loss.requires_grad:
                loss.backward()
        return _total(iter(contributions))


# --- jacov ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class JacovConfig:
    """``k`` regularises the eigenvalues (NASLib / Mellor et al.: 1e-5)."""

    k: float = ceiling(1e-5, 1e6)

    def check(self) -> None:
        if not self.k > 0:
            raise ConfigError(f"jacov: k must be > 0, got {self.k}")


@PROXIES.register("jacov")
class Jacov(Proxy):
    """Jacobian covariance (Mellor et al., NAS without training, arXiv v1 2020; NASLib
    ``jacob_cov``): J = d(sum of outputs)/d(inputs), one row per sample (one backward of the
    batch, so BatchNorm's batch coupling is included as in NASLib); C = corrcoef of the rows;
    score = ``-sum_i [log(v_i + k) + 1/(v_i + k)]`` over the eigenvalues v of C. The maximum,
    -N for a batch of N, is reached when the rows are uncorrelated."""

    name = "jacov"
    min_batch = 2  # a statistic across samples
    direction = 1
    cost = BACKWARD
    reference = "Mellor et al., Neural Architecture Search without Training, arXiv:2006.04647v1"
    Config = JacovConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        inputs, _ = _batch(model, ctx)
        x = inputs.detach().clone().requires_grad_(True)
        output = model(x)
        if not output.requires_grad:
            ctx.warn("jacov: the output does not depend on the input")
            return math.nan
        (jacobian,) = torch.autograd.grad(output.sum(), x)
        rows = jacobian.reshape(jacobian.shape[0], -1).to("cpu", torch.float64)
        corr = torch.corrcoef(rows)
        if not torch.isfinite(corr).all():
            ctx.warn("jacov: a Jacobian row is constant, its correlation is undefined")
            return math.nan
        eig = torch.linalg.eigvalsh((corr + corr.T) / 2)
        k = self.config.k
        return float(-(torch.log(eig + k) + 1.0 / (eig + k)).sum())


# --- nwot -------------------------------------------------------------------------------------
@PROXIES.register("nwot")
class Nwot(Proxy):
    """NASWOT (Mellor et al., ICML 2021): for every ReLU and GELU module, the binary code
    c = [pre-activation > 0] of each sample (all units of the layer, flattened); the kernel
    K = sum over layers of ``C C^T + (1 - C)(1 - C)^T`` (N x N: units minus Hamming distance);
    score = ``log|det K|`` (NASLib uses slogdet and ignores the sign; K is PSD anyway).

    CNNs: ReLU inputs (NB201: the ReLU of every ReLU-Conv-BN and the last one). ViTs: the sign
    of the GELU pre-activation in every MLP (GELU(x) > 0 exactly when x > 0). A singular K
    (e.g. two identical samples or a dead network) gives ``-inf``.
    """

    name = "nwot"
    min_batch = 2  # a statistic across samples
    direction = 1
    cost = FORWARD
    reference = "Mellor et al., Neural Architecture Search without Training, ICML 2021"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        inputs, _ = _batch(model, ctx)
        n = inputs.shape[0]
        kernel = torch.zeros((n, n), dtype=torch.float64)

        def hook(module, args):
            codes = (args[0].detach().reshape(n, -1) > 0).to(torch.float64).cpu()
            kernel.add_(codes @ codes.T).add_((1.0 - codes) @ (1.0 - codes).T)

        acts = [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]
        if not acts:
            ctx.warn("nwot: the model has no nn.ReLU or nn.GELU module")
            return math.nan
        with _hooks([m.register_forward_pre_hook(hook) for m in acts]), torch.no_grad():
            model(inputs)
        return float(torch.linalg.slogdet(kernel).logabsdet)


# --- zen --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ZenConfig:
    """``mixup_gamma``: size of the input perturbation; ``gaussian_init``: re-initialise as the
    official code does (conv/linear weights N(0, 1), biases 0, BatchNorm/GroupNorm 1 and 0);
    ``repeat``: independent draws averaged (each with fresh Gaussian weights and inputs)."""

    mixup_gamma: float = ceiling(1e-2, 1e6)
    gaussian_init: bool = True
    repeat: int = ceiling(1, 1000)

    def check(self) -> None:
        if not self.mixup_gamma > 0:
            raise ConfigError(f"zen: mixup_gamma must be > 0, got {self.mixup_gamma}")
        if self.repeat < 1:
            raise ConfigError(f"zen: repeat must be >= 1, got {self.repeat}")


def _gaussian_init(model: nn.Module) -> None:
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LAYER_TYPES):
                nn.init.normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (_BatchNorm, nn.GroupNorm)) and m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


@PROXIES.register("zen")
class Zen(Proxy):
    """Zen-score (Lin et al., ICCV 2021), following the official ``compute_zen_score``:
    x, eps ~ N(0, 1) of the batch's shape; f = pre-GAP features (``model.forward_features``);
    score = ``log mean_n sum |f(x) - f(x + gamma * eps)|`` plus, for every BatchNorm2d,
    ``log sqrt(mean(running_var))`` read after the two forward passes in train mode (the
    official code's reading of the BN "scaling factor"; momentum and initial running_var are
    PyTorch's defaults, as there).

    ViTs have no BatchNorm, only LayerNorm, which re-normalises every token: the BN term is
    absent (0) and the score is the expressivity term alone. Data-free: only the batch's shape
    is used. Without ``forward_features`` the full output is used (with a warning); a
    hierarchical model's ``forward_features`` gives one map per stage, and the last is used.
    """

    name = "zen"
    direction = 1
    cost = FORWARD
    reference = (
        "Lin et al., Zen-NAS: A Zero-Shot NAS for High-Performance Image Recognition, ICCV 2021"
    )
    Config = ZenConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        features = getattr(model, "forward_features", None)
        if features is None:
            ctx.warn("zen: model has no forward_features; using the full output")
            features = model
        device = _device(model)
        shape = ctx.inputs.shape
        scores = []
        with torch.no_grad():
            for _ in range(self.config.repeat):
                if self.config.gaussian_init:
                    _gaussian_init(model)
                x = torch.randn(shape, device=device)
                eps = torch.randn(shape, device=device)
                out = features(x)
                mixed = features(x + self.config.mixup_gamma * eps)
                if isinstance(out, (list, tuple)):  # multi-scale maps: the last is pre-GAP
                    out, mixed = out[-1], mixed[-1]
                diff = (out - mixed).abs().to(torch.float64).reshape(shape[0], -1).sum(dim=1).mean()
                bn_term = 0.0
                for m in model.modules():
                    if isinstance(m, nn.BatchNorm2d) and m.running_var is not None:
                        bn_term += 0.5 * math.log(float(m.running_var.to(torch.float64).mean()))
                scores.append(math.log(float(diff)) + bn_term if diff > 0 else -math.inf)
        return sum(scores) / len(scores)


# --- l2_norm ----------------------------------------------------------------------------------
@PROXIES.register("l2_norm")
class L2Norm(Proxy):
    """Sum over layers of the L2 (Frobenius) norm of each weight at initialisation (NASLib)."""

    name = "l2_norm"
    direction = 1
    cost = FREE
    reference = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021 (NASLib)"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        with torch.no_grad():
            return _total(layer.weight.norm() for layer in weight_layers(model))


# --- params / flops ---------------------------------------------------------------------------
@PROXIES.register("params")
class Params(Proxy):
    """Parameter count: the space's analytic count when ``ctx.space`` and ``ctx.arch`` are given,
    else every parameter of the model."""

    name = "params"
    direction = 1
    cost = FREE
    baseline = True
    reference = "baseline (e.g. Abdelfattah et al., ICLR 2021)"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        if ctx.space is not None and ctx.arch is not None:
            return float(ctx.space.params(ctx.arch))
        return float(count_params(model))


@PROXIES.register("flops")
class Flops(Proxy):
    """FLOPs per image (2 x MACs, ``vitnas.flops``): the space's analytic count when
    ``ctx.space`` and ``ctx.arch`` are given, else measured on one image of the batch."""

    name = "flops"
    direction = 1
    cost = FREE
    baseline = True
    reference = "baseline (e.g. Abdelfattah et al., ICLR 2021)"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        if ctx.space is not None and ctx.arch is not None:
            return float(ctx.space.flops(ctx.arch))
        inputs, _ = _batch(model, ctx)
        return float(measured_flops(model, inputs[:1]))
