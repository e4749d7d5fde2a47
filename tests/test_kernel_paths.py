"""The hooks kernel (one batched forward and backward) against the naive per-sample loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.proxies import kernel
from vitnas.proxies.kernel import KernelSpec, empirical_ntk, hooks_cover, selected_parameters
from vitnas.spaces import get_space


def tiny(name, **options):
    space = get_space(name, img_size=16, **options)
    return space.build(space.sample(1), seed=0).train()


def batch(n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=g), torch.arange(n) % 4


def close(a, b, tol=1e-5):
    return float((a - b).abs().max()) <= tol * float(b.abs().max())


class SharedAndOdd(nn.Module):
    """A layer called twice, a position embedding, and a per-channel scale no rule covers."""

    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.randn(1, 3, 4))
        self.fc = nn.Linear(4, 4)
        self.scale = nn.Parameter(torch.randn(4))
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (N, 3, 4)
        h = self.fc(torch.tanh(self.fc(x + self.pos))) * self.scale
        return self.head(self.norm(h).mean(1))


@pytest.mark.parametrize("name,options", [
    ("autoformer-tiny-micro", {}), ("autoformer-tiny-micro", {"qkv": "embed", "pool": "mean"}),
    ("pit-tiny-micro", {}), ("pit-tiny-micro", {"pool": "mean"}),
])
@pytest.mark.parametrize("scalar,params", [("logits_sum", "all"), ("loss", "weights"),
                                           ("true_logit", "linear")])
def test_hooks_kernel_matches_naive_loop(name, options, scalar, params):
    model = tiny(name, **options)
    x, y = batch()
    hooks = empirical_ntk(model, x, y, KernelSpec(scalar, params, method="hooks"))
    naive = empirical_ntk(model, x, y, KernelSpec(scalar, params, method="loop"))
    assert close(hooks, naive) and torch.equal(hooks, hooks.T)


def test_auto_takes_hooks_on_vits_without_torch_func(monkeypatch):
    model = tiny("pit-tiny-micro")
    assert hooks_cover(model, selected_parameters(model, "all"))

    def refuse(*args, **kwargs):
        raise AssertionError("torch.func used")

    monkeypatch.setattr(kernel, "vmap", refuse)
    x, y = batch()
    empirical_ntk(model, x, y)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("chunk,groups", [(4, 1), (0, 400), (2, 3)])
def test_chunked_and_memory_bounded_hooks_match_whole_batch(chunk, groups):
    model = tiny("autoformer-tiny-micro")
    x, y = batch()
    whole = empirical_ntk(model, x, y, KernelSpec(method="hooks"))
    # a budget of about 1/groups of the per-sample gradients (row slices when unchunked)
    budget = sum(p.numel() for p in model.parameters()) * x.shape[0] * 12 // groups
    spec = KernelSpec(method="hooks", chunk=chunk, max_memory=budget)
    assert close(empirical_ntk(model, x, y, spec), whole, 1e-6)


def test_shared_layers_and_uncovered_parameters_fall_back_exactly():
    torch.manual_seed(0)
    model = SharedAndOdd()
    x, y = torch.randn(5, 3, 4), torch.tensor([0, 1, 0, 1, 1])
    assert not hooks_cover(model, selected_parameters(model, "all"))
    naive = empirical_ntk(model, x, y, KernelSpec(method="loop"))
    for method in ("hooks", "auto"):
        assert close(empirical_ntk(model, x, y, KernelSpec(method=method)), naive)
    for chunk in (0, 2):  # the shared layer only: its hooks are dropped, vmap takes it
        spec = KernelSpec(params="linear", method="hooks", chunk=chunk)
        assert close(empirical_ntk(model, x, y, spec),
                     empirical_ntk(model, x, y, KernelSpec(params="linear", method="loop")))


def test_hooks_refuse_batch_coupled_networks():
    model = tiny("nasbench201")
    with pytest.raises(ConfigError, match="independent samples"):
        empirical_ntk(model, *batch(), KernelSpec(method="hooks"))
