"""Each proxy against its reference: metric formulas by hand on kernels with known eigenvalues,
the NTK variants each paper defines, and every registered proxy on a tiny model."""

import math

import pytest
import torch
from torch import nn
from torch.func import functional_call, jacrev

from vitnas.proxies import get_proxy, score_architecture
from vitnas.proxies.base import ProxyContext
from vitnas.proxies.kernel import KernelSpec, empirical_ntk, selected_parameters
from vitnas.proxies.lga import label_gradient_alignment
from vitnas.proxies.ntk import eigen_score, log_condition_number, multi_output_trace
from vitnas.proxies.spec import training_free_proxies
from vitnas.spaces import get_space


def known_kernel(eigenvalues, seed=0):
    """Q diag(l) Q^T with a random orthogonal Q: a kernel whose spectrum is given."""
    n = len(eigenvalues)
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def equicorrelation(n, rho):
    """1 on the diagonal, rho elsewhere: eigenvalues 1 + (n-1) rho (once) and 1 - rho."""
    return (1 - rho) * torch.eye(n, dtype=torch.float64) + rho


def context(n=6, classes=3):
    return ProxyContext(torch.zeros(n, 3, 4, 4), torch.arange(n) % classes, classes)


def score_cached_kernel(spec, theta, scalar="logits_sum"):
    """Run a kernel proxy on a given Theta (placed in the context's kernel cache)."""
    proxy = get_proxy(spec)
    ctx = context(theta.shape[0])
    ctx.cache[("ntk", "batch", scalar, proxy.config.params)] = theta
    return proxy(nn.Identity(), ctx).raw


def naswot_v1(eigenvalues, k=1e-5):
    return -sum(math.log(v + k) + 1 / (v + k) for v in eigenvalues)


def test_condition_number_is_log_of_extreme_eigenvalue_ratio():
    theta = known_kernel([0.5, 2.0, 3.0, 40.0])
    assert log_condition_number(theta, context(), "t") == pytest.approx(math.log(80.0))
    assert score_cached_kernel("ntk_cond", theta) == pytest.approx(math.log(80.0))


def test_trace_and_mean_gradient_kernel_by_hand():
    theta = known_kernel([1.0, 2.0, 3.0, 6.0])
    assert score_cached_kernel("ntk_trace:outputs=scalar", theta) == pytest.approx(
        math.log(12.0 / 4))
    mgm = score_cached_kernel("ntk_mgm", theta, scalar="loss")
    assert mgm == pytest.approx(float(theta.sum()) / 16)
    # all-ones direction: 1^T Theta 1 = n * l when 1 is an eigenvector
    assert score_cached_kernel("ntk_mgm", 5.0 * equicorrelation(4, 1.0), "loss") == 5.0


def test_eigen_score_is_naswot_v1_on_the_correlation_matrix():
    n, rho = 5, 0.3
    expected = naswot_v1([1 + (n - 1) * rho] + [1 - rho] * (n - 1))
    assert eigen_score(equicorrelation(n, rho), context(), "t") == pytest.approx(expected)
    scales = torch.tensor([1e-6, 1.0, 3.0, 50.0, 1e4], dtype=torch.float64)
    rescaled = scales.view(-1, 1) * equicorrelation(n, rho) * scales.view(1, -1)
    assert eigen_score(rescaled, context(), "t") == pytest.approx(expected)
    assert score_cached_kernel("ntk_eigen", rescaled) == pytest.approx(expected)


def test_eigen_score_ignores_scale_and_prefers_uncorrelated_gradients():
    theta = known_kernel([0.1, 1.0, 2.0, 5.0])
    ctx = context()
    base = eigen_score(theta, ctx, "t")
    assert eigen_score(theta * 1e-8, ctx, "t") == pytest.approx(base)
    assert eigen_score(theta * 1e8, ctx, "t") == pytest.approx(base)
    # the best score belongs to orthogonal gradients (identity correlation), not a tiny kernel
    best = eigen_score(torch.eye(4, dtype=torch.float64), ctx, "t")
    assert best == pytest.approx(naswot_v1([1.0] * 4)) and best > base
    assert math.isnan(eigen_score(torch.zeros(4, 4, dtype=torch.float64), ctx, "t"))
    assert ctx.warnings


class MLP(nn.Module):
    def __init__(self, batchnorm=False):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(12, 7)
        self.norm = nn.BatchNorm1d(7, track_running_stats=False) if batchnorm else nn.Identity()
        self.head = nn.Linear(7, 4)

    def forward(self, x):
        return self.head(torch.tanh(self.norm(self.fc(x.flatten(1)))))


def brute_force_trace(model, x):
    """sum_i sum_k ||d f_k(x_i) / d theta||^2 from the full Jacobian of the batch forward."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    jac = jacrev(lambda p: functional_call(model, p, (x,)))(params)  # name -> (N, K, *shape)
    return sum(float(j.double().pow(2).sum()) for j in jac.values())


@pytest.mark.parametrize("batchnorm", [False, True])
def test_multi_output_trace_is_nasi_trace_exactly(batchnorm):
    model = MLP(batchnorm).train()
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    exact = brute_force_trace(model, x)
    assert multi_output_trace(model, x, probes=0) == pytest.approx(exact, rel=1e-6)
    # the logit-sum kernel's trace adds cross-logit products: a different number
    logit_sum = float(torch.trace(empirical_ntk(model, x, torch.zeros(5, dtype=torch.long))))
    assert abs(logit_sum - exact) > 1e-3 * exact
    ctx = ProxyContext(x, torch.zeros(5, dtype=torch.long), 4)
    assert get_proxy("ntk_trace:probes=0")(model, ctx).raw == pytest.approx(math.log(exact / 5))


def test_multi_output_trace_estimator_is_unbiased():
    model = MLP().train()
    x = torch.randn(5, 3, 2, 2, generator=torch.Generator().manual_seed(1))
    exact = brute_force_trace(model, x)
    draws = [multi_output_trace(model, x, probes=1, generator=torch.Generator().manual_seed(s))
             for s in range(300)]
    mean = sum(draws) / len(draws)
    spread = (sum((d - mean) ** 2 for d in draws) / len(draws)) ** 0.5
    assert spread > 0  # a real estimator, not the exact value
    assert abs(mean - exact) < 4 * spread / len(draws) ** 0.5


def test_ntk_trace_default_is_the_multi_output_trace():
    proxy = get_proxy("ntk_trace")
    assert proxy.config.outputs == "all" and proxy.config.probes > 0
    assert get_proxy("ntk_trace:outputs=scalar").config.outputs == "scalar"


def test_ntk_cond_takes_the_kernel_of_weights_like_tenas():
    space = get_space("nasbench201", img_size=8)
    model = space.build(space.sample(2), seed=0).train()
    x = torch.randn(6, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    y = torch.arange(6) % 3
    ctx = ProxyContext(x, y, space.num_classes)
    assert get_proxy("ntk_cond").config.params == "weights"
    weights = empirical_ntk(model, x, y, KernelSpec(params="weights"))
    everything = empirical_ntk(model, x, y, KernelSpec(params="all"))
    assert get_proxy("ntk_cond")(model, ctx).raw == pytest.approx(
        log_condition_number(weights, ctx, "t"), rel=1e-9)
    assert get_proxy("ntk_cond:params=all")(model, ProxyContext(x, y, 10)).raw == pytest.approx(
        log_condition_number(everything, ctx, "t"), rel=1e-9)
    # the other kernel proxies keep params=all
    assert get_proxy("vintk").config.params == "all"


def tiny_vit(seed=1):
    space = get_space("autoformer-tiny-micro", img_size=16)
    arch = space.sample(seed)
    return space, arch, space.build(arch, seed=0).train()


def test_lga_kernel_is_weights_without_the_classifier():
    _, _, model = tiny_vit()
    chosen = selected_parameters(model, "weights_nohead")
    assert "head.weight" not in chosen and chosen
    assert all(name.endswith("weight") for name in chosen)
    assert set(chosen) == set(selected_parameters(model, "weights")) - {"head.weight"}
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4
    theta = empirical_ntk(model, x, y, KernelSpec(params="weights_nohead"))
    lga = get_proxy("lga")(model, ProxyContext(x, y, 10)).raw
    assert lga == pytest.approx(label_gradient_alignment(theta, y, "global"), rel=1e-9)


def test_lga_trains_like_the_reference_on_samples_disjoint_from_the_proxy_batch(monkeypatch):
    import vitnas.train
    from vitnas.data import balanced_indices, get_dataset
    from vitnas.proxies.scoring import proxy_batch

    space, arch, model = tiny_vit()
    x, y = proxy_batch("synthetic", 20, space.img_size, num_classes=10, seed=3)
    seen = {}

    def fake_train(model, data, config, **kwargs):
        seen["data"], seen["config"] = data, config

    monkeypatch.setattr(vitnas.train, "train_model", fake_train)
    spec = "lga:epochs=1,dataset=synthetic"
    ctx = ProxyContext(x, y, 10, seed=3)
    get_proxy(spec)(model, ctx)
    config = seen["config"]
    assert (config.optimizer, config.lr, config.momentum, config.weight_decay) == (
        "sgd", 0.025, 0.9, 3e-4)
    assert config.schedule == "constant" and config.label_smoothing == 0 and config.epochs == 1
    full = get_dataset("synthetic", split="train")
    held = balanced_indices(full.labels, 20, 3)
    assert len(seen["data"]) == len(full) - 20
    trained = {bytes(img.numpy()) for img in seen["data"].images}
    assert not any(bytes(full.images[i].numpy()) in trained for i in held)
    assert not ctx.warnings
    # a batch that is not proxy_batch's draw cannot be excluded, and says so
    other = ProxyContext(torch.randn_like(x), y, 10, seed=3)
    get_proxy(spec)(model, other)
    assert len(seen["data"]) == len(full) and any("not proxy_batch" in w for w in other.warnings)
    get_proxy("lga:epochs=1,dataset=synthetic,recipe=shared")(model, ProxyContext(x, y, 10))
    assert seen["config"].optimizer == "adamw"


@pytest.mark.parametrize("name", training_free_proxies())
def test_every_registered_proxy_is_finite_and_deterministic(name):
    space, arch, _ = tiny_vit()
    x = torch.randn(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    y = torch.arange(8) % 4
    (first,) = score_architecture(space, arch, [name], x, y, seed=2)
    (second,) = score_architecture(space, arch, [name], x, y, seed=2)
    assert math.isfinite(first.score), first
    assert first.score == second.score
