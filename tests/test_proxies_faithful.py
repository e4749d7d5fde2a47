"""The peers read as their references do: SWAP's repeated initialisations, MeCo's every-module
reading, and L-SWAG's two factors apart (its pattern term must move across architectures)."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import proxy_context
from vitnas.models import tags
from vitnas.models.vit import VisionTransformer
from vitnas.proxies.spec import get_proxy
from vitnas.proxies.swap import reinitialise

pytestmark = pytest.mark.usefixtures("one_thread")

ctx_for = proxy_context


def tiny_vit(depth: int, dim: int, seed: int = 0) -> VisionTransformer:
    torch.manual_seed(seed)
    return VisionTransformer(embed_dim=dim, depth=depth, num_heads=[2] * depth,
                             mlp_ratio=[2.0] * depth, img_size=16, patch_size=4, num_classes=4,
                             head_dim=None)


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 16, 16, generator=gen), torch.arange(n) % 4


# --- SWAP: the mean over re-drawn initialisations ----------------------------------------------
class FamilyInit(nn.Module):
    """A net whose family initialisation is its own: N(0, 1) weights and biases, so a re-draw
    that skipped ``_init_weights`` (``reset_parameters`` only) would give other patterns."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Linear(3, 8)
        self.act = nn.ReLU()
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.normal_(self.layer.weight)
        nn.init.normal_(self.layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.layer(x))


def test_swap_averages_single_init_scores_drawn_from_seed_plus_i():
    x = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    seed = 5
    torch.manual_seed(123)
    model = FamilyInit()
    # by hand: init 0 is the model as given, init i the family's routine under seed + i
    singles = []
    for i in range(4):
        drawn = copy.deepcopy(model)
        if i:
            torch.manual_seed(seed + i)
            drawn.layer.reset_parameters()
            drawn._init_weights()
        codes = (drawn.layer(x) > 0).T  # (units, samples)
        singles.append(len({tuple(row.tolist()) for row in codes}))
    assert len(set(singles)) > 1  # the draws differ, so the mean is not any one of them
    averaged = get_proxy("swap:inits=4")(copy.deepcopy(model), ctx_for(x, seed=seed)).raw
    assert averaged == pytest.approx(sum(singles) / 4)
    single = get_proxy("swap:inits=1")(copy.deepcopy(model), ctx_for(x, seed=seed)).raw
    assert single == singles[0] and averaged != single
    again = get_proxy("swap:inits=4")(copy.deepcopy(model), ctx_for(x, seed=seed)).raw
    assert again == averaged


def test_swap_defaults_are_the_reference_s_32_inits_and_thousands():
    config = get_proxy("swap").config
    assert (config.inits, config.param_unit) == (32, "thousands")


def test_reinitialise_is_seeded_and_reaches_every_layer_of_a_vit():
    model = tiny_vit(2, 16)
    first, second, other = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    reinitialise(first, 7)
    reinitialise(second, 7)
    reinitialise(other, 8)
    for (name, a), b, c, d in zip(first.named_parameters(), second.parameters(),
                                  other.parameters(), model.parameters()):
        assert torch.equal(a, b), name
        if a.std() > 0:  # LayerNorm gains and zero biases are constants of the init
            assert not torch.equal(a, c) and not torch.equal(a, d), name


# --- MeCo: the authors' reading by default -----------------------------------------------------
HADAMARD = torch.tensor([[1.0 if bin(i & j).count("1") % 2 == 0 else -1.0 for j in range(8)]
                         for i in range(8)])  # orthogonal rows; rows 1.. have zero mean


def test_meco_default_is_the_authors_reading_and_differs_from_the_channel_variant():
    x, y = batch(2)
    model = tiny_vit(2, 16)
    default = get_proxy("meco")(copy.deepcopy(model), ctx_for(x, y)).raw
    explicit = get_proxy("meco:layers=all,layout=authors")(copy.deepcopy(model), ctx_for(x, y))
    channels = get_proxy("meco:layers=tagged,layout=channels")(copy.deepcopy(model),
                                                                ctx_for(x, y))
    assert default == explicit.raw
    assert abs(default - channels.raw) > 1e-3
    # read channel-major, every micro-ViT layer has more channels than tokens: singular
    assert any("singular" in w for w in channels.warnings)


def test_meco_authors_reading_hooks_containers_and_keeps_conv_maps_channel_major():
    # channels x1, x1 + x2 (x1 _|_ x2): lambda_min = 1 - 1/sqrt(2) for the conv's output, and
    # the Sequential holding it outputs the same map, so the authors' sum counts it twice
    x = HADAMARD[[1, 2]].reshape(1, 2, 2, 4)
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0]])[:, :, None, None])
    net = nn.Sequential(tags.tag(conv, tags.CONV))
    term = 1 - 1 / math.sqrt(2)
    assert get_proxy("meco")(net, ctx_for(x)).raw == pytest.approx(2 * term, abs=1e-12)
    assert get_proxy("meco:layers=tagged")(net, ctx_for(x)).raw == pytest.approx(term, abs=1e-12)
    # position-major (layout=tokens) correlates the 8 positions over 2 channels instead
    tokens = get_proxy("meco:layers=tagged,layout=tokens")(net, ctx_for(x)).raw
    assert tokens != pytest.approx(term, abs=1e-6)


def test_meco_authors_reading_of_tokens_is_token_by_token():
    # one image of two tokens over 8 channels, x1 and x1 + x2 (x1 _|_ x2): the token x token
    # correlation has lambda_min 1 - 1/sqrt(2); read channel-major (8 variables, 2
    # observations) the correlation is singular and lambda_min is 0
    tokens = HADAMARD[[1, 1]] + torch.stack([torch.zeros(8), HADAMARD[2]])
    qkv = nn.Linear(8, 8, bias=False)
    with torch.no_grad():
        qkv.weight.copy_(torch.eye(8))
    net = nn.Sequential(tags.tag(qkv, tags.ATTN_QKV))
    x = tokens.unsqueeze(0)  # (B=1, N=2, C=8)
    term = 1 - 1 / math.sqrt(2)
    assert get_proxy("meco:layers=tagged")(net, ctx_for(x)).raw == pytest.approx(term)
    assert get_proxy("meco:layers=tagged,layout=tokens")(net, ctx_for(x)).raw == pytest.approx(
        term)
    channels = get_proxy("meco:layers=tagged,layout=channels")(net, ctx_for(x)).raw
    assert channels == pytest.approx(0.0, abs=1e-9)


# --- L-SWAG: Lambda and Psi apart --------------------------------------------------------------
def test_lswag_pattern_term_varies_across_architectures():
    """Psi must carry architecture information of its own: on four micro ViTs of different
    depth and width scored on one batch it spreads by over half its largest value at the
    default band, and over every layer it grows with depth and width (an implementation that
    read one fixed layer, or saturated at 2^16 patterns, would not)."""
    x, y = batch(16)
    shapes = ((1, 16), (2, 16), (2, 32), (4, 32))
    for spec in ("lswag", "lswag:layers=0-100"):
        proxy = get_proxy(spec)
        terms = [proxy.terms(tiny_vit(depth, dim), ctx_for(x, y, classes=4))
                 for depth, dim in shapes]
        psi = [t.expressivity for t in terms]
        assert all(math.isfinite(t.trainability) and t.trainability > 0 for t in terms)
        assert (max(psi) - min(psi)) / max(psi) > 0.5, (spec, psi)
    assert psi[0] < psi[1] < psi[2] < psi[3], psi  # every layer: more and wider, more patterns
    model = tiny_vit(2, 32)
    proxy = get_proxy("lswag")
    whole = proxy(copy.deepcopy(model), ctx_for(x, y, classes=4)).raw
    parts = proxy.terms(copy.deepcopy(model), ctx_for(x, y, classes=4))
    assert whole == pytest.approx(parts.trainability * parts.expressivity)


def test_lswag_default_band_is_the_dev_choice_of_the_band_study():
    study = Path(__file__).resolve().parents[1] / "results/lswag_band/band_study.json"
    if not study.is_file():
        pytest.skip("results/lswag_band/band_study.json is not in this checkout")
    assert get_proxy("lswag").config.layers == json.loads(study.read_text())["default_band"]
