"""The classic zero-cost proxies: they run, are deterministic, and give known answers."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vitnas.proxies.zero_cost as zc
from vitnas.errors import ConfigError
from vitnas.flops import count_params, measured_flops
from vitnas.proxies.base import FREE, PROXIES, ProxyContext
from vitnas.proxies.scoring import score_architecture, score_model
from vitnas.proxies.spec import get_proxy
from vitnas.spaces import get_space

NAMES = ["synflow", "snip", "grasp", "fisher", "grad_norm", "jacov", "nwot", "zen", "l2_norm",
         "params", "flops"]
NB201_MIXED = (
    "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|avg_pool_3x3~0|nor_conv_3x3~1|none~2|"
)
NB201_EMPTY = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


pytestmark = pytest.mark.usefixtures("one_thread")


def batch(n: int, size: int, classes: int = 10, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=gen), torch.arange(n) % classes


@pytest.fixture(scope="module")
def vit():
    space = get_space("autoformer-tiny-micro", img_size=16, patch_size=4)
    return space, space.sample(0), *batch(8, 16)


@pytest.fixture(scope="module")
def nb201():
    space = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    return space, space.from_json(NB201_MIXED), *batch(8, 8)


def ctx_for(inputs, labels, classes=10, seed=0):
    return ProxyContext(inputs, labels, classes, seed)


def test_every_proxy_is_registered_and_higher_is_better():
    for name in NAMES:
        cls = PROXIES.get(name)
        assert cls.name == name
        assert cls.direction == 1
        assert cls.reference
    assert PROXIES.get("params").cost == FREE and PROXIES.get("flops").cost == FREE


@pytest.mark.parametrize("which", ["vit", "nb201"])
def test_every_proxy_is_finite_and_bit_reproducible(which, request):
    space, arch, x, y = request.getfixturevalue(which)
    first = score_architecture(space, arch, NAMES, x, y, seed=3)
    again = score_architecture(space, arch, NAMES, x, y, seed=3)
    other = score_architecture(space, arch, ["snip", "zen"], x, y, seed=4)
    for a, b in zip(first, again):
        assert isinstance(a.raw, float) and math.isfinite(a.raw), (a.proxy, a.raw)
        assert a.raw == b.raw, a.proxy  # bit-identical
        assert a.score == PROXIES.get(a.proxy).direction * a.raw
        assert a.warnings == ()
    by_name = {r.proxy: r.raw for r in first}
    assert all(by_name[r.proxy] != r.raw for r in other)  # the seed matters


def test_proxy_results_do_not_depend_on_the_global_rng(nb201):
    space, arch, x, y = nb201
    torch.manual_seed(123)
    a = score_architecture(space, arch, ["zen", "grasp"], x, y, seed=0)
    torch.manual_seed(456)
    b = score_architecture(space, arch, ["zen", "grasp"], x, y, seed=0)
    assert [r.raw for r in a] == [r.raw for r in b]


def test_params_and_flops_use_the_analytic_counts(vit, nb201):
    for space, arch, x, y in (vit, nb201):
        results = score_architecture(space, arch, ["params", "flops"], x, y)
        assert results[0].raw == space.params(arch)
        assert results[1].raw == space.flops(arch)
        model = space.build(arch)
        # without a space: count the model, measure the FLOPs
        p, f = score_model(model, ["params", "flops"], x, y, space.num_classes)
        assert p.raw == count_params(model)
        assert f.raw == measured_flops(model, x[:1])


def linear_net(bias: bool = False) -> nn.Module:
    net = nn.Sequential(nn.Linear(2, 2, bias=bias), nn.Linear(2, 1, bias=bias))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0], [3.0, 0.5]]))
        net[1].weight.copy_(torch.tensor([[-1.0, 2.0]]))
    return net


def test_synflow_of_a_two_layer_linear_net_by_hand():
    # R = 1^T |W2| |W1| 1 = [1, 2] . [3, 3.5] = 10; R is degree-1 homogeneous in each layer, so
    # sum |W1 * dR/dW1| = sum |W2 * dR/dW2| = R and synflow = 2R = 20.
    ctx = ctx_for(torch.randn(4, 2), torch.zeros(4, dtype=torch.long), 1)
    assert zc.Synflow()(linear_net(), ctx).raw == pytest.approx(20.0, abs=1e-12)
    log = get_proxy("synflow:log=true")(linear_net(), ctx)
    assert log.raw == pytest.approx(math.log(20.0))


def test_synflow_bypasses_batchnorm_by_default():
    def net(with_bn: bool) -> nn.Module:
        torch.manual_seed(0)
        layers = [nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 1)]
        if with_bn:
            layers.insert(1, nn.BatchNorm2d(4))
        return nn.Sequential(*layers, nn.Flatten())

    ctx = ctx_for(torch.randn(2, 3, 5, 5), torch.zeros(2, dtype=torch.long), 18)
    plain = zc.Synflow()(net(False), ctx).raw
    assert zc.Synflow()(net(True), ctx).raw == pytest.approx(plain, rel=1e-12)
    assert get_proxy("synflow:bn=true")(net(True), ctx).raw != pytest.approx(plain, rel=1e-3)


def test_l2_norm_of_a_known_net_counts_layer_weights_only():
    net = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2), nn.Conv1d(1, 1, 2, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))  # norm 5
        net[0].bias.fill_(100.0)  # ignored
        net[2].weight.copy_(torch.tensor([[[6.0, 8.0]]]))  # norm 10
    ctx = ctx_for(torch.randn(2, 2), torch.zeros(2, dtype=torch.long), 2)
    assert zc.L2Norm()(net, ctx).raw == pytest.approx(15.0)


def test_gradient_proxies_vanish_when_the_output_ignores_the_weights():
    # every cell edge is 'none': the cells output zeros, so the logits are the head's bias
    space = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    x, y = batch(8, 8)
    results = score_architecture(
        space, space.from_json(NB201_EMPTY), ["snip", "grad_norm", "grasp", "synflow"], x, y
    )
    for r in results:
        assert r.raw == 0.0, r.proxy


def test_degenerate_networks_give_non_finite_values_with_warnings_not_errors():
    space = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    x, y = batch(8, 8)
    jacov, nwot = score_architecture(space, space.from_json(NB201_EMPTY), ["jacov", "nwot"], x, y)
    assert math.isnan(jacov.raw) and jacov.warnings  # constant Jacobian rows
    assert nwot.raw == -math.inf and nwot.warnings  # every code is identical: singular K


def test_grasp_equals_minus_theta_hessian_gradient_by_explicit_hessian():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    x, y = torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1])
    weights = [net[0].weight, net[2].weight]
    shapes = [w.shape for w in weights]
    flat = torch.cat([w.detach().flatten() for w in weights])

    def loss_of(vector):
        w1 = vector[: shapes[0].numel()].view(shapes[0])
        w2 = vector[shapes[0].numel():].view(shapes[1])
        hidden = torch.tanh(F.linear(x, w1, net[0].bias))
        return F.cross_entropy(F.linear(hidden, w2, net[2].bias), y)

    g = torch.autograd.functional.jacobian(loss_of, flat)
    h = torch.autograd.functional.hessian(loss_of, flat)
    expected = float(-(flat * (h @ g)).sum())
    got = zc.Grasp()(net, ctx_for(x, y, 3)).raw
    assert got == pytest.approx(expected, rel=1e-4)


def test_snip_and_grad_norm_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x, y = torch.randn(6, 3), torch.tensor([0, 1] * 3)
    F.cross_entropy(net(x), y).backward()
    layers = [net[0], net[2]]
    snip = sum(float((m.weight * m.weight.grad).abs().sum().detach()) for m in layers)
    norm = sum(float(m.weight.grad.norm()) for m in layers)
    net.zero_grad()
    assert zc.Snip()(net, ctx_for(x, y, 2)).raw == pytest.approx(snip, rel=1e-6)
    assert zc.GradNorm()(net, ctx_for(x, y, 2)).raw == pytest.approx(norm, rel=1e-6)


def test_fisher_layers_mode_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 16, 2)
    )
    x, y = torch.randn(5, 2, 4, 4), torch.tensor([0, 1, 0, 1, 1])
    conv_out = net[0](x)
    conv_out.retain_grad()
    logits = net[3](net[2](net[1](conv_out)))
    logits.retain_grad()
    F.cross_entropy(logits, y).backward()
    with torch.no_grad():
        conv = 0.5 * (conv_out * conv_out.grad).sum(dim=(2, 3)).pow(2).mean(0)  # per channel
        head = 0.5 * (logits * logits.grad).pow(2).mean(0)
    expected = float(conv.sum() * 2 * 3 * 3 + head.sum() * 48)  # NASLib's fan-in weighting
    got = get_proxy("fisher:site=layers")(net, ctx_for(x, y, 2)).raw
    assert got == pytest.approx(expected, rel=1e-5)
    # auto picks 'layers' for a network without MLP blocks
    assert zc.Fisher()(net, ctx_for(x, y, 2)).raw == pytest.approx(expected, rel=1e-5)


def test_fisher_on_a_vit_uses_the_mlp_hidden_activations(vit):
    space, arch, x, y = vit
    model = space.build(arch)
    hidden = []

    def keep(module, args, out):
        out.retain_grad()
        hidden.append(out)

    for block in model.blocks:
        block.mlp.act.register_forward_hook(keep)
    F.cross_entropy(model(x), y).backward()
    with torch.no_grad():
        expected = sum(float(0.5 * (h * h.grad).sum(dim=1).pow(2).mean(0).sum()) for h in hidden)
    got = zc.Fisher()(space.build(arch), ctx_for(x, y)).raw
    assert got == pytest.approx(expected, rel=1e-5)
    assert get_proxy("fisher:site=layers")(space.build(arch), ctx_for(x, y)).raw != got


def test_jacov_of_a_linear_map_has_rank_one_correlation():
    # f(x) = W x: every sample's Jacobian is W^T 1, so C is all ones with eigenvalues {N, 0, ...}
    torch.manual_seed(0)
    net = nn.Linear(5, 3, bias=False)
    n, k = 6, 1e-5
    ctx = ctx_for(torch.randn(n, 5), torch.zeros(n, dtype=torch.long), 3)
    expected = -((math.log(n + k) + 1 / (n + k)) + (n - 1) * (math.log(k) + 1 / k))
    assert zc.Jacov()(net, ctx).raw == pytest.approx(expected, rel=1e-6)


def test_nwot_known_kernel():
    # identity + ReLU: codes [1,1], [1,0], [0,0]; K = units - Hamming = [[2,1,0],[1,2,1],[0,1,2]]
    net = nn.Sequential(nn.Identity(), nn.ReLU())
    x = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]])
    ctx = ctx_for(x, torch.zeros(3, dtype=torch.long), 2)
    assert zc.Nwot()(net, ctx).raw == pytest.approx(math.log(4.0))


def test_nwot_is_higher_with_more_distinct_activation_patterns():
    torch.manual_seed(0)
    diverse = nn.Sequential(nn.Linear(8, 64), nn.ReLU())
    repeated = nn.Sequential(nn.Linear(8, 64), nn.ReLU())
    with torch.no_grad():  # 64 units made of 8 distinct ones: fewer distinct patterns
        repeated[0].weight.copy_(diverse[0].weight[:8].repeat(8, 1))
        repeated[0].bias.copy_(diverse[0].bias[:8].repeat(8))
    ctx = ctx_for(torch.randn(16, 8), torch.zeros(16, dtype=torch.long), 64)
    assert zc.Nwot()(diverse, ctx).raw > zc.Nwot()(repeated, ctx).raw


def zen_expressivity(space, arch, x):
    """Zen's expressivity term recomputed: same seed, same Gaussian weights and inputs."""
    torch.manual_seed(0)
    again = space.build(arch)
    zc._gaussian_init(again)
    a, b = torch.randn(x.shape), torch.randn(x.shape)
    with torch.no_grad():
        diff = (again.forward_features(a) - again.forward_features(a + 0.01 * b)).abs()
    return math.log(float(diff.double().reshape(len(x), -1).sum(1).mean()))


def test_zen_bn_term_and_vit_without_bn(nb201, vit):
    space, arch, x, y = nb201
    model = space.build(arch)
    with_bn = zc.Zen()(model, ctx_for(x, y)).raw
    bn_term = sum(0.5 * math.log(float(m.running_var.double().mean()))
                  for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn_term != 0.0 and math.isfinite(with_bn)
    assert with_bn == pytest.approx(zen_expressivity(space, arch, x) + bn_term, rel=1e-6)
    # a ViT has no BatchNorm: nothing is added, the score is the expressivity term alone
    vspace, varch, vx, vy = vit
    vmodel = vspace.build(varch)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in vmodel.modules())
    score = zc.Zen()(vmodel, ctx_for(vx, vy)).raw
    assert score == pytest.approx(zen_expressivity(vspace, varch, vx), rel=1e-6)


def test_zen_without_forward_features_warns_and_uses_the_output():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 4))
    ctx = ctx_for(torch.randn(4, 3, 2, 2), torch.zeros(4, dtype=torch.long), 4)
    result = zc.Zen()(net, ctx)
    assert math.isfinite(result.raw) and any("forward_features" in w for w in result.warnings)


def test_options_parse_and_bad_options_are_rejected():
    assert get_proxy("zen:mixup_gamma=0.1,repeat=2").config == zc.ZenConfig(0.1, True, 2)
    assert get_proxy("zen:mixup_gamma=0.1").spec == "zen:mixup_gamma=0.1"
    for spec in ("fisher:site=tokens", "zen:repeat=0", "jacov:k=0", "grasp:temperature=-1",
                 "snip:foo=1"):
        with pytest.raises(ConfigError):
            get_proxy(spec)


def test_proxies_run_on_a_pit_model():
    space = get_space("pit-tiny-micro")
    arch = space.sample(0)
    x, y = batch(4, space.img_size)
    for r in score_architecture(space, arch, NAMES, x, y):
        assert math.isfinite(r.raw), (r.proxy, r.warnings)
