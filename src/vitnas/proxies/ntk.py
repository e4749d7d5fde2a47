"""NTK metrics at initialisation (TE-NAS, NASI, KNAS, NASWOT-v1, and the statistics Mok et al.
revisit).

All share one kernel configuration (``NTKConfig``), so e.g. ``ntk_cond:scalar=loss,params=linear``
is addressable; a proxy whose paper takes the kernel differently overrides the default in its own
config (``ntk_cond`` uses ``params=weights``, as TE-NAS does). Raw values follow each paper's
convention; ``direction`` says which way is better.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies.base import (
    FORWARD,
    PER_SAMPLE,
    PROXIES,
    Proxy,
    ProxyContext,
    ceiling,
    read_when,
)
from vitnas.proxies.kernel import (
    DEFAULT_MAX_MEMORY,
    KernelSpec,
    batch_statistics_without_tracking,
    empirical_ntk,
    exact_matmuls,
    has_batch_coupling,
    selected_parameters,
    spectrum,
)
from vitnas.proxies.targets import image_labels, image_targets, repeat_batch


@dataclass(frozen=True)
class NTKConfig:
    scalar: str = "logits_sum"
    params: str = "all"
    method: str = "auto"
    max_memory: int = DEFAULT_MAX_MEMORY
    chunk: int = ceiling(0, 10**9)

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


def correlation(theta: torch.Tensor) -> torch.Tensor | None:
    """Theta_ij / sqrt(Theta_ii Theta_jj): the cosine similarity of the per-sample gradients;
    None when a sample has a zero gradient (its correlation is undefined)."""
    diagonal = torch.diagonal(theta).double()
    if not bool((diagonal > 0).all()):
        return None
    scale = diagonal.rsqrt()
    return theta.double() * scale.view(-1, 1) * scale.view(1, -1)


def eigen_score(theta: torch.Tensor, ctx: ProxyContext, label: str, k: float = 1e-5) -> float:
    """NASWOT-v1's score (Mellor et al., arXiv 2006.04647v1, the jacob_cov score):
    -sum_i [log(s_i + k) + 1/(s_i + k)] over the eigenvalues s_i of the gradients' *correlation*
    matrix, k = 1e-5. Each term is smallest at s = 1 - k, so the score rewards uncorrelated
    gradients and is unchanged by the kernel's scale. NASWOT-v1 correlates input Jacobians with
    ``np.corrcoef``, which also centres each one over its coordinates; here the rows are the
    NTK's parameter gradients and only Theta is kept, so the correlation is uncentred."""
    if not torch.isfinite(theta).all():
        ctx.warn(f"{label}: kernel has non-finite entries")
        return float("nan")
    normalised = correlation(theta)
    if normalised is None:
        ctx.warn(f"{label}: a sample has a zero gradient; the correlation is undefined")
        return float("nan")
    values = torch.linalg.eigvalsh(normalised).clamp_min(0.0)
    return float(-(torch.log(values + k) + 1.0 / (values + k)).sum())


def mean_gram(theta: torch.Tensor) -> float:
    """KNAS's mean gradient kernel (1/n^2) sum_ij Theta_ij."""
    return float(theta.mean())


def log_mean_trace(theta: torch.Tensor) -> float:
    """log(tr(Theta) / N); the log keeps scales comparable and leaves rankings unchanged."""
    return math.log(max(float(torch.trace(theta)) / theta.shape[0], 1e-300))


def multi_output_trace(
    model: nn.Module, inputs: torch.Tensor, params: str = "all", probes: int = 4,
    generator: torch.Generator | None = None,
) -> float:
    """NASI's trace norm of the multi-output NTK (Shu et al., ICLR 2022, Sec. 3):
    tr(Theta) = sum_i sum_k ||d f_k(x_i) / d theta||^2, over every logit k.

    ``probes=0`` is exact: one backward pass per (sample, logit). ``probes=p`` is Hutchinson's
    unbiased estimator per sample: ||v^T J_i||^2 averaged over p Rademacher vectors v in {+-1}^K,
    whose expectation is ||J_i||_F^2 because E[v v^T] = I. Its only noise comes from
    cross-logit products <grad f_k, grad f_l>; the classifier's own gradients (v x h) enter
    exactly. Cost: N forwards and N * p backward passes of one sample (exact: N * K).
    BatchNorm in train mode couples the samples: then f is the batch forward, as in the kernel.
    """
    chosen = list(selected_parameters(model, params).values())
    if not chosen:
        raise ConfigError(f"kernel params={params!r} selects no parameters of this model")
    coupled = has_batch_coupling(model)
    total = 0.0
    with exact_matmuls(), batch_statistics_without_tracking(model):
        batch_logits = model(inputs) if coupled else None
        for i in range(inputs.shape[0]):
            # (K,); a dense output's every class and pixel is one output k
            logits = (batch_logits[i] if coupled else model(inputs[i : i + 1])[0]).flatten()
            classes = logits.shape[0]
            if probes == 0:
                directions = torch.eye(classes, dtype=logits.dtype, device=logits.device)
            else:
                signs = torch.randint(0, 2, (probes, classes), generator=generator)
                directions = (signs * 2 - 1).to(logits.dtype).to(logits.device) / math.sqrt(probes)
            for j, direction in enumerate(directions):
                last = j == len(directions) - 1 and (not coupled or i == inputs.shape[0] - 1)
                grads = torch.autograd.grad(logits @ direction, chosen, retain_graph=not last,
                                            allow_unused=True)
                total += sum(float(torch.linalg.vector_norm(g.detach().double())) ** 2
                             for g in grads if g is not None)
    return total


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
            labels = ctx.labels if batch.shape[0] == ctx.labels.shape[0] else repeat_batch(
                ctx.labels, batch.shape[0] // ctx.labels.shape[0])
            ctx.cache[key] = empirical_ntk(model, batch, labels, spec)
        return ctx.cache[key]


@dataclass(frozen=True)
class NTKConditionConfig(NTKConfig):
    params: str = "weights"  # TE-NAS's kernel: gradients of the weights only


@PROXIES.register("ntk_cond")
class NTKConditionNumber(KernelProxy):
    """TE-NAS (Chen et al., ICLR 2021): a well-conditioned NTK trains fast. Raw = log kappa
    (smaller is better); the normalised score is -log kappa. Like TE-NAS, the kernel is of the
    summed logits' gradients w.r.t. the ``*weight`` parameters (``params=all`` adds biases)."""

    name = "ntk_cond"
    min_batch = 2  # a statistic across samples
    direction = -1
    reference = "TE-NAS, Chen et al., ICLR 2021"
    Config = NTKConditionConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return log_condition_number(self.kernel(model, ctx), ctx, self.name)


TRACE_OUTPUTS = ("all", "scalar")


@dataclass(frozen=True)
class NTKTraceConfig(NTKConfig):
    outputs: str = "all"  # all: NASI's multi-output trace; scalar: trace of the `scalar` kernel
    # Rademacher probes per sample (outputs=all); 0 = exact, one pass per logit
    probes: int = ceiling(4, 10_000)

    def check(self) -> None:
        super().check()
        if self.outputs not in TRACE_OUTPUTS:
            raise ConfigError(f"ntk_trace outputs {self.outputs!r} is not one of "
                              f"{', '.join(TRACE_OUTPUTS)}")
        if self.probes < 0:
            raise ConfigError("ntk_trace needs probes >= 0 (0 = exact)")

    def read_options(self) -> frozenset[str]:
        """NASI's multi-output trace (outputs=all) reads ``params`` and ``probes``; the scalar
        kernel's trace reads the kernel options instead."""
        if self.outputs == "all":
            return frozenset({"outputs", "params", "probes"})
        return frozenset(f.name for f in dataclasses.fields(self) if f.name != "probes")

    def setting(self) -> str:
        return f"outputs={self.outputs}"

    @classmethod
    def readers(cls) -> dict[str, str]:
        return read_when(cls, {"probes": "outputs=all", **dict.fromkeys(
            ("scalar", "method", "max_memory", "chunk"), "outputs=scalar")})


@PROXIES.register("ntk_trace")
class NTKTrace(KernelProxy):
    """NASI (Shu et al., ICLR 2022): the trace norm of the NTK bounds how fast the training loss
    falls. Raw = log(tr(Theta) / N). ``outputs=all`` (default) is NASI's multi-output trace
    (``multi_output_trace``); ``outputs=scalar`` the trace of the N x N kernel of ``scalar``
    (``logits_sum`` gives ||grad sum_k f_k||^2, which adds the cross-logit products)."""

    name = "ntk_trace"
    direction = 1
    reference = "NASI, Shu et al., ICLR 2022"
    Config = NTKTraceConfig

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        c = self.config
        if c.outputs == "scalar":
            return log_mean_trace(self.kernel(model, ctx))
        generator = torch.Generator().manual_seed(ctx.seed)
        total = multi_output_trace(model, ctx.inputs, c.params, c.probes, generator)
        return math.log(max(total / ctx.inputs.shape[0], 1e-300))


@PROXIES.register("ntk_mgm")
class NTKMeanGradientKernel(KernelProxy):
    """KNAS (Xu et al., ICML 2021): mean of all entries of the Gram matrix of per-sample
    *loss* gradients, (1/n^2) sum_ij <g_i, g_j> (the paper's formula, not its approximation)."""

    name = "ntk_mgm"
    direction = 1
    reference = "KNAS, Xu et al., ICML 2021"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return mean_gram(self.kernel(model, ctx, scalar="loss"))


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
    """NASWOT-v1's eigenvalue score (``eigen_score``) on the NTK's correlation matrix: higher
    when the samples' gradients are less correlated (Mellor et al., arXiv 2006.04647v1)."""

    name = "ntk_eigen"
    min_batch = 2  # a statistic across samples
    direction = 1
    reference = "NASWOT v1, Mellor et al., arXiv 2006.04647v1"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        return eigen_score(self.kernel(model, ctx), ctx, self.name)


@PROXIES.register("ntk_regression")
class NTKRegression(KernelProxy):
    """Accuracy of NTK kernel regression: fit one-hot labels on the first half of the batch,
    predict the second half with Theta_vt Theta_tt^-1 Y_t (a small ridge keeps it solvable)."""

    name = "ntk_regression"
    min_batch = 2  # a statistic across samples
    direction = 1
    reference = "Mok et al., CVPR 2022"

    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        theta = self.kernel(model, ctx)
        n = theta.shape[0]
        half = n // 2
        if half < 1 or n - half < 1:
            ctx.warn(f"{self.name}: batch too small to split")
            return float("nan")
        targets = image_targets(ctx.labels, ctx.num_classes)
        truth = image_labels(ctx.labels, ctx.num_classes)
        targets = targets - targets[:half].mean(dim=0)
        train = theta[:half, :half]
        ridge = 1e-6 * float(torch.trace(train)) / half + 1e-30
        weights = torch.linalg.solve(train + ridge * torch.eye(half, dtype=train.dtype),
                                     targets[:half])
        predicted = theta[half:, :half] @ weights
        return float((predicted.argmax(dim=1) == truth[half:]).double().mean())


@dataclass(frozen=True)
class LinearRegionConfig:
    samples: int = ceiling(0, 100_000)  # Gaussian inputs; 0 = as many as the proxy batch
    image_size: int = ceiling(0, 16_384)  # 0 = the proxy batch's size

    def check(self) -> None:
        if self.samples < 0 or self.image_size < 0:
            raise ConfigError(f"linear_regions needs samples >= 0 and image_size >= 0 (0: the "
                              f"proxy batch's), got {self.samples}, {self.image_size}")


@PROXIES.register("linear_regions")
class LinearRegions(Proxy):
    """TE-NAS's expressivity measure: the number of distinct activation patterns (signs of
    every ReLU/GELU input) over a batch of Gaussian inputs, counted as sum_i 1/#{j: P_j = P_i}.
    Large nets can give every input its own pattern (count = N): a warning says so."""

    name = "linear_regions"
    min_batch = 2  # a statistic across samples
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
        except RuntimeError as err:
            if height == ctx.inputs.shape[2]:
                raise
            # a ViT's patch grid and position embeddings fix its input size
            raise ConfigError(f"linear_regions: the model does not take {height} px inputs "
                              f"({str(err).splitlines()[0][:120]}); leave image_size at 0 for "
                              f"the proxy batch's size") from None
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
