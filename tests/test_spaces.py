import json
import random

import pytest
import torch

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import count_params, measured_flops
from vitnas.models import tags
from vitnas.spaces import get_space, list_spaces
from vitnas.spaces.nasbench201 import parse_arch_string

ALL_SPACES = list_spaces()
VIT_SPACES = [s for s in ALL_SPACES if s != "nasbench201"]


def small_input_space(name):
    """Every space at 32x32; full ViT presets keep their 16-pixel patches (4 tokens)."""
    return get_space(name, img_size=32)


def test_every_family_is_registered():
    for name in ("autoformer-tiny", "autoformer-small", "autoformer-base", "pit-tiny", "pit-xs",
                 "pit-small", "nasbench201"):
        assert name in ALL_SPACES
        if name != "nasbench201":
            assert f"{name}-micro" in ALL_SPACES


@pytest.mark.parametrize("name", ALL_SPACES)
def test_sample_build_forward_and_counts_match(name):
    space = small_input_space(name)
    arch = space.sample(seed=3)
    model = space.build(arch, seed=0)
    x = space.example_input(2)
    logits = model(x)
    assert logits.shape == (2, space.num_classes)
    assert torch.isfinite(logits).all()
    assert space.params(arch) == count_params(model)
    measured = measured_flops(model, x)
    assert abs(space.flops(arch) - measured) <= 0.02 * measured


@pytest.mark.parametrize("name", ALL_SPACES)
def test_json_round_trip(name):
    space = get_space(name)
    for seed in range(5):
        arch = space.sample(seed)
        text = json.dumps(space.to_json(arch))
        assert space.parse(text) == arch
        assert space.key(space.parse(text)) == space.key(arch)


@pytest.mark.parametrize("name", ALL_SPACES)
def test_mutation_and_crossover_stay_valid(name):
    space = get_space(name)
    rng = random.Random(0)
    changed = 0
    for _ in range(50):
        a, b = space.sample(rng), space.sample(rng)
        child = space.mutate(a, rng, layer_prob=0.5, structure_prob=0.5)
        assert space.validate(child) == child
        changed += child != a
        mixed = space.crossover(a, b, rng)
        assert space.validate(mixed) == mixed
    assert changed > 25


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "pit-tiny-micro", "nasbench201"])
def test_same_seed_same_architecture_and_weights(name):
    space = get_space(name)
    assert space.sample(7) == space.sample(7)
    arch = space.sample(7)
    first, second = space.build(arch, seed=1), space.build(arch, seed=1)
    for p, q in zip(first.parameters(), second.parameters()):
        assert torch.equal(p, q)
    other = space.build(arch, seed=2)
    assert any(not torch.equal(p, q) for p, q in zip(first.parameters(), other.parameters()))


def test_build_does_not_disturb_global_rng():
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    get_space("autoformer-tiny-micro").build(get_space("autoformer-tiny-micro").sample(0))
    assert torch.equal(torch.rand(3), expected)


def test_autoformer_tiny_reference_counts():
    space = get_space("autoformer-tiny")
    smallest = {"hidden_dim": 192, "depth": 12, "mlp_ratio": [3.5] * 12, "num_heads": [3] * 12}
    largest = {"hidden_dim": 240, "depth": 14, "mlp_ratio": [4] * 14, "num_heads": [4] * 14}
    assert space.params(space.from_json(smallest)) == 5_100_196
    assert space.params(space.from_json(largest)) == 10_192_852
    rng = random.Random(0)
    for _ in range(200):
        assert 5_100_196 <= space.params(space.sample(rng)) <= 10_192_852


def test_autoformer_embed_dim_alias_and_truncation():
    space = get_space("autoformer-tiny")
    arch = space.from_json(
        {"embed_dim": 216, "depth": 12, "mlp_ratio": [4] * 14, "num_heads": [4] * 14}
    )
    assert arch.hidden_dim == 216 and len(arch.mlp_ratio) == 12 and len(arch.num_heads) == 12


def test_autoformer_qkv_embed_option_changes_head_width():
    arch_json = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [4] * 12}
    per_head = get_space("autoformer-tiny-micro")
    embed = get_space("autoformer-tiny-micro", qkv="embed")
    a = per_head.from_json(arch_json)
    assert per_head.build(a).blocks[0].attn.head_dim == 16
    assert embed.build(a).blocks[0].attn.head_dim == 12
    assert embed.params(a) == count_params(embed.build(a))


def test_mean_pooling_has_no_class_token():
    space = get_space("autoformer-tiny-micro", pool="mean")
    arch = space.sample(0)
    model = space.build(arch)
    assert model.cls_token is None
    assert space.params(arch) == count_params(model)
    assert model(space.example_input(1)).shape == (1, 10)


@pytest.mark.parametrize(
    "arch, message",
    [
        ({"hidden_dim": 192, "depth": 99, "mlp_ratio": [4] * 99, "num_heads": [3] * 99},
         "depth 99 is not in {12, 13, 14}"),
        ({"hidden_dim": 192, "depth": 12, "mlp_ratio": [4] * 11, "num_heads": [3] * 12},
         "mlp_ratio has 11 entries but depth is 12"),
        ({"hidden_dim": 100, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12},
         "hidden_dim 100 is not in"),
        ({"hidden_dim": 192, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [5] * 12},
         "num_heads[0] 5 is not in {3, 4}"),
        ({"hidden_dim": 192, "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12,
          "heads": 3}, "unknown key 'heads'"),
        ({"hidden_dim": "192", "depth": 12, "mlp_ratio": [4] * 12, "num_heads": [3] * 12},
         "hidden_dim must be an integer"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_autoformer_architectures_give_clear_errors(arch, message):
    with pytest.raises(ArchitectureError) as err:
        get_space("autoformer-tiny").from_json(arch)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "arch, message",
    [
        ({"base_dim": 16, "mlp_ratio": 6, "depth": [2, 8], "num_heads": [2, 4, 4]},
         "depth must be a list of 3"),
        ({"base_dim": 16, "mlp_ratio": 6, "depth": [2, 5, 4], "num_heads": [2, 4, 4]},
         "depth[1] 5 is not in {4, 6, 8}"),
        ({"base_dim": 17, "mlp_ratio": 6, "depth": [2, 8, 4], "num_heads": [2, 4, 4]},
         "base_dim 17 is not in"),
    ],
)
def test_bad_pit_architectures_give_clear_errors(arch, message):
    with pytest.raises(ArchitectureError) as err:
        get_space("pit-tiny").from_json(arch)
    assert message in str(err.value)


def test_pit_example_from_the_issue_is_valid_and_pooling_shrinks_tokens():
    space = get_space("pit-tiny", img_size=224)
    arch = space.from_json({"base_dim": 16, "mlp_ratio": 6, "depth": [2, 8, 4],
                            "num_heads": [2, 4, 4]})
    details = [row.detail for row in space.layer_costs(arch) if row.name.startswith("stage")]
    assert "27x27 tokens" in details[0] and "14x14" in details[1] and "7x7" in details[2]


def test_non_json_architecture_text():
    with pytest.raises(ArchitectureError, match="not valid JSON"):
        get_space("pit-tiny").parse("{depth: 3")


def test_unknown_space_and_inapplicable_option():
    with pytest.raises(ConfigError, match="unknown search space 'vit-huge'"):
        get_space("vit-huge")
    with pytest.raises(ConfigError, match="'patch_size' does not apply"):
        get_space("nasbench201", patch_size=4)


def test_nb201_string_round_trip_and_unknown_op():
    text = ("|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|"
            "+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|")
    arch = parse_arch_string(text)
    assert arch.string == text
    with pytest.raises(ArchitectureError, match="unknown op 'conv_5x5'"):
        parse_arch_string(text.replace("avg_pool_3x3", "conv_5x5"))
    with pytest.raises(ArchitectureError, match="3 nodes"):
        parse_arch_string("|none~0|+|none~0|none~1|")
    with pytest.raises(ArchitectureError, match="malformed edge"):
        parse_arch_string(text.replace("~1|+|skip", "~0|+|skip"))


def test_nb201_benchmark_lookup_from_configurable_data_dir(shared_data_dir):
    from conftest import require_shared_file

    require_shared_file("nasbench201/nb201_test_acc_200ep.csv")
    space = get_space("nasbench201", data_dir=str(shared_data_dir))
    arch = space.arch_at(1)
    assert arch.string.startswith("|nor_conv_3x3~0|")
    assert space.index_of(arch) == 1
    assert space.test_accuracy(arch, "cifar10") == pytest.approx(93.66, abs=0.01)
    assert space.parse("1") == arch
    with pytest.raises(ArchitectureError, match="not in 0..15624"):
        space.arch_at(15625)


def test_nb201_missing_table_names_the_file(tmp_path):
    from vitnas.errors import DatasetError

    space = get_space("nasbench201", data_dir=str(tmp_path))
    with pytest.raises(DatasetError, match="nb201_test_acc_200ep.csv"):
        space.arch_at(0)


def test_nb201_params_match_naslib_reference():
    # NASLib's params score for cell (0, 2, 3, 2, 3, 1) is 0.615386 M.
    space = get_space("nasbench201")
    arch = parse_arch_string(
        "|skip_connect~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_1x1~0|nor_conv_1x1~1|none~2|"
    )
    assert space.params(arch) == 615_386


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "pit-tiny-micro"])
def test_attention_and_mlp_layers_are_tagged(name):
    space = get_space(name)
    model = space.build(space.sample(0))
    roles = [m.vitnas_role for _, m in tags.tagged_modules(model)]
    depth = sum(1 for _ in tags.tagged_modules(model, tags.ATTN_QKV))
    assert depth >= 3
    for role in (tags.ATTN_PROJ, tags.MLP_FC1, tags.MLP_FC2):
        assert roles.count(role) == depth
    assert roles.count(tags.HEAD) == 1 and roles.count(tags.PATCH_EMBED) == 1


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "pit-tiny-micro", "nasbench201"])
def test_features_then_head_equals_forward(name):
    space = get_space(name)
    model = space.build(space.sample(0)).eval()
    x = space.example_input(2)
    assert torch.allclose(model.forward_head(model.forward_features(x)), model(x))


@pytest.mark.parametrize("name", ["autoformer-tiny-micro", "pit-tiny-micro", "nasbench201"])
def test_build_takes_plain_json_and_sample_records(name):
    space = get_space(name)
    arch = space.sample(3)
    x = space.example_input(1)
    with torch.no_grad():
        expected = space.build(arch, seed=1)(x)
        for form in (space.to_json(arch), {"arch": space.to_json(arch), "params": 1}):
            assert torch.equal(space.build(form, seed=1)(x), expected)


@pytest.mark.parametrize("name", ALL_SPACES)
def test_params_and_flops_take_the_plain_json_architecture(name):
    space = get_space(name)
    arch = space.sample(5)
    plain = json.loads(json.dumps(space.to_json(arch)))  # what a user writes in a file
    assert space.params(plain) == space.params(arch)
    assert space.flops(plain) == space.flops(arch)
    with pytest.raises(ArchitectureError):
        space.params({"depth": 999} if isinstance(plain, dict) else "|nonsense~0|")


@pytest.mark.parametrize("options, message", [
    ({"img_size": "32"}, "option img_size must be int, got str '32'"),
    ({"img_size": True}, "option img_size must be int, got bool True"),
    ({"patch_size": 4.0}, "option patch_size must be int, got float 4.0"),
    ({"qkv": 3}, "option qkv must be str, got int 3"),
])
def test_space_options_of_the_wrong_type_are_refused_before_the_space_is_built(options, message):
    with pytest.raises(ConfigError, match=message):
        get_space("autoformer-tiny-micro", **options)
    space = get_space("autoformer-tiny-micro", img_size=64, pool="mean", cls_token="no")
    assert space.img_size == 64  # the right types pass, a bool-or-str option takes a str


def test_a_space_name_that_is_not_a_string_is_one_line():
    with pytest.raises(ConfigError, match="must be a string, got list"):
        get_space(["autoformer-tiny-micro"])
