"""The published ViT peers (AutoProxA, token entropy, L-SWAG, SWAP): known answers, smoke runs."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from conftest import proxy_context
from vitnas.errors import ConfigError
from vitnas.models import tags
from vitnas.proxies.autoprox import autoprox_score
from vitnas.proxies.base import PROXIES
from vitnas.proxies.lswag import gradient_term, parse_band, select_band
from vitnas.proxies.scoring import score_architecture
from vitnas.proxies.spec import get_proxy
from vitnas.proxies.swap import count_patterns, pattern_keys
from vitnas.proxies.token_entropy import token_entropy
from vitnas.spaces import get_space

PEERS = ["autoprox", "token_entropy", "lswag", "swap"]
LOG_2PI_E = math.log(2 * math.pi * math.e)
W = torch.tensor([[0.0, 1.0], [2.0, 3.0]])  # min-max normalised: [[0, 1/3], [2/3, 1]]
W_NORM = math.sqrt(14 / 9)


pytestmark = pytest.mark.usefixtures("one_thread")


ctx_for = proxy_context


def linear(weight: torch.Tensor, role: str | None = None) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
    with torch.no_grad():
        layer.weight.copy_(weight)
    return tags.tag(layer, role) if role else layer


def test_peers_are_registered_with_direction_cost_and_reference():
    for name in PEERS:
        cls = PROXIES.get(name)
        assert cls.name == name and cls.direction == 1 and cls.reference
    for spec in ("lswag:layers=80-20", "lswag:splits=1", "lswag:gradient=mean", "swap:sigma=0",
                 "token_entropy:sites=qkv+mlp", "token_entropy:estimator=knn",
                 "autoprox:t2=bias", "autoprox:pairing=outer", "swap:unit=token", "swap:inits=0",
                 "swap:param_unit=billions"):
        with pytest.raises(ConfigError):
            get_proxy(spec)


# --- AutoProxA ---------------------------------------------------------------------------------
def test_autoprox_genotype_on_hand_values():
    # || minmax(W) ||_F + mean sqrt(sigmoid(0)) = sqrt(14/9) + sqrt(1/2)
    assert autoprox_score([W], [torch.zeros(3)]) == pytest.approx(W_NORM + math.sqrt(0.5))
    # min-max normalisation makes the weight branch blind to a positive affine map
    assert autoprox_score([5 * W - 7], [torch.zeros(1)]) == pytest.approx(W_NORM + math.sqrt(0.5))


def test_autoprox_zip_pairs_layer_by_layer_and_drops_the_extra_layers():
    other = torch.tensor([[0.0, 1.0, 0.0, 0.0]])  # normalised Frobenius norm 1
    big = torch.full((2,), 50.0)  # sqrt(sigmoid(50)) = 1
    assert autoprox_score([W, other], [torch.zeros(1)]) == pytest.approx(W_NORM + math.sqrt(0.5))
    separate = autoprox_score([W, other], [torch.zeros(1), big], pairing="separate")
    assert separate == pytest.approx((W_NORM + 1) / 2 + (math.sqrt(0.5) + 1) / 2)


def test_autoprox_on_a_net_whose_norm_gradient_is_zero():
    # a zero head makes dL/d(LayerNorm output) = 0: only the first weight pairs with the one norm
    model = nn.Sequential(linear(W), nn.LayerNorm(2), linear(torch.zeros(2, 2), tags.HEAD))
    raw = get_proxy("autoprox")(model, ctx_for(torch.randn(4, 2))).raw
    assert raw == pytest.approx(W_NORM + math.sqrt(0.5))


# --- token entropy ------------------------------------------------------------------------------
X = torch.tensor([[1.0, 2.0], [-1.0, -2.0], [1.0, -2.0], [-1.0, 2.0]])  # cov diag(4/3, 16/3)


def test_token_entropy_estimators_on_a_known_covariance():
    gaussian = 0.5 * (2 * LOG_2PI_E + math.log(4 / 3 * 16 / 3))
    assert token_entropy(X, "gaussian", ridge=0) == pytest.approx(gaussian)
    assert token_entropy(X, "diagonal", ridge=0) == pytest.approx(gaussian)
    spectral = -(0.2 * math.log(0.2) + 0.8 * math.log(0.8))
    assert token_entropy(X, "spectral") == pytest.approx(spectral)


def test_token_entropy_scaling_shifts_gaussian_by_d_log_c_and_leaves_spectral():
    tokens = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    shift = token_entropy(10 * tokens, ridge=0) - token_entropy(tokens, ridge=0)
    assert shift == pytest.approx(3 * math.log(10))
    scaled = token_entropy(10 * tokens, "spectral")
    assert scaled == pytest.approx(token_entropy(tokens, "spectral"))


def test_token_entropy_reads_the_tagged_site_tokens():
    model = nn.Sequential(linear(torch.eye(2), tags.ATTN_QKV))  # the qkv output is the input
    tokens = X.unsqueeze(0)  # (B=1, N=4, D=2)
    raw = get_proxy("token_entropy:sites=qkv,ridge=0")(model, ctx_for(tokens)).raw
    assert raw == pytest.approx(token_entropy(X, ridge=0))


# --- SWAP ---------------------------------------------------------------------------------------
def swap_net() -> nn.Module:
    return nn.Sequential(linear(torch.tensor([[1.0], [-1.0], [1.0], [2.0]])), nn.ReLU())


def test_swap_counts_distinct_unit_patterns_over_samples():
    # samples x = 1, -1: unit patterns (1,0), (0,1), (1,0), (1,0) -> two distinct
    # (inits=1: the hand-set weights are scored as they are, not re-drawn)
    x = torch.tensor([[1.0], [-1.0]])
    assert get_proxy("swap:inits=1")(swap_net(), ctx_for(x)).raw == 2
    # a second, identical activation layer adds units but no new pattern
    doubled = nn.Sequential(*swap_net(), nn.ReLU())
    assert get_proxy("swap:inits=1")(doubled, ctx_for(x)).raw == 2


def test_swap_size_regulariser_is_a_gaussian_in_thousands_of_params_by_default():
    # 4 parameters: 0.004 thousand (the reference code's unit) or 4e-6 million
    x = torch.tensor([[1.0], [-1.0]])
    raw = get_proxy("swap:inits=1,mu=0.005,sigma=1e-6")(swap_net(), ctx_for(x)).raw
    assert raw == pytest.approx(2 * math.exp(-1))  # (0.004 - 0.005)^2 / 1e-6 = 1
    raw = get_proxy("swap:inits=1,mu=1,sigma=0.5,param_unit=millions")(swap_net(), ctx_for(x)).raw
    assert raw == pytest.approx(2 * math.exp(-((4e-6 - 1) ** 2) / 0.5))


def test_swap_channel_units_run_over_tokens_and_position_units_saturate():
    layer = nn.Linear(1, 4)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.copy_(torch.tensor([0.0, -2.0, -4.0, 5.0]))
    model = nn.Sequential(layer, nn.ReLU())
    tokens = torch.tensor([[[1.0], [3.0], [5.0]]])  # one image, three tokens
    # channel patterns over the tokens: 111, 011, 001, 111 -> three distinct
    by_channel = get_proxy("swap:unit=channel,inits=1")(model, ctx_for(tokens))
    assert by_channel.raw == 3 and not by_channel.warnings
    # twelve one-bit position units can only show 2^1 patterns, and the proxy says so
    result = get_proxy("swap:inits=1")(model, ctx_for(tokens))
    assert result.raw == 2 and "saturated" in " ".join(result.warnings)


def test_swap_channel_units_of_a_feature_map_run_over_its_positions():
    # channels x, -x and 1 over the six positions: 101010, 010101, 111111 -> three distinct
    # (reading a (B, C, H, W) map without moving channels last would mix them up)
    conv = nn.Conv2d(1, 3, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.0, 0.0, 1.0]))
    x = torch.tensor([[[[1.0, -1.0, 2.0], [-2.0, 3.0, -3.0]]]])
    result = get_proxy("swap:unit=channel,inits=1")(nn.Sequential(conv, nn.ReLU()), ctx_for(x))
    assert result.raw == 3


def test_swap_is_saturated_only_when_every_initialisation_is():
    # one sample: the built weights show both patterns (2 = 2^1), the re-drawn init fewer,
    # so the mean 1.5 is below the ceiling and nothing is said
    layer = nn.Linear(1, 2)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.copy_(torch.tensor([5.0, -5.0]))
    result = get_proxy("swap:inits=2")(nn.Sequential(layer, nn.ReLU()),
                                      ctx_for(torch.tensor([[1.0]]), seed=0))
    assert result.raw == 1.5
    assert not any("saturat" in warning for warning in result.warnings)


def test_swap_pattern_keys_tell_apart_patterns_longer_than_one_word():
    codes = torch.zeros(70, 3, dtype=torch.bool)
    codes[69, 1] = True  # units 0 and 2 agree; unit 1 differs only at sample 70
    assert count_patterns([pattern_keys(codes)]) == 2
    assert count_patterns([pattern_keys(torch.eye(4, dtype=torch.bool))]) == 4


def test_swap_patterns_of_different_lengths_are_different_patterns():
    # a PiT stage with fewer tokens gives shorter channel patterns; all-zero of length 3 and of
    # length 5 are two patterns, and the 70-bit block needs a second key word
    short, long_ = torch.zeros(3, 2, dtype=torch.bool), torch.zeros(5, 1, dtype=torch.bool)
    assert count_patterns([pattern_keys(short), pattern_keys(long_)]) == 2
    assert count_patterns([pattern_keys(short), pattern_keys(torch.zeros(70, 1).bool())]) == 2


def test_swap_count_matches_a_set_of_patterns_over_mixed_lengths():
    # the flat one-word path and the row-wise path agree with counting tuples in a set
    generator = torch.Generator().manual_seed(0)
    blocks = [torch.rand(bits, units, generator=generator) > 0.5
              for bits, units in ((3, 40), (5, 9), (3, 17), (70, 12), (70, 5), (62, 30))]
    blocks.append(blocks[0].clone())  # a repeated block adds nothing
    expected = {(b.shape[0], *map(bool, column)) for b in blocks for column in b.T.tolist()}
    assert count_patterns([pattern_keys(b) for b in blocks]) == len(expected)
    assert count_patterns([pattern_keys(torch.zeros(4, 0, dtype=torch.bool))]) == 0


# --- L-SWAG -------------------------------------------------------------------------------------
def test_lswag_gradient_term_drops_the_mean_and_skips_constant_weights():
    grads = [torch.tensor([[1.0, 2.0, 5.0], [2.0, 2.0, 3.0]])]  # sigma = 0.5, 0, 1
    assert gradient_term(grads) == pytest.approx(math.log(1 / 0.5 + 1 / 1))
    assert gradient_term(grads, "zico") == pytest.approx(math.log(1.5 / 0.5 + 4 / 1))


def test_lswag_layer_band_cuts_by_percent_of_depth():
    assert select_band(list(range(10)), parse_band("50-100")) == [5, 6, 7, 8, 9]
    assert select_band(list(range(4)), parse_band("0-30")) == [0, 1]
    with pytest.raises(ConfigError):
        parse_band("50")


def test_lswag_by_hand_on_a_two_unit_network():
    # x -> Linear(1, 2) [1, -1] -> ReLU -> Linear(2, 2) = 0, batch x = 1, 2, -1, -3, labels
    # 0, 1, 0, 1, two chunks of two. The zero head makes p = (1/2, 1/2), so the head's gradient
    # is mean_n (p - onehot(y_n)) h_n^T: chunk 1 (h = (1,0), (2,0)) [[.25, 0], [-.25, 0]],
    # chunk 2 (h = (0,1), (0,3)) [[0, .5], [0, -.5]]. Sigma across the chunks is |a - b| / 2:
    # .125, .25, .125, .25, so Lambda = log(8 + 4 + 8 + 4); the first layer's gradient is 0
    # (behind a zero head) and is skipped. Psi: the ReLU's units have the patterns 1100 and 0011
    # over the batch: 2. L-SWAG = 2 log 24; with ZiCo's mean |g| / sigma = 1 per weight: 2 log 4.
    first, head = nn.Linear(1, 2, bias=False), nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        head.weight.zero_()
    model = nn.Sequential(first, nn.ReLU(), tags.tag(head, tags.HEAD))
    x, y = torch.tensor([[1.0], [2.0], [-1.0], [-3.0]]), torch.tensor([0, 1, 0, 1])
    assert get_proxy("swap:inits=1")(model, ctx_for(x)).raw == 2
    assert get_proxy("lswag:splits=2")(model, ctx_for(x, y)).raw == pytest.approx(
        2 * math.log(24))
    assert get_proxy("lswag:splits=2,gradient=zico")(model, ctx_for(x, y)).raw == pytest.approx(
        2 * math.log(4))


# --- every space --------------------------------------------------------------------------------
@pytest.mark.parametrize("name, options", [
    ("autoformer-tiny-micro", {"img_size": 16, "patch_size": 4}),
    ("pit-tiny-micro", {"img_size": 16, "patch_size": 8}),
    ("nasbench201", {"channels": 4, "cells_per_stage": 1, "img_size": 8}),
])
def test_peers_run_deterministically_on_every_space(name, options):
    space = get_space(name, **options)
    arch = space.sample(0)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(8, 3, space.img_size, space.img_size, generator=gen), torch.arange(8) % 10
    # PiT's stages give channel patterns of two lengths; three initialisations (not SWAP's 32)
    # keep the re-drawing of every family's weights in the test at a tenth of the time
    proxies = [p for p in PEERS if p != "swap"] + ["swap:inits=3", "swap:unit=channel,inits=3"]
    first = score_architecture(space, arch, proxies, x, y, seed=3)
    again = score_architecture(space, arch, proxies, x, y, seed=3)
    for a, b in zip(first, again):
        unexpected = [w for w in a.warnings if "saturated" not in w]
        assert math.isfinite(a.raw) and not unexpected, (name, a.proxy, a.warnings)
        assert a.raw == b.raw, (name, a.proxy)
