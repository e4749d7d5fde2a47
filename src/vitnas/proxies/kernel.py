"""The empirical neural tangent kernel Theta = J J^T of a scalarised output (N x N).

Three ways to compute the per-sample gradients J (N x P):

- ``hooks``: for networks without cross-sample coupling (LayerNorm ViTs) one batched forward
  and one backward of sum_i s_i give every sample's gradient at every layer output exactly.
  Hooks keep each Linear/Conv2d/LayerNorm's input and output gradient, and the per-sample
  weight gradient is a product over tokens, G_i = sum_t g_it a_it^T (the trick of Goodfellow,
  "Efficient per-example gradient computations", 2015). Position embeddings and class tokens,
  parameters of shape (1, ...) broadcast over the batch, are given one copy per sample. No
  ``torch.func`` transform is involved, so there is no warm-up. Parameters no rule covers (a
  module called twice, another layer type) fall back to ``batched``.
- ``batched``: ``torch.func``. Uncoupled networks use ``vmap(grad(f))`` over single samples.
  Networks with BatchNorm in train mode couple the samples through the batch statistics; there
  J is the Jacobian of the batch forward, computed as ``vmap`` of a ``vjp`` over the identity's
  rows (TE-NAS's semantics, exactly).
- ``loop``: one backward per sample (the naive reference and the fallback); for coupled
  networks, one batch forward and N retained-graph backward passes.
- ``auto`` (default): ``hooks`` for uncoupled networks whose parameters it covers, else
  ``batched``; ``loop`` for coupled ones, where it measured 3.4x faster than vmapping the
  pullback on CPU (NB201 cell, N=32).

Theta is accumulated parameter tensor by tensor (a float32 GEMM each) into a float64 sum.
``max_memory`` bounds the per-sample gradients held at once: ``batched``/``loop`` split the
parameters into groups that fit; ``hooks`` holds one tensor's (N, numel) block at a time and
splits a tensor's rows when even that is too big (with ``chunk``, parameter groups again, each
filled chunk by chunk). TF32 is switched off while kernels are computed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vjp, vmap

from vitnas.errors import ConfigError
from vitnas.models import tags

SCALARS = ("logits_sum", "true_logit", "loss")
PARAM_SETS = ("all", "weights", "linear", "weights_nohead")
METHODS = ("auto", "hooks", "batched", "loop")
DEFAULT_MAX_MEMORY = 2 * 1024**3


@dataclass(frozen=True)
class KernelSpec:
    """How the kernel is taken: which scalar, which parameters, which algorithm, how much memory.

    ``params``: ``all`` every parameter; ``weights`` every parameter named ``*weight`` (TE-NAS);
    ``linear`` only Linear/conv weight matrices and the patch embedding (TF-TAS's ViT NTK).
    ``weights_nohead`` ``weights`` without the classifier (tagged ``head``; LGA's reference).
    """

    scalar: str = "logits_sum"
    params: str = "all"
    method: str = "auto"
    max_memory: int = DEFAULT_MAX_MEMORY
    chunk: int = 0  # samples per vmap call or hooked pass; 0 = the whole batch

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
    if which == "weights_nohead":  # LGA's reference: every weight except the classifier's
        head = {f"{name}.weight" for name, _ in tags.tagged_modules(model, tags.HEAD)}
        return {n: p for n, p in model.named_parameters()
                if n.endswith("weight") and n not in head}
    chosen = {}
    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) or tags.role_of(module) is not None:
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.dim() >= 2:
                chosen[f"{name}.weight" if name else "weight"] = weight
    return chosen


def scalarise(logits: torch.Tensor, labels: torch.Tensor, how: str) -> torch.Tensor:
    """Per-sample scalar outputs (N,) whose gradients form the kernel. Dense outputs
    (N, C, H, W) with label maps (N, H, W): ``logits_sum`` sums every class and pixel,
    ``true_logit`` and ``loss`` average over the valid pixels (``targets.IGNORE`` skipped)."""
    if logits.dim() > 2:
        if how == "logits_sum":
            return logits.flatten(1).sum(dim=1)
        valid = (labels >= 0).flatten(1)
        count = valid.sum(dim=1).clamp_min(1)
        if how == "true_logit":
            picked = logits.gather(1, labels.clamp_min(0).unsqueeze(1)).squeeze(1).flatten(1)
        else:
            picked = F.cross_entropy(logits, labels, reduction="none").flatten(1)
        return (picked * valid).sum(dim=1) / count
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


# --- hooks: per-sample gradients from layer inputs and output gradients -----------------------

Emit = Callable[[str, int, torch.Tensor], None]  # (parameter name, column offset, (n, w) block)


def _hookable(module: nn.Module) -> bool:
    """Layers whose per-sample parameter gradients follow from their input and output grad."""
    if isinstance(module, nn.Conv2d):
        return module.padding_mode == "zeros" and not isinstance(module.padding, str)
    return isinstance(module, (nn.Linear, nn.LayerNorm))


def _hook_plan(model: nn.Module, chosen: dict[str, torch.Tensor]):
    """Which chosen parameters the hooks derive: {module: {attribute: name}} for layer
    parameters, {name: parameter} for the broadcast ones; everything else is left over."""
    owners: dict[int, list[tuple[nn.Module, str, str]]] = {}
    for prefix, module in model.named_modules(remove_duplicate=False):
        for attr, p in module.named_parameters(recurse=False):
            owners.setdefault(id(p), []).append((module, attr, f"{prefix}.{attr}" if prefix
                                                  else attr))
    layers: dict[nn.Module, dict[str, str]] = {}
    broadcast, leftover = {}, []
    for name, p in chosen.items():
        places = owners.get(id(p), [])
        if len(places) == 1 and _hookable(places[0][0]) and places[0][1] in ("weight", "bias"):
            layers.setdefault(places[0][0], {})[places[0][1]] = name
        elif len(places) == 1 and not _hookable(places[0][0]) and p.dim() >= 2 and p.shape[0] == 1:
            broadcast[name] = p
        else:
            leftover.append(name)
    return layers, broadcast, leftover


def hooks_cover(model: nn.Module, chosen: dict[str, torch.Tensor]) -> bool:
    """True when every chosen parameter has a hook rule (layers called once are assumed)."""
    return not _hook_plan(model, chosen)[2]


def _row_slices(rows: int, row_bytes: int, budget: int) -> Iterator[slice]:
    step = max(1, budget // max(1, row_bytes))
    for start in range(0, rows, step):
        yield slice(start, min(rows, start + step))


def _layer_blocks(module: nn.Module, a: torch.Tensor, g: torch.Tensor, wanted: dict[str, str],
                  budget: int) -> Iterator[tuple[str, int, torch.Tensor]]:
    """(name, column offset, per-sample gradient block) for one layer call; a is the layer's
    input and g the gradient at its output, both with the batch first."""
    n = a.shape[0]
    if isinstance(module, nn.LayerNorm):
        width = math.prod(module.normalized_shape)
        if "weight" in wanted:
            normalised = F.layer_norm(a, module.normalized_shape, eps=module.eps)
            yield wanted["weight"], 0, (g * normalised).reshape(n, -1, width).sum(1)
        if "bias" in wanted:
            yield wanted["bias"], 0, g.reshape(n, -1, width).sum(1)
        return
    if isinstance(module, nn.Linear):
        a = a.reshape(n, -1, a.shape[-1])  # (N, tokens, in)
        g = g.reshape(n, -1, g.shape[-1])  # (N, tokens, out)
        if "weight" in wanted:
            for rows in _row_slices(g.shape[2], 4 * n * a.shape[2], budget):
                block = torch.bmm(g[:, :, rows].transpose(1, 2), a)  # (N, rows, in)
                yield wanted["weight"], rows.start * a.shape[2], block.reshape(n, -1)
        if "bias" in wanted:
            yield wanted["bias"], 0, g.sum(1)
        return
    groups = module.groups
    cols = F.unfold(a, module.kernel_size, module.dilation, module.padding, module.stride)
    cols = cols.reshape(n, groups, -1, cols.shape[-1])  # (N, groups, in/groups*kh*kw, L)
    g = g.reshape(n, groups, -1, cols.shape[-1])  # (N, groups, out/groups, L)
    if "weight" in wanted:
        per_group = g.shape[2] * cols.shape[2]
        if groups == 1:
            for rows in _row_slices(g.shape[2], 4 * n * cols.shape[2], budget):
                block = torch.matmul(g[:, 0, rows], cols[:, 0].transpose(1, 2))
                yield wanted["weight"], rows.start * cols.shape[2], block.reshape(n, -1)
        else:
            for part in _row_slices(groups, 4 * n * per_group, budget):
                block = torch.matmul(g[:, part], cols[:, part].transpose(2, 3))
                yield wanted["weight"], part.start * per_group, block.reshape(n, -1)
    if "bias" in wanted:
        yield wanted["bias"], 0, g.sum(3).reshape(n, -1)


def _hooked_pass(model, layers, broadcast, x, y, how, budget, emit: Emit) -> set[nn.Module]:
    """One forward and one backward of sum_i s_i over ``x``; emits every hooked parameter's
    per-sample gradient blocks as they appear. Returns the layers it could not derive (called
    more than once, or off the backward path), whose parameters need another method."""
    calls: dict[nn.Module, int] = {}
    pending: dict[nn.Module, torch.Tensor] = {}

    def backward_hook(module: nn.Module, grad: torch.Tensor) -> None:
        a = pending.pop(module, None)
        if a is None or calls[module] > 1:
            return
        for name, offset, block in _layer_blocks(module, a, grad, layers[module], budget):
            emit(name, offset, block)

    def forward_hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        calls[module] = calls.get(module, 0) + 1
        pending[module] = args[0].detach()
        output.register_hook(lambda grad: backward_hook(module, grad))

    handles = [m.register_forward_hook(forward_hook) for m in layers]
    try:
        with torch.enable_grad():
            image = x.detach().requires_grad_()
            copies = {name: p.detach().expand(x.shape[0], *p.shape[1:]).clone().requires_grad_()
                      for name, p in broadcast.items()}
            scalars = scalarise(functional_call(model, copies, (image,)), y, how)
            grads = torch.autograd.grad(scalars.sum(), [image, *copies.values()],
                                        allow_unused=True)
    finally:
        for handle in handles:
            handle.remove()
    for name, p_grad in zip(copies, grads[1:]):
        block = torch.zeros_like(copies[name]) if p_grad is None else p_grad
        emit(name, 0, block.reshape(x.shape[0], -1))
    return {m for m in layers if calls.get(m, 0) > 1 or m in pending}


def _hooks_kernel(model, chosen, x, y, spec: KernelSpec, theta: torch.Tensor) -> list[str]:
    """Adds the hooked parameters' kernel to ``theta``; returns the names left to another
    method."""
    layers, broadcast, leftover = _hook_plan(model, chosen)
    n = x.shape[0]
    if not spec.chunk or spec.chunk >= n:
        def accumulate(name: str, offset: int, block: torch.Tensor) -> None:
            theta.add_((block @ block.T).double())

        failed = _hooked_pass(model, layers, broadcast, x, y, spec.scalar, spec.max_memory,
                              accumulate)
    else:
        failed = set()
        hooked = {name: chosen[name] for name in chosen if name not in leftover}
        for names in parameter_groups(hooked, n, spec.max_memory):
            jacobian = {k: torch.zeros(n, chosen[k].numel(), device=x.device) for k in names}
            group_layers = {m: {a: k for a, k in attrs.items() if k in jacobian}
                            for m, attrs in layers.items()}
            group_layers = {m: attrs for m, attrs in group_layers.items() if attrs}
            group_broadcast = {k: p for k, p in broadcast.items() if k in jacobian}
            for start in range(0, n, spec.chunk):
                rows = slice(start, min(n, start + spec.chunk))

                def store(name: str, offset: int, block: torch.Tensor, rows=rows,
                          jacobian=jacobian) -> None:
                    jacobian[name][rows, offset : offset + block.shape[1]] = block

                failed |= _hooked_pass(model, group_layers, group_broadcast, x[rows], y[rows],
                                       spec.scalar, spec.max_memory, store)
            for name, block in jacobian.items():
                if not any(name in layers[m].values() for m in failed):
                    theta.add_((block @ block.T).double())
    return leftover + [name for m in failed for name in layers[m].values()]


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
    if method == "hooks" and coupled:
        raise ConfigError("kernel method 'hooks' needs independent samples; this model "
                          "couples them (BatchNorm with batch statistics): use 'loop' or 'batched'")
    if method == "auto":
        method = "loop" if coupled else "hooks" if hooks_cover(model, chosen) else "batched"
    n = inputs.shape[0]
    theta = torch.zeros(n, n, dtype=torch.float64, device=inputs.device)
    with exact_matmuls(), batch_statistics_without_tracking(model):
        if method == "hooks":
            rest = _hooks_kernel(model, chosen, inputs, labels, spec, theta)
            chosen, method = {k: chosen[k] for k in rest}, "batched"
        for names in parameter_groups(chosen, n, spec.max_memory) if chosen else []:
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
