"""Brief training: a low-resolution copy of the candidate trained for a few steps."""

import math

import pytest
import torch

from vitnas.errors import ConfigError
from vitnas.proxies import score_architecture
from vitnas.proxies.base import ProxyContext
from vitnas.proxies.brief import low_resolution_model, train_with_checkpoints
from vitnas.proxies.spec import get_proxy
from vitnas.spaces import get_space

OPTIONS = "dataset=synthetic,img_size=16,patch_size=8,batch_size=16,eval_samples=40,lga_samples=8"


def context(space_name="autoformer-tiny-micro", seed=0, **space_options):
    space = get_space(space_name, **space_options)
    arch = space.sample(seed=2)
    x = torch.zeros(2, 3, space.img_size, space.img_size)
    return ProxyContext(x, torch.zeros(2, dtype=torch.long), space.num_classes, seed, space, arch)


def test_low_resolution_copy_keeps_the_shape_at_the_new_size():
    ctx = context(img_size=64, num_classes=100)
    config = get_proxy(f"brief:{OPTIONS}").config
    model = low_resolution_model(ctx, config, 10)
    out = model(torch.zeros(1, 3, 16, 16))
    assert out.shape == (1, 10)
    # the same depth and width as the candidate
    blocks = [m for m in model.modules() if type(m).__name__ == "Block"]
    assert len(blocks) == ctx.space.shape(ctx.arch).depth


def test_pit_copy_gets_its_stride_back_at_the_new_patch_size():
    ctx = context("pit-tiny", stride=8)
    model = low_resolution_model(ctx, get_proxy(f"brief:{OPTIONS}").config, 10)
    assert model(torch.zeros(1, 3, 16, 16)).shape == (1, 10)


def test_checkpoints_of_one_run_equal_separate_shorter_runs():
    """The constant learning rate makes the first k steps of a long run a k-step run."""
    ctx = context()
    config = get_proxy(f"brief:{OPTIONS}").config
    long_run = train_with_checkpoints(ctx, config, [2, 4], ["val_acc", "val_loss", "train_loss"])
    short_run = train_with_checkpoints(ctx, config, [2], ["val_acc", "val_loss", "train_loss"])
    assert [c.steps for c in long_run] == [2, 4]
    assert long_run[0].values == pytest.approx(short_run[0].values, rel=1e-5)
    assert long_run[1].values != long_run[0].values
    # each checkpoint is charged its own training, so the later one costs more
    assert long_run[1].seconds["val_acc"] > long_run[0].seconds["val_acc"] > 0


def test_a_decaying_schedule_trains_each_budget_as_its_own_run():
    """Under warmup_cosine the rate reaches zero at the budget's end, so a 2-step reading is a
    2-step run (not the first steps of the 4-step one) and differs from the constant rate."""
    ctx = context()
    metrics = ["val_loss", "train_loss"]
    cosine = get_proxy(f"brief:{OPTIONS},schedule=warmup_cosine,warmup=0.5").config
    both = train_with_checkpoints(ctx, cosine, [2, 4], metrics)
    alone = [train_with_checkpoints(ctx, cosine, [k], metrics)[0] for k in (2, 4)]
    assert [c.steps for c in both] == [2, 4]
    for joint, single in zip(both, alone):
        assert joint.values == pytest.approx(single.values, rel=1e-5)
    constant = get_proxy(f"brief:{OPTIONS}").config
    (flat,) = train_with_checkpoints(ctx, constant, [4], metrics)
    assert flat.values["val_loss"] != pytest.approx(both[1].values["val_loss"], rel=1e-6)
    assert both[0].values["val_loss"] != pytest.approx(both[1].values["val_loss"], rel=1e-6)


def test_score_is_reproducible_and_the_metric_is_higher_is_better():
    ctx_space = get_space("autoformer-tiny-micro")
    arch = ctx_space.sample(seed=2)
    x, y = torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long)
    specs = [f"brief:steps=3,metric=val_loss,{OPTIONS}", f"brief:steps=3,metric=lga,{OPTIONS}"]
    first = score_architecture(ctx_space, arch, specs, x, y, seed=1)
    again = score_architecture(ctx_space, arch, specs, x, y, seed=1)
    assert [r.score for r in first] == [r.score for r in again]
    loss, lga = first
    assert loss.score < 0 and loss.raw == loss.score  # minus a cross-entropy
    assert -1 <= lga.score <= 1 and math.isfinite(lga.score)
    other_seed = score_architecture(ctx_space, arch, specs[:1], x, y, seed=2)
    assert other_seed[0].score != loss.score


@pytest.mark.parametrize("spec, message", [
    ("brief:metric=accuracy", "not one of"),
    ("brief:steps=0", ">= 1"),
    ("brief:eval_samples=1", ">= 2"),
    ("brief:precision=fp16", "not one of"),
    ("brief:schedule=cosine", "not one of"),
    ("brief:warmup=1.0", "fraction"),
])
def test_bad_options_are_one_clear_error(spec, message):
    with pytest.raises(ConfigError, match=message):
        get_proxy(spec)


def test_without_a_space_it_says_what_it_needs():
    ctx = context()
    ctx.space = None
    with pytest.raises(ConfigError, match="search space"):
        low_resolution_model(ctx, get_proxy("brief").config, 10)


def test_a_segmentation_space_is_refused_in_one_line():
    ctx = context("s3-tiny-micro", task="segmentation")
    with pytest.raises(ConfigError, match="trains classifiers"):
        low_resolution_model(ctx, get_proxy("brief").config, 10)


def test_registered_lists_only_training_free_proxies_and_all_adds_brief():
    from vitnas.proxies.spec import expand_proxy_specs

    assert "brief" not in expand_proxy_specs("registered")
    assert "brief" in expand_proxy_specs("all") and "depth>params" in expand_proxy_specs("all")
