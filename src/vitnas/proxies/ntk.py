"""NTK metrics at initialisation (TE-NAS, NASI, KNAS, and the statistics Mok et al. revisit).

All share one kernel configuration (``NTKConfig``), so e.g. ``ntk_cond:scalar=loss,params=linear``
is addressable. Raw values follow each paper's convention; ``direction`` says which way is
better.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vitnas.proxies.base import FORWARD, PER_SAMPLE, PROXIES, Proxy, ProxyContext
from vitnas.proxies.kernel import DEFAULT_MAX_MEMORY, KernelSpec, empirical_ntk, spectrum


@dataclass(frozen=True)
class NTKConfig:
    scalar: str = "logits_sum"
    params: str = "all"
    method: str = "auto"
    max_memory: int = DEFAULT_MAX_MEMORY
    chunk: int = 0

    def kernel_spec(self) -> KernelSpec:
        return KernelSpec(self.scalar, self.params, self.method, self.max_memory, self.chunk)

    def check(self) -> None:
        self.kernel_spec().check()


def log_condition_number(theta: torch.Tensor, ctx: ProxyContext, label: str) -> float:
    """log(lambda_max / lambda_min); lambda_min is clamped at 1e-12 lambda_max (flagged)."""
    spec = spectrum(theta)
    if not spec.finite:
        ctx.warn(f"{label}: kernel has non-finite entries")
        return float("nan")
    if spec.clamped:
        ctx.warn(f"{label}: smallest eigenvalue ~0 clamped to 1e-12 * largest (singular kernel)")
    top, bottom = float(spec.eigenvalues[-1]), float(spec.eigenvalues[0])
    if top <= 0:
        ctx.warn(f"{label}: kernel is zero")
        return float("nan")
    return math.log(top / bottom)


def eigen_score(theta: torch.Tensor, ctx: ProxyContext, label: str, k: float = 1.0) -> float:
    """-sum_i [log(l_i + k) + 1/(l_i + k)] (the eigenvalue score of Mok et al.'s suite)."""
    spec = spectrum(theta)
    if not spec.finite:
        ctx.warn(f"{label}: kernel has non-finite entries")
        return float("nan")
    values = spec.eigenvalues
    return float(-(torch.log(values + k) + 1.0 / (values + k)).sum())


class KernelProxy(Proxy):
    cost = PER_SAMPLE
    Config = NTKConfig

    def kernel(
        self,
        model: nn.Module,
        ctx: ProxyContext,
        scalar: str | None = None,
        inputs: torch.Tensor | None = None,
        view: str = "batch",
    ) -> torch.Tensor:
        """Theta on ``inputs`` (default: the proxy batch), reused from ``ctx.cache`` when the
        same kernel of the same view was already computed in this scoring call."""
        spec = self.config.kernel_spec()
        if scalar is not None:
            spec = KernelSpec(scalar, spec.params, spec.method, spec.max_memory, spec.chunk)
        key = ("ntk", view, spec.scalar, spec.params)
        if key not in ctx.cache:
            batch = ctx.inputs if inputs is None else inputs
            labels = ctx.labels if batch.shape[0] == ctx.labels.shape[0] else ctx.labels.repeat(
                batch.shape[0] // ctx.labels.shape[0])
            ctx.cache[key] = empirical_ntk(model, batch, labels, spec)
        return ctx.cache[key]


@PROXIES.register("ntk_cond")
class NTKConditionNumber(KernelProxy):
    """TE-NAS (Chen et al., ICLR 2021): a well-conditioned NTK trains fast. Raw = log kappa
    (smaller is better); the normalised score is -log kappa."""

    name = "ntk_cond"
    direction = -1
    reference = "TE-NAS, Chen et al., ICLR 2021"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return log_condition_number(self.kernel(model, ctx), ctx, self.name)


@PROXIES.register("ntk_trace")
class NTKTrace(KernelProxy):
    """NASI (Shu et al., ICLR 2022): the trace norm tr(Theta) bounds training-loss decrease.
    Raw = log tr(Theta) / N (the log keeps scales comparable; ranking is unchanged)."""

    name = "ntk_trace"
    direction = 1
    reference = "NASI, Shu et al., ICLR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        theta = self.kernel(model, ctx)
        return math.log(max(float(torch.trace(theta)) / theta.shape[0], 1e-300))


@PROXIES.register("ntk_mgm")
class NTKMeanGradientKernel(KernelProxy):
    """KNAS (Xu et al., ICML 2021): mean of all entries of the Gram matrix of per-sample
    *loss* gradients, (1/n^2) sum_ij <g_i, g_j> (the paper's formula, not its approximation)."""

    name = "ntk_mgm"
    direction = 1
    reference = "KNAS, Xu et al., ICML 2021"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return float(self.kernel(model, ctx, scalar="loss").mean())


@PROXIES.register("ntk_frobenius")
class NTKFrobenius(KernelProxy):
    """Frobenius norm of Theta, one of the NTK statistics Mok et al. (CVPR 2022) revisit."""

    name = "ntk_frobenius"
    direction = 1
    reference = "Mok et al., CVPR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return float(torch.linalg.matrix_norm(self.kernel(model, ctx)))


@PROXIES.register("ntk_eigen")
class NTKEigenScore(KernelProxy):
    """Eigen-spectrum score -sum[log(l+1) + 1/(l+1)] of Theta (Mok et al.'s suite)."""

    name = "ntk_eigen"
    direction = 1
    reference = "Mok et al., CVPR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return eigen_score(self.kernel(model, ctx), ctx, self.name)


@PROXIES.register("ntk_regression")
class NTKRegression(KernelProxy):
    """Accuracy of NTK kernel regression: fit one-hot labels on the first half of the batch,
    predict the second half with Theta_vt Theta_tt^-1 Y_t (a small ridge keeps it solvable)."""

    name = "ntk_regression"
    direction = 1
    reference = "Mok et al., CVPR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        theta = self.kernel(model, ctx)
        n = theta.shape[0]
        half = n // 2
        if half < 1 or n - half < 1:
            ctx.warn(f"{self.name}: batch too small to split")
            return float("nan")
        targets = F.one_hot(ctx.labels, ctx.num_classes).double()
        targets = targets - targets[:half].mean(dim=0)
        train = theta[:half, :half]
        ridge = 1e-6 * float(torch.trace(train)) / half + 1e-30
        weights = torch.linalg.solve(train + ridge * torch.eye(half, dtype=train.dtype),
                                     targets[:half])
        predicted = theta[half:, :half] @ weights
        return float((predicted.argmax(dim=1) == ctx.labels[half:]).double().mean())


@dataclass(frozen=True)
class LinearRegionConfig:
    samples: int = 0  # Gaussian inputs; 0 = as many as the proxy batch
    image_size: int = 0  # 0 = the proxy batch's size


@PROXIES.register("linear_regions")
class LinearRegions(Proxy):
    """TE-NAS's expressivity measure: the number of distinct activation patterns (signs of
    every ReLU/GELU input) over a batch of Gaussian inputs, counted as sum_i 1/#{j: P_j = P_i}.
    Large nets can give every input its own pattern (count = N): a warning says so."""

    name = "linear_regions"
    direction = 1
    cost = FORWARD
    reference = "TE-NAS, Chen et al., ICLR 2021"
    Config = LinearRegionConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        n = self.config.samples or ctx.inputs.shape[0]
        channels, height, width = ctx.inputs.shape[1:]
        if self.config.image_size:
            height = width = self.config.image_size
        inputs = torch.randn(n, channels, height, width)
        patterns: list[torch.Tensor] = []

        def record(_module, args, _output):
            patterns.append((args[0] > 0).reshape(n, -1))

        hooks = [m.register_forward_hook(record) for m in model.modules()
                 if isinstance(m, (nn.ReLU, nn.GELU))]
        try:
            with torch.no_grad():
                model(inputs)
        finally:
            for hook in hooks:
                hook.remove()
        if not patterns:
            ctx.warn(f"{self.name}: the model has no ReLU/GELU activations")
            return float("nan")
        codes = torch.cat(patterns, dim=1).to(torch.int8)
        _, inverse, counts = torch.unique(codes, dim=0, return_inverse=True, return_counts=True)
        regions = float((1.0 / counts[inverse].double()).sum())
        if regions >= n:
            ctx.warn(f"{self.name}: saturated (every input has its own pattern)")
        return regions
