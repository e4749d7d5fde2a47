"""MeCo, ZiCo and AZ-NAS: known answers on hand-built nets, and a smoke run on every space."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from conftest import proxy_context
from vitnas.errors import ConfigError
from vitnas.models import tags
from vitnas.proxies import aznas, zico
from vitnas.proxies.base import PROXIES
from vitnas.proxies.scoring import score_architecture, score_model
from vitnas.proxies.spec import get_proxy
from vitnas.spaces import get_space

AZNAS = ["aznas_expressivity", "aznas_progressivity", "aznas_trainability", "aznas_complexity"]
NAMES = ["meco", "meco:opt_channels=8", "meco:layers=tagged,layout=channels", "zico", *AZNAS]


pytestmark = pytest.mark.usefixtures("one_thread")


ctx_for = proxy_context


def pointwise_conv(weight: torch.Tensor, bias: torch.Tensor | None = None) -> nn.Module:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], 1, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight[:, :, None, None])
        if bias is not None:
            conv.bias.copy_(bias)
    return nn.Sequential(tags.tag(conv, tags.CONV))


HADAMARD_8 = torch.tensor([[1.0 if bin(i & j).count("1") % 2 == 0 else -1.0 for j in range(8)]
                           for i in range(8)])


# --- MeCo -------------------------------------------------------------------------------------
# the hand-built nets below are read channel-major at their tagged layers (the package's earlier
# default); the authors' every-module reading is tested in test_proxies_faithful.py
CHANNELS = "meco:layers=tagged,layout=channels"


def test_meco_of_two_channels_with_correlation_one_over_root_two():
    # channels x1, x1 + x2 with x1 _|_ x2, zero mean, equal norm: rho = 1/sqrt(2), and the
    # 2 x 2 correlation matrix has eigenvalues 1 +- rho.
    x = HADAMARD_8[[1, 2]].reshape(1, 2, 2, 4)
    net = pointwise_conv(torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    raw = get_proxy(CHANNELS)(net, ctx_for(x)).raw
    assert raw == pytest.approx(1 - 1 / math.sqrt(2), abs=1e-12)


def test_meco_ignores_positive_scale_and_shift_of_channels():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 4, 4, generator=gen)
    weight = torch.randn(3, 3, generator=gen)
    plain = get_proxy(CHANNELS)(pointwise_conv(weight), ctx_for(x)).raw
    rescaled = pointwise_conv(weight * torch.tensor([[2.0], [0.5], [7.0]]), torch.randn(3))
    assert get_proxy(CHANNELS)(rescaled, ctx_for(x)).raw == pytest.approx(plain, rel=1e-6)
    assert 0 < plain < 1


def test_meco_opt_rescales_the_sampled_eigenvalue_by_channels_over_n():
    # four orthogonal zero-mean channels: P = I, so MeCo = 1 and MeCo_opt(n=2) = 4/2 x 1
    x = HADAMARD_8[[1, 2, 3, 4]].reshape(1, 4, 2, 4)
    net = pointwise_conv(torch.eye(4))
    for options, expected in (("", 1.0), (",opt_channels=2", 2.0), (",opt_channels=8", 1.0)):
        raw = get_proxy(CHANNELS + options)(net, ctx_for(x)).raw
        assert raw == pytest.approx(expected, abs=1e-12), options


def test_meco_sets_a_constant_channel_s_correlations_to_zero():
    x = torch.stack([HADAMARD_8[1], torch.ones(8)]).reshape(1, 2, 2, 4)
    assert get_proxy(CHANNELS)(pointwise_conv(torch.eye(2)), ctx_for(x)).raw == pytest.approx(0.0)


def test_meco_warns_when_a_layer_has_more_channels_than_tokens():
    space = get_space("autoformer-tiny-micro", img_size=16, patch_size=4)  # 16 tokens
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    (result,) = score_architecture(space, space.sample(0), [CHANNELS], x,
                                   torch.zeros(2).long())
    assert any("singular" in w for w in result.warnings)
    assert abs(result.raw) < 1e-8  # the exact value degenerates: every lambda_min is 0


def test_meco_options_are_checked():
    for spec in ("meco:layout=rows", "meco:layers=some", "meco:samples=0", "meco:opt_channels=1"):
        with pytest.raises(ConfigError):
            get_proxy(spec)


# --- ZiCo -------------------------------------------------------------------------------------
def test_zico_of_a_zero_linear_classifier_by_hand():
    # W = 0: p = (1/2, 1/2). Mini-batch 1 (x = (1, 0), y = 0): dL/dW = [[-1/2, 0], [1/2, 0]];
    # mini-batch 2 (x = (2, 0), y = 1): [[1, 0], [-1, 0]]. Column 0: mean|g| = std g = 3/4 for
    # both weights (ratio 1 each); column 1 never varies and is left out: ZiCo = log(2).
    head = tags.tag(nn.Linear(2, 2), tags.HEAD)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    x = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    ctx = ctx_for(x, torch.tensor([0, 1]))
    assert zico.ZiCo()(nn.Sequential(head), ctx).raw == pytest.approx(math.log(2.0), abs=1e-12)


def test_zico_sums_log_ratios_over_layers_and_skips_steady_ones():
    first = torch.tensor([[1.0, -1.0], [3.0, 1.0]])  # ratios 2/1 and 1/1 -> log 3
    steady = torch.ones(2, 5)  # std 0 everywhere: adds nothing
    assert zico.zico_of_gradients([first, steady]) == pytest.approx(math.log(3.0))
    assert zico.zico_of_gradients([first, first]) == pytest.approx(2 * math.log(3.0))


def test_zico_needs_two_mini_batches():
    with pytest.raises(ConfigError):
        get_proxy("zico:batches=1")
    head = nn.Sequential(tags.tag(nn.Linear(2, 2), tags.HEAD))
    with pytest.raises(ConfigError, match="mini-batches"):
        get_proxy("zico:batches=3")(head, ctx_for(torch.ones(2, 2)))


# --- AZ-NAS -----------------------------------------------------------------------------------
def test_expressivity_is_log_c_for_isotropic_features_and_zero_for_rank_one():
    isotropic = torch.cat([torch.eye(4), -torch.eye(4)])  # covariance I/4 after centring
    assert aznas.covariance_entropy(isotropic) == pytest.approx(math.log(4), abs=1e-12)
    line = torch.arange(6.0)[:, None] * torch.tensor([[1.0, 2.0, -1.0]])
    assert aznas.covariance_entropy(line) == pytest.approx(0.0, abs=1e-9)
    assert aznas.covariance_entropy(torch.ones(5, 3)) == 0.0


def test_progressivity_is_the_smallest_step():
    assert aznas.progressivity_of([1.0, 3.0, 4.0, 6.5]) == 1.0
    assert aznas.progressivity_of([2.0, 1.0]) == -1.0
    assert aznas.progressivity_of([2.0]) == -math.inf


@pytest.mark.parametrize("gain", [2.0, 0.5])
def test_trainability_of_a_scaling_block(gain):
    # one channel: M = gain x mean(v^2) = gain exactly, and -s - 1/s + 2 = -1/2 for s = 2 or 1/2
    f_in = torch.randn(3, 5, 1, requires_grad=True)
    score = aznas.trainability_of([f_in, gain * f_in], torch.Generator().manual_seed(0))
    assert score == pytest.approx(-0.5, abs=1e-5)


def test_trainability_skips_identity_blocks_and_compares_pooled_grids_by_unshuffling():
    f_in = torch.randn(2, 1, 2, 2, requires_grad=True)
    generator = torch.Generator().manual_seed(0)
    assert aznas.trainability_of([f_in, f_in * 1.0], generator) == -math.inf  # nothing scored
    # 2 x 2 sum pooling: every input pixel receives its window's sign, so the unshuffled
    # Jacobian estimate is the column (1, 1, 1, 1): sigma = 2, score -1/2
    pooled = F.avg_pool2d(f_in, 2) * 4
    assert aznas.trainability_of([f_in, pooled], generator) == pytest.approx(-0.5, abs=1e-5)


def test_aznas_aggregate_prefers_the_consistently_ranked_architecture():
    # ranks (1, 2, 3) and (3, 2, 1): a rank sum ties all three; the log aggregate picks the middle
    total = aznas.aznas_aggregate({"a": [1.0, 2.0, 3.0], "b": [30.0, 20.0, 10.0]})
    expected = [math.log(1 / 3), 2 * math.log(2 / 3), math.log(1 / 3)]
    assert total == pytest.approx(expected)
    assert int(np.argmax(total)) == 1
    # ties share the average rank; NaN ranks lowest; components can be picked
    tied = aznas.aznas_aggregate({"a": [5.0, 5.0, float("nan")], "b": [1, 2, 3]},
                                 components=["a"])
    assert tied == pytest.approx([math.log(2.5 / 3)] * 2 + [math.log(1 / 3)])
    with pytest.raises(ConfigError):
        aznas.aznas_aggregate({"a": [1.0], "b": [1.0, 2.0]})


def test_block_features_are_two_per_vit_block_and_one_per_nb201_unit():
    vit_space = get_space("autoformer-tiny-micro", img_size=16, patch_size=4)
    arch = vit_space.sample(0)
    model = vit_space.build(arch)
    with aznas.block_features(model) as features:
        model(torch.randn(2, 3, 16, 16))
    assert len(features) == 2 * len(model.blocks)
    nb201 = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    model = nb201.build(nb201.sample(0))
    with aznas.block_features(model) as features:
        model(torch.randn(2, 3, 8, 8))
    assert len(features) == 1 + 3 + 2  # stem, a cell per stage, two reductions
    with pytest.raises(ConfigError, match="residual blocks"):
        with aznas.block_features(nn.Linear(2, 2)):
            pass


def test_aznas_components_share_one_computation_and_match_separate_runs():
    space = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    arch = space.sample(1)
    x, y = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(1)), torch.arange(4)
    together = score_architecture(space, arch, AZNAS, x, y, seed=2)
    alone = [score_architecture(space, arch, [name], x, y, seed=2)[0] for name in AZNAS]
    assert [r.raw for r in together] == [r.raw for r in alone]
    # complexity is FLOPs per image: measured independently by torch's counter on the built model
    with FlopCounterMode(display=False) as counter:
        space.build(arch)(x[:1])
    assert together[-1].raw == counter.get_total_flops()


def test_aznas_complexity_of_a_model_without_a_space_is_its_flops_by_hand():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), tags.tag(nn.Linear(4, 2), tags.HEAD))
    x = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    ctx = proxy_context(x, torch.arange(5) % 2)
    # 2 x multiply-accumulates per image: 3 x 4 + 4 x 2 = 20 MACs
    assert get_proxy("aznas_complexity")(model, ctx).raw == 40


def test_aznas_in_registry_order_runs_the_model_once():
    space = get_space("nasbench201", channels=4, cells_per_stage=1, img_size=8)
    arch = space.sample(2)
    model = space.build(arch)
    calls = []
    model.register_forward_pre_hook(lambda module, inputs: calls.append(1))  # deep-copied along
    x = torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert list(aznas.PROXY_NAMES) == [n for n in PROXIES.names() if n.startswith("aznas_")]
    score_model(model, aznas.PROXY_NAMES, x, torch.arange(4), 10, space=space, arch=arch)
    assert len(calls) == 1


# --- every space ------------------------------------------------------------------------------
SPACES = {
    "vit": (("autoformer-tiny-micro", {"img_size": 16, "patch_size": 4}), 16),
    "pit": (("pit-tiny-micro", {"img_size": 16, "patch_size": 8}), 16),
    "nb201": (("nasbench201", {"channels": 4, "cells_per_stage": 1, "img_size": 8}), 8),
}


def test_every_peer_is_registered_higher_is_better_with_a_reference():
    for name in ("meco", "zico", *AZNAS):
        cls = PROXIES.get(name)
        assert cls.name == name and cls.direction == 1 and cls.reference


@pytest.mark.parametrize("which", sorted(SPACES))
def test_every_peer_is_finite_reproducible_and_seeded_on_every_space(which):
    (name, options), size = SPACES[which]
    space = get_space(name, **options)
    arch = space.sample(0)
    x = torch.randn(4, 3, size, size, generator=torch.Generator().manual_seed(0))
    y = torch.arange(4) % space.num_classes
    first = score_architecture(space, arch, NAMES, x, y, seed=3)
    again = score_architecture(space, arch, NAMES, x, y, seed=3)
    other = score_architecture(space, arch, ["zico", "aznas_trainability"], x, y, seed=4)
    for a, b in zip(first, again):
        assert math.isfinite(a.raw), (a.proxy, a.raw)
        assert a.raw == b.raw, a.proxy
    by_name = {r.proxy: r.raw for r in first}
    assert all(by_name[r.proxy] != r.raw for r in other)


def test_proxies_leave_a_model_they_are_handed_through_score_model_untouched():
    space = get_space("pit-tiny-micro", img_size=16, patch_size=8)
    model = space.build(space.sample(1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    score_model(model, NAMES, x, torch.arange(2), space.num_classes)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
