import json
import random

import pytest
import torch

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import count_params, measured_flops
from vitnas.models import tags
from vitnas.models.segmentation import SegmentationModel
from vitnas.models.swin import PatchMerging, WindowAttention
from vitnas.proxies.scoring import score_model
from vitnas.spaces import get_space, list_spaces

S3_T = {"depth": [2, 2, 6, 2], "embed_dim": [96, 192, 384, 768], "mlp_ratio": [4, 4, 4, 4],
        "num_heads": [3, 6, 12, 24], "window_size": [7, 7, 14, 7]}
SWIN_T = {**S3_T, "window_size": [7, 7, 7, 7]}
SWIN_S = {**SWIN_T, "depth": [2, 2, 18, 2]}


def smallest(space):
    """The architecture taking the first choice of every gene (the cheapest, for fast tests)."""
    spec = space.spec
    return space.from_json({
        "depth": [d[0] for d in spec.depths], "embed_dim": [w[0] for w in spec.embed_dims],
        "mlp_ratio": [spec.mlp_ratios[0]] * 4, "num_heads": [h[0] for h in spec.num_heads],
        "window_size": [spec.window_sizes[0]] * 4,
    })


def naive_window_attention(attn: WindowAttention, x: torch.Tensor, height: int, width: int):
    """Global attention over the real tokens where a pair may attend iff it falls in the same
    window of the partition displaced by ``shift`` (no roll, no padding, no window tensors);
    the bias is the table's entry for the pair's offset."""
    w, s, heads, hd = attn.window, attn.shift, attn.num_heads, attn.head_dim
    batch, n, _ = x.shape
    q, k, v = attn.qkv(x).reshape(batch, n, 3, heads, hd).permute(2, 0, 3, 1, 4)
    logits = (q * hd**-0.5) @ k.transpose(-2, -1)  # (B, heads, N, N)
    coords = [(i // width, i % width) for i in range(n)]
    allowed = torch.zeros(n, n, dtype=torch.bool)
    bias = torch.zeros(heads, n, n)
    for i, (ri, ci) in enumerate(coords):
        for j, (rj, cj) in enumerate(coords):
            if (ri - s) // w == (rj - s) // w and (ci - s) // w == (cj - s) // w:
                allowed[i, j] = True
                row = (ri - rj + w - 1) * (2 * w - 1) + (ci - cj + w - 1)
                bias[:, i, j] = attn.relative_position_bias_table[row]
    logits = (logits + bias).masked_fill(~allowed, float("-inf")).softmax(dim=-1)
    out = (logits @ v).transpose(1, 2).reshape(batch, n, heads * hd)
    return attn.proj(out)


def window_attention(window, shift, seed=0):
    torch.manual_seed(seed)
    attn = WindowAttention(dim=8, num_heads=2, head_dim=4, window=window, shift=shift)
    torch.nn.init.normal_(attn.relative_position_bias_table)  # make the bias matter
    return attn


@pytest.mark.parametrize(
    "height, width, window, shift",
    [(7, 7, 4, 2), (5, 5, 3, 1), (6, 6, 3, 1), (5, 7, 3, 1), (7, 7, 4, 0), (3, 3, 2, 1)],
)
def test_window_attention_matches_explicitly_masked_global_attention(height, width, window, shift):
    attn = window_attention(window, shift)
    x = torch.randn(2, height * width, 8)
    with torch.no_grad():
        assert torch.allclose(attn(x, (height, width)),
                              naive_window_attention(attn, x, height, width), atol=1e-5)


def test_shift_mask_keeps_wrapped_regions_apart():
    # 4x4 map, window 2, shift 1: the roll puts tokens (0, 0) and (3, 3) in one window, but
    # (0, 0) is alone in its shifted region and must not see (3, 3).
    attn = window_attention(2, 1)
    x = torch.randn(1, 16, 8)
    nudged = x.clone()
    nudged[:, 15] += 1.0
    with torch.no_grad():
        before, after = attn(x, (4, 4)), attn(nudged, (4, 4))
    assert torch.allclose(before[:, 0], after[:, 0], atol=1e-6)
    assert not torch.allclose(before[:, 15], after[:, 15])
    unshifted = window_attention(2, 0)
    with torch.no_grad():  # without the shift (3, 3) only shares a window with (2..3, 2..3)
        changed = (unshifted(x, (4, 4)) - unshifted(nudged, (4, 4))).abs().sum(-1)[0] > 1e-6
    assert changed.nonzero().flatten().tolist() == [10, 11, 14, 15]


def test_padded_keys_do_not_reach_real_tokens():
    # 5x5 map, window 4: the bottom-right window holds one real token and 15 padded ones.
    # With padding masked it attends to itself only, so its output is proj(v).
    attn = window_attention(4, 0)
    x = torch.randn(1, 25, 8)
    with torch.no_grad():
        out = attn(x, (5, 5))
        v = attn.qkv(x)[:, 24, 16:]  # (1, heads*head_dim): the v part of qkv
        assert torch.allclose(out[:, 24], attn.proj(v), atol=1e-6)


def test_patch_merging_pads_odd_maps():
    torch.manual_seed(0)
    merge = PatchMerging(dim=4, out_dim=6)
    x = torch.randn(1, 25, 4)
    with torch.no_grad():
        out, size = merge(x, (5, 5))
        assert size == (3, 3) and out.shape == (1, 9, 6)
        corner = torch.cat([x[:, 24], torch.zeros(1, 12)], dim=-1)  # (4, 4) then 3 zero pads
        assert torch.allclose(out[:, 8], merge.reduction(merge.norm(corner)), atol=1e-6)


def test_every_s3_preset_is_registered():
    for name in ("s3-tiny", "s3-small", "s3-wide", "s3-tiny-micro", "s3-small-micro",
                 "s3-wide-micro"):
        assert name in list_spaces()


def test_wide_preset_brackets_s3_t_and_spans_more_sizes():
    """``s3-wide`` exists for ground truths whose sizes must differ by more than seed noise:
    S3-T lies inside it, and its micro preset's smallest and largest backbones (first and last
    choice of every gene) are further apart in parameters than ``s3-tiny-micro``'s."""
    assert get_space("s3-wide").from_json(S3_T).embed_dim == (96, 192, 384, 768)

    def spread(name):
        space = get_space(name, task="segmentation", num_classes=11)
        spec = space.spec
        last = space.from_json({
            "depth": [d[-1] for d in spec.depths], "embed_dim": [w[-1] for w in spec.embed_dims],
            "mlp_ratio": [spec.mlp_ratios[-1]] * 4, "num_heads": [h[-1] for h in spec.num_heads],
            "window_size": [spec.window_sizes[-1]] * 4,
        })
        return space.params(last) / space.params(smallest(space))

    assert spread("s3-wide-micro") > 3 * spread("s3-tiny-micro")


def test_swin_reference_counts():
    """The published Swin-T / Swin-S sizes (timm, 1000 classes) and S3-T, whose 14-wide third
    stage adds 6 blocks x 12 heads x (27^2 - 13^2) relative-bias entries."""
    tiny = get_space("s3-tiny", num_classes=1000)
    assert tiny.params(tiny.from_json(SWIN_T)) == 28_288_354
    assert tiny.params(tiny.from_json(S3_T)) == 28_288_354 + 6 * 12 * (27**2 - 13**2)
    small = get_space("s3-small", num_classes=1000)
    assert small.params(small.from_json(SWIN_S)) == 49_606_258


def test_window_larger_than_the_map_becomes_one_unshifted_window():
    space = get_space("s3-tiny")
    details = [row.detail for row in space.layer_costs(space.from_json(S3_T))
               if row.name.startswith("stage")]
    assert "window 7 shift 3, 56x56" in details[0]
    assert "window 14, 14x14" in details[2]  # grid == window: no shift
    assert "window 7, 7x7" in details[3]


@pytest.mark.parametrize("task", ["classification", "segmentation"])
@pytest.mark.parametrize("img_size, patch_size", [(32, 2), (40, 2), (56, 4), (33, 2)])
def test_counts_are_exact_for_both_tasks_at_odd_sizes(task, img_size, patch_size):
    space = get_space("s3-tiny-micro", img_size=img_size, patch_size=patch_size, task=task)
    arch = space.sample(img_size)
    model = space.build(arch, seed=0)
    x = space.example_input(2)
    assert space.params(arch) == count_params(model)
    assert space.flops(arch) == measured_flops(model, x)


def test_features_are_one_map_per_stage_at_odd_grids():
    space = get_space("s3-tiny-micro", img_size=56, patch_size=4)  # grids 14, 7, 4, 2
    arch = space.sample(1)
    features = space.build(arch).forward_features(space.example_input(2))
    assert [tuple(f.shape) for f in features] == [
        (2, c, g, g) for c, g in zip(arch.embed_dim, (14, 7, 4, 2))
    ]


@pytest.mark.parametrize("img_size", [32, 33])
def test_segmentation_logits_match_the_input_size(img_size):
    space = get_space("s3-tiny-micro", task="segmentation", img_size=img_size, num_classes=5)
    model = space.build(smallest(space)).eval()
    assert isinstance(model, SegmentationModel)
    x = space.example_input(2)
    logits = model(x)
    assert logits.shape == (2, 5, img_size, img_size)
    assert torch.isfinite(logits).all()
    if img_size % space.patch_size == 0:
        assert torch.allclose(model.forward_head(model.forward_features(x)), logits)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_json_round_trip_and_variation_stay_valid(task):
    space = get_space("s3-small-micro", task=task)
    rng = random.Random(0)
    for _ in range(30):
        a, b = space.sample(rng), space.sample(rng)
        assert space.parse(json.dumps(space.to_json(a))) == a
        child = space.mutate(a, rng, layer_prob=0.5, structure_prob=0.5)
        assert space.validate(child) == child
        mixed = space.crossover(a, b, rng)
        assert space.validate(mixed) == mixed
        for gene in ("depth", "embed_dim", "mlp_ratio", "num_heads", "window_size"):
            for s, value in enumerate(getattr(mixed, gene)):
                assert value in (getattr(a, gene)[s], getattr(b, gene)[s])


def test_released_s3_models_are_in_their_spaces():
    assert get_space("s3-tiny").from_json(S3_T).window_size == (7, 7, 14, 7)
    s3_s = {**SWIN_S, "window_size": [14] * 4}
    assert get_space("s3-small").from_json(s3_s).depth == (2, 2, 18, 2)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"window_size": [7, 7, 9, 7]}, "window_size[2] 9 is not in {7, 14}"),
        ({"depth": [2, 2, 6]}, "depth must be a list of 4"),
        ({"embed_dim": [96, 192, 384, 100]}, "embed_dim[3] 100 is not in {640, 768, 896}"),
        ({"num_heads": [3, 6, 12.0, 24]}, "num_heads[2] must be an integer"),
        ({"heads": [3, 6, 12, 24]}, "unknown key 'heads'"),
    ],
)
def test_bad_s3_architectures_give_clear_errors(change, message):
    with pytest.raises(ArchitectureError) as err:
        get_space("s3-tiny").from_json({**S3_T, **change})
    assert message in str(err.value)


def test_bad_options_are_config_errors():
    with pytest.raises(ConfigError, match="task must be one of"):
        get_space("s3-tiny-micro", task="detection")
    with pytest.raises(ConfigError, match="decoder_dim must be a positive integer"):
        get_space("s3-tiny-micro", task="segmentation", decoder_dim=0)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_attention_mlp_and_head_layers_are_tagged(task):
    space = get_space("s3-tiny-micro", task=task)
    arch = space.sample(2)
    roles = [m.vitnas_role for _, m in tags.tagged_modules(space.build(arch))]
    blocks = sum(arch.depth)
    for role in (tags.ATTN_QKV, tags.ATTN_PROJ, tags.MLP_FC1, tags.MLP_FC2):
        assert roles.count(role) == blocks
    assert roles.count(tags.HEAD) == 1 and roles.count(tags.PATCH_EMBED) == 1
    assert roles.count(tags.POOL) == 3
    assert roles.count(tags.CONV) == (9 if task == "segmentation" else 0)


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_same_seed_same_weights(task):
    space = get_space("s3-tiny-micro", task=task)
    arch = smallest(space)
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    first, second = space.build(arch, seed=1), space.build(arch, seed=1)
    assert torch.equal(torch.rand(3), expected)  # the global RNG is untouched
    for p, q in zip(first.parameters(), second.parameters()):
        assert torch.equal(p, q)
    other = space.build(arch, seed=2)
    assert any(not torch.equal(p, q) for p, q in zip(first.parameters(), other.parameters()))


def test_proxies_score_the_micro_classifier():
    space = get_space("s3-tiny-micro")
    arch = smallest(space)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3, 32, 32, generator=generator)
    y = torch.randint(0, 10, (4,), generator=generator)
    results = score_model(space.build(arch), ["dss", "synflow", "grad_norm", "zen"], x, y,
                          space.num_classes, seed=0, space=space, arch=arch)
    for result in results:
        assert torch.isfinite(torch.tensor(result.score)), result
