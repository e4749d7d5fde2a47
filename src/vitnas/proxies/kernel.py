"""The empirical neural tangent kernel Theta = J J^T of a scalarised output (N x N).

Two ways to compute the per-sample gradients J (N x P):

- ``batched``: ``torch.func``. Networks without cross-sample coupling (LayerNorm ViTs) use
  ``vmap(grad(f))`` over single samples. Networks with BatchNorm in train mode couple the
  samples through the batch statistics; there J is the Jacobian of the batch forward, computed
  as ``vmap`` of a ``vjp`` over the identity's rows (TE-NAS's semantics, exactly).
- ``loop``: one backward per sample (the naive reference and the fallback); for coupled
  networks, one batch forward and N retained-graph backward passes.
- ``auto`` (default): ``batched`` for uncoupled networks; ``loop`` for coupled ones, where it
  measured 3.4x faster than vmapping the pullback on CPU (NB201 cell, N=32).

Parameters are split into groups so that one group's gradients for the whole batch fit the
memory budget; Theta is accumulated parameter tensor by tensor (a float32 GEMM each) into a
float64 sum, so the kernel never holds more than the budget in gradients. TF32 is switched
off while kernels are computed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from vitnas.errors import ConfigError
from vitnas.models import tags

SCALARS = ("logits_sum", "true_logit", "loss")
PARAM_SETS = ("all", "weights", "linear")
METHODS = ("auto", "batched", "loop")
DEFAULT_MAX_MEMORY = 2 * 1024**3


@dataclass(frozen=True)
class KernelSpec:
    """How the kernel is taken: which scalar, which parameters, which algorithm, how much memory.

    ``params``: ``all`` every parameter; ``weights`` every parameter named ``*weight`` (TE-NAS);
    ``linear`` only Linear/conv weight matrices and the patch embedding (TF-TAS's ViT NTK).
    """

    scalar: str = "logits_sum"
    params: str = "all"
    method: str = "auto"
    max_memory: int = DEFAULT_MAX_MEMORY
    chunk: int = 0  # samples per vmap call; 0 = the whole batch

    def check(self) -> None:
        for value, allowed, what in ((self.scalar, SCALARS, "scalar"),
                                     (self.params, PARAM_SETS, "params"),
                                     (self.method, METHODS, "method")):
            if value not in allowed:
                raise ConfigError(f"kernel {what} {value!r} is not one of {', '.join(allowed)}")
        if self.max_memory <= 0 or self.chunk < 0:
            raise ConfigError("kernel max_memory must be positive and chunk non-negative")


def has_batch_coupling(model: nn.Module) -> bool:
    """True when samples interact in the forward pass (BatchNorm using batch statistics)."""
    return any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) and (m.training or not m.track_running_stats)
        for m in model.modules()
    )


def selected_parameters(model: nn.Module, which: str) -> dict[str, torch.Tensor]:
    if which == "all":
        return {n: p for n, p in model.named_parameters() if p.requires_grad}
    if which == "weights":
        return {n: p for n, p in model.named_parameters() if n.endswith("weight")}
    chosen = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) or tags.role_of(module) is not None:
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                chosen[f"{name}.weight" if name else "weight"] = weight
    return chosen


def scalarise(logits: torch.Tensor, labels: torch.Tensor, how: str) -> torch.Tensor:
    """Per-sample scalar outputs (N,) whose gradients form the kernel."""
    if how == "logits_sum":
        return logits.sum(dim=1)
    if how == "true_logit":
        return logits.gather(1, labels.view(-1, 1)).squeeze(1)
    return F.cross_entropy(logits, labels, reduction="none")


def parameter_groups(
    params: dict[str, torch.Tensor], batch: int, max_memory: int
) -> list[list[str]]:
    """Split parameters so a group's per-sample gradients (float32, with headroom for the
    autograd intermediates) fit."""
    per_element = batch * 12
    limit = max(1, max_memory // per_element)
    groups: list[list[str]] = [[]]
    size = 0
    for name, p in params.items():
        if groups[-1] and size + p.numel() > limit:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += p.numel()
    return groups


@contextlib.contextmanager
def batch_statistics_without_tracking(model: nn.Module) -> Iterator[None]:
    """Train-mode BatchNorm normalises with batch statistics either way; not tracking them
    gives the same outputs without the in-place buffer updates that ``torch.func`` rejects,
    and leaves the model unchanged."""
    changed = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training and m.track_running_stats
    ]
    for m in changed:
        m.track_running_stats = False
    try:
        yield
    finally:
        for m in changed:
            m.track_running_stats = True


@contextlib.contextmanager
def exact_matmuls() -> Iterator[None]:
    """Kernels are ill-conditioned: keep TF32 off while computing them."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def _batched_gradients(model, group, frozen, x, y, how, chunk, coupled) -> list[torch.Tensor]:
    """Per-sample gradients of the scalarised output, one (N, numel) block per parameter."""
    if coupled:
        def batch_scalars(p):
            return scalarise(functional_call(model, {**frozen, **p}, (x,)), y, how)

        _, pullback = vjp(batch_scalars, group)
        eye = torch.eye(x.shape[0], dtype=x.dtype, device=x.device)
        grads = vmap(pullback, chunk_size=chunk or None)(eye)[0]
    else:
        def one_scalar(p, xi, yi):
            logits = functional_call(model, {**frozen, **p}, (xi.unsqueeze(0),))
            return scalarise(logits, yi.unsqueeze(0), how)[0]

        grads = vmap(grad(one_scalar), in_dims=(None, 0, 0), chunk_size=chunk or None)(group, x, y)
    return [g.reshape(x.shape[0], -1) for g in grads.values()]


def _loop_gradients(model, names, x, y, how, coupled) -> list[torch.Tensor]:
    params = dict(model.named_parameters())
    rows = []
    if coupled:
        scalars = scalarise(model(x), y, how)
        for i in range(x.shape[0]):
            g = torch.autograd.grad(scalars[i], [params[n] for n in names], retain_graph=True,
                                    allow_unused=True)
            rows.append(torch.cat([_flat(gi, params[n]) for gi, n in zip(g, names)]))
    else:
        for i in range(x.shape[0]):
            s = scalarise(model(x[i : i + 1]), y[i : i + 1], how)[0]
            g = torch.autograd.grad(s, [params[n] for n in names], allow_unused=True)
            rows.append(torch.cat([_flat(gi, params[n]) for gi, n in zip(g, names)]))
    jacobian = torch.stack(rows)
    sizes = [params[n].numel() for n in names]
    return list(jacobian.split(sizes, dim=1))


def _flat(g: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    return torch.zeros(like.numel(), dtype=like.dtype) if g is None else g.reshape(-1)


def empirical_ntk(
    model: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, spec: KernelSpec | None = None
) -> torch.Tensor:
    """Theta (N x N, float64, symmetric) of ``model`` on ``inputs``; the model is unchanged."""
    spec = spec or KernelSpec()
    spec.check()
    coupled = has_batch_coupling(model)
    chosen = selected_parameters(model, spec.params)
    if not chosen:
        raise ConfigError(f"kernel params={spec.params!r} selects no parameters of this model")
    method = spec.method
    if method == "auto":
        method = "loop" if coupled else "batched"
    n = inputs.shape[0]
    theta = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)
    with exact_matmuls(), batch_statistics_without_tracking(model):
        for names in parameter_groups(chosen, n, spec.max_memory):
            if method == "loop":
                blocks = _loop_gradients(model, names, inputs, labels, spec.scalar, coupled)
            else:
                group = {k: chosen[k].detach() for k in names}
                frozen = {k: v.detach() for k, v in model.named_parameters() if k not in group}
                frozen.update(dict(model.named_buffers()))
                blocks = _batched_gradients(model, group, frozen, inputs, labels, spec.scalar,
                                            spec.chunk, coupled)
            # One float32 GEMM per parameter tensor, summed in float64: the sums that lose
            # precision (across tensors and groups) happen in double, without a double copy.
            for block in blocks:
                block = block.detach()
                theta += (block @ block.T).double()
            del blocks
    return (theta + theta.T) / 2


@dataclass(frozen=True)
class Spectrum:
    """Eigenvalues of a kernel (ascending, float64) and what had to be clamped."""

    eigenvalues: torch.Tensor
    clamped: bool
    finite: bool


def spectrum(theta: torch.Tensor, eps: float = 1e-12) -> Spectrum:
    """``eigvalsh`` in float64; eigenvalues below ``eps * lambda_max`` are clamped there."""
    if not torch.isfinite(theta).all():
        return Spectrum(torch.full((theta.shape[0],), float("nan"), dtype=torch.float64),
                        False, False)
    values = torch.linalg.eigvalsh(theta.double())
    floor = eps * max(float(values[-1]), 0.0)
    clamped = bool(values[0] < floor) and floor > 0
    return Spectrum(values.clamp_min(floor), clamped, True)


def double_centre(k: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T / n (the centring of CKA)."""
    n = k.shape[0]
    h = torch.eye(n, dtype=k.dtype) - 1.0 / n
    return h @ k @ h


def kernel_alignment(a: torch.Tensor, b: torch.Tensor, centring: str = "global") -> float:
    """<A_c, B_c>_F / (||A_c||_F ||B_c||_F): ``global`` subtracts each kernel's scalar mean,
    ``cka`` double-centres them. NaN when either centred kernel is zero."""
    if centring == "cka":
        a, b = double_centre(a), double_centre(b)
    else:
        a, b = a - a.mean(), b - b.mean()
    denominator = float(torch.linalg.matrix_norm(a) * torch.linalg.matrix_norm(b))
    return float((a * b).sum()) / denominator if denominator > 0 else float("nan")
