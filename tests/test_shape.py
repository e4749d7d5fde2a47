"""Shape baselines (depth, width, logsize, depth>params) and the beyond-shape statistics."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from vitnas.bench.correlate import (
    Scoreboard,
    ScoreboardConfig,
    choose_shape_baseline,
    rejudge,
    with_shape_baselines,
)
from vitnas.bench.stats import kendall_tau_b, partial_kendall_given, within_group_kendall
from vitnas.errors import ConfigError
from vitnas.proxies import score_architecture
from vitnas.proxies.shape import SHAPE_BASELINES, is_baseline, log_size
from vitnas.proxies.spec import get_proxy
from vitnas.spaces import get_space


def shape_scores(space, arch):
    x = torch.zeros(2, space.in_chans, space.img_size, space.img_size)
    y = torch.zeros(2, dtype=torch.long)
    return {r.proxy: r.score for r in
            score_architecture(space, arch, list(SHAPE_BASELINES), x, y, seed=0)}


def test_autoformer_shape_is_its_depth_and_embedding_width():
    space = get_space("autoformer-tiny-micro")
    arch = {"hidden_dim": 60, "depth": 13, "mlp_ratio": [4.0] * 13, "num_heads": [4] * 13}
    scores = shape_scores(space, arch)
    assert scores["depth"] == 13 and scores["width"] == 60
    assert scores["params"] == space.params(arch)
    assert scores["depth>params"] == 13 * 1e12 + space.params(arch)


def test_pit_and_s3_widths_sum_over_stages():
    pit = get_space("pit-tiny-micro")
    arch = {"base_dim": 8, "mlp_ratio": 4, "depth": [1, 4, 2], "num_heads": [2, 4, 8]}
    assert pit.shape(arch).depth == 7 and pit.shape(arch).width == 8 * (2 + 4 + 8)
    s3 = get_space("s3-tiny-micro")
    a = s3.sample(seed=3)
    assert s3.shape(a).depth == sum(a.depth) and s3.shape(a).width == sum(a.embed_dim)


@pytest.mark.parametrize("cell, depth, width", [
    ("|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|none~0|none~1|nor_conv_1x1~2|", 3, 3),
    ("|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", 0, 1),
    ("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", 0, 0),
    ("|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|none~0|nor_conv_3x3~1|"
     "nor_conv_3x3~2|", 2, 3),
])
def test_nasbench201_depth_is_the_longest_chain_of_convolutions(cell, depth, width):
    space = get_space("nasbench201")
    shape = space.shape(space.parse(f'"{cell}"'))
    assert (shape.depth, shape.width) == (depth, width)


def test_logsize_sums_the_log_of_each_weight_matrix_by_hand():
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Conv2d(2, 5, 3), nn.Linear(4, 1))
    expected = math.log(12) + math.log(2 * 5 * 9) + math.log(4)
    assert log_size(model) == pytest.approx(expected)


def test_logsize_grows_with_depth_faster_than_with_width():
    """Why it tracks depth: one more layer adds a whole log term, doubling width adds log 4."""
    space = get_space("autoformer-tiny-micro")
    base = {"hidden_dim": 48, "depth": 12, "mlp_ratio": [4.0] * 14, "num_heads": [4] * 14}
    deeper, wider = {**base, "depth": 14}, {**base, "hidden_dim": 60}
    scores = {k: shape_scores(space, a) for k, a in
              (("base", base), ("deeper", deeper), ("wider", wider))}
    gain_depth = scores["deeper"]["logsize"] - scores["base"]["logsize"]
    gain_width = scores["wider"]["logsize"] - scores["base"]["logsize"]
    assert gain_depth > 3 * gain_width > 0
    assert scores["wider"]["params"] > scores["deeper"]["params"] * 0.9


def test_baselines_are_tagged_and_listed():
    assert all(is_baseline(p) for p in SHAPE_BASELINES)
    assert not is_baseline("nwot") and not is_baseline("lswag")
    assert get_proxy("depth>params").spec == "depth>params"


def test_shape_baseline_without_a_space_is_one_clear_error():
    from vitnas.proxies.base import ProxyContext

    ctx = ProxyContext(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long), 10)
    with pytest.raises(ConfigError, match="search space and architecture"):
        get_proxy("depth").compute(nn.Linear(2, 2), ctx)


def test_space_counts_take_the_plain_json_form():
    space = get_space("autoformer-tiny-micro")
    arch = space.sample(seed=1)
    as_json = space.to_json(arch)
    assert space.params(as_json) == space.params(arch)
    assert space.flops(as_json) == space.flops(arch)
    assert space.shape(as_json) == space.shape(arch)


def test_partial_given_shape_is_zero_signal_for_a_shape_count_and_keeps_real_signal():
    rng = np.random.default_rng(0)
    n = 60
    params = rng.normal(size=n)
    depth = rng.integers(12, 15, size=n).astype(float)
    width = rng.normal(size=n)
    hidden = rng.normal(size=n)  # what accuracy depends on beyond shape
    truth = params + depth + hidden
    shape = np.column_stack([params, depth, width])
    # a proxy equal to a shape count has nothing left once shape is regressed out
    assert math.isnan(partial_kendall_given(params, truth, shape))
    # a proxy that sees the hidden part keeps a clear partial tau
    assert partial_kendall_given(hidden + 0.1 * rng.normal(size=n), truth, shape) > 0.4
    # a proxy that is shape plus unrelated noise stays near zero
    assert abs(partial_kendall_given(params + 0.3 * rng.normal(size=n), truth, shape)) < 0.2


def test_within_group_tau_weights_groups_by_their_pairs():
    score = np.array([1, 2, 3, 1, 2, 3, 4, 9, 9], float)
    truth = np.array([1, 2, 3, 4, 3, 2, 1, 5, 5], float)
    group = np.array([0, 0, 0, 1, 1, 1, 1, 2, 2])  # group 2 is too small
    # group 0: tau 1 on 3 pairs; group 1: tau -1 on 6 pairs
    assert within_group_kendall(score, truth, group) == pytest.approx((3 - 6) / 9)


def _tiny_board(space, n=12, seed=0):
    rng = np.random.default_rng(seed)
    archs = [space.sample(seed=s) for s in range(n)]
    depth = np.array([space.shape(a).depth for a in archs], float)
    params = np.array([space.params(a) for a in archs], float)
    truth = depth + 1e-7 * params + 0.1 * rng.normal(size=n)
    scores = {"params": params.tolist(), "flops": [float(space.flops(a)) for a in archs],
              "noise": rng.normal(size=n).tolist()}
    rows = Scoreboard("tiny", space.name, "acc", "all", n, [], {"proxies": ["noise"],
                      "metric": "acc", "resamples": 50}, scores, truth.tolist(),
                      params.tolist(), [space.key(a) for a in archs])
    return rows


def test_rejudge_adds_shape_rows_and_compares_with_the_best_shape_baseline():
    space = get_space("autoformer-tiny-micro")
    board = with_shape_baselines(_tiny_board(space), space)
    judged = rejudge(board)
    names = [r.proxy for r in judged.rows]
    assert set(SHAPE_BASELINES) <= set(names) and "noise" in names
    # accuracy follows depth first: the chosen baseline is depth-led, not params
    assert judged.shape_baseline in ("depth", "depth>params", "logsize")
    best = judged.row(judged.shape_baseline)
    assert best.delta_shape_kendall == 0
    noise = judged.row("noise")
    assert noise.delta_shape_kendall == pytest.approx(noise.kendall - best.kendall)
    # a given (dev-chosen) baseline is used as given
    given = rejudge(board, config=ScoreboardConfig(proxies=("noise",), metric="acc",
                                                   resamples=20, shape_baseline="params"))
    assert given.shape_baseline == "params" and "dev" in given.shape_baseline_rule
    assert given.row("params").delta_shape_kendall == 0


def test_choose_shape_baseline_picks_the_highest_tau_and_refuses_unscored_names():
    truth = np.arange(10.0)
    scores = {"params": np.arange(10.0)[::-1], "depth": np.arange(10.0), "nwot": truth}
    assert choose_shape_baseline(scores, truth)[0] == "depth"  # nwot is no baseline
    assert kendall_tau_b(scores["depth"], truth) == 1
    with pytest.raises(ConfigError, match="not scored"):
        choose_shape_baseline(scores, truth, "width")
