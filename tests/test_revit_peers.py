"""The simple peers a learned token-length policy is measured against (ToMe, confidence-skip,
the fair cascade), the pool-only choice of their thresholds, and the timing statistics."""

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vitnas.errors import ConfigError
from vitnas.models.vit import VisionTransformer
from vitnas.revit import ReViTConfig, build_revit
from vitnas.revit.evaluate import (
    Pool,
    calibrate,
    cascade_point,
    choose_peers,
    evaluate_revit,
    rule_point,
    top_probability,
)
from vitnas.revit.inference import cascade_predict, lengths_flops, skip_predict
from vitnas.revit.labels import correct_by_length
from vitnas.revit.metrics import (
    TimingBootstrap,
    curve_ratio,
    low_median,
    mixture_frontier,
    rank_interval,
)
from vitnas.revit.peers import (
    THRESHOLDS,
    CascadeRule,
    SkipRule,
    merged_kind,
    neighbours,
    rule_from_dict,
    rule_grid,
    rule_outcome,
    shared_cascade,
    with_merge,
)
from vitnas.revit.tome import (
    _attention,
    bipartite_soft_matching,
    merge_tokens,
    token_schedule,
    tome_features,
    tome_flops,
    tome_forward,
)

TINY = dict(embed_dim=16, depth=3, num_heads=2, mlp_ratio=2.0)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def tiny_revit(seed=0, **options):
    return build_revit(ReViTConfig(**{**TINY, **options}), seed=seed).eval()


def plain_vit(pool="cls"):
    torch.manual_seed(0)
    return VisionTransformer(embed_dim=16, depth=3, num_heads=[2] * 3, mlp_ratio=[2.0] * 3,
                             img_size=32, patch_size=4, num_classes=10, head_dim=None,
                             pool=pool).eval()


# --------------------------------------------------------------------------- ToMe


@torch.no_grad()
@pytest.mark.parametrize("pool", ["cls", "mean"])
def test_tome_with_r0_is_the_plain_model_bit_for_bit(pool):
    x = torch.randn(4, 3, 32, 32)
    vit = plain_vit(pool)
    assert torch.equal(tome_forward(vit, x, 0), vit(x))
    model = tiny_revit()
    for length in range(model.num_lengths):
        assert torch.equal(tome_forward(model, x, 0, length=length), model(x, length=length))


@torch.no_grad()
@pytest.mark.parametrize("r", [1, 3, 8, 40])
def test_merging_removes_exactly_r_tokens_per_block_and_keeps_every_patch(r):
    model = tiny_revit()
    x = torch.randn(3, 3, 32, 32)
    features, size = tome_features(model, x, r)
    expected = token_schedule(64, 1, 3, r)
    assert features.shape[1] == expected[-1]
    steps = [a - b for a, b in zip(expected, expected[1:])]
    if r <= 16:
        assert steps == [r, r, r]  # 64 patches never run short of pairs at this r
    else:
        assert steps == [32, 16, 8]  # clipped at half the mergeable tokens
    assert size[:, 0].eq(1).all()  # the class token is never merged
    assert torch.allclose(size[:, 1:].sum(dim=1), torch.full((3, 1), 64.0))


class _ToMe(nn.Module):
    def __init__(self, model, r, length=None):
        super().__init__()
        self.model, self.r, self.length = model, r, length

    def forward(self, x):
        return tome_forward(self.model, x, self.r, self.length)


@pytest.mark.parametrize("r", [0, 1, 4, 9, 40])
@pytest.mark.parametrize("which", ["revit", "revit-short", "mean"])
def test_tome_flops_equal_the_flop_counter(r, which):
    model = plain_vit("mean") if which == "mean" else tiny_revit()
    length = 1 if which == "revit-short" else None
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        _ToMe(model, r, length)(torch.randn(1, 3, 32, 32))
    assert counter.get_total_flops() == tome_flops(model, r, length)
    if r == 0 and which != "mean":
        index = model.num_lengths - 1 if length is None else length
        assert tome_flops(model, 0, length) == model.flops_at(index)


def test_merged_tokens_are_size_weighted_averages():
    # A = tokens 0, 2; B = tokens 1, 3. Token 2 (size 3) merges into token 3 (size 1).
    x = torch.tensor([[[0.0], [1.0], [4.0], [8.0]]])
    size = torch.tensor([[[1.0], [1.0], [3.0], [1.0]]])
    kept, merged, partner = torch.tensor([[0]]), torch.tensor([[1]]), torch.tensor([[1]])
    out, new_size = merge_tokens(x, size, kept, merged, partner)
    assert out.flatten().tolist() == [0.0, 1.0, (3 * 4.0 + 8.0) / 4]
    assert new_size.flatten().tolist() == [1.0, 1.0, 4.0]


def test_bipartite_matching_merges_the_most_similar_pairs():
    e = torch.eye(4)
    # A = rows 0, 2, 4; B = rows 1, 3, 5. Row 4 copies row 1 (cosine 1), row 2 nearly row 3.
    metric = torch.stack([e[0], e[1], e[2] + 0.1 * e[3], e[3], e[1], -e[0]]).unsqueeze(0)
    kept, merged, partner = bipartite_soft_matching(metric, 2)
    assert merged.tolist() == [[2, 1]] and partner.tolist() == [[0, 1]]
    assert kept.tolist() == [[0]]


@torch.no_grad()
def test_proportional_attention_counts_a_merged_token_as_its_copies():
    block = plain_vit().blocks[0]
    a, b = torch.randn(1, 1, 16), torch.randn(1, 1, 16)
    duplicated, _ = _attention(block, torch.cat([a, b, b], dim=1), None)
    merged, _ = _attention(block, torch.cat([a, b], dim=1), torch.tensor([[[1.0], [2.0]]]))
    assert torch.allclose(duplicated[:, :2], merged, atol=1e-6)


# --------------------------------------------------------------------------- rules


def cached(model, x, y):
    logits = torch.stack([model(x, length=k) for k in range(model.num_lengths)])
    return logits, correct_by_length(logits, y), top_probability(logits)


@torch.no_grad()
@pytest.mark.parametrize("thresholds", [(1.01, 1.01), (0.0, 0.0), (0.12, 0.105), (0.11, 0.0)])
def test_confidence_skip_end_to_end_matches_its_cached_outcome(thresholds):
    model = tiny_revit()
    x, y = torch.randn(60, 3, 32, 32), torch.randint(0, 10, (60,))
    _, correct, confidence = cached(model, x, y)
    rule = SkipRule(thresholds)
    live = skip_predict(model, x, rule.thresholds)
    hit, spent, length = rule_outcome(rule, confidence, correct, lengths_flops(model))
    assert torch.equal(live.length, length)
    assert torch.equal(live.logits.argmax(-1) == y, hit)
    assert torch.equal(live.flops, spent)
    costs = lengths_flops(model)
    # the shortest pass is always paid; a length in between is never run
    assert torch.equal(spent, torch.where(length > 0, costs[0] + costs[length], costs[0]))


@torch.no_grad()
@pytest.mark.parametrize("exit_, skip", [((0.11, 0.11), (0.0, 0.0)), ((0.12, 0.1), (0.105, 0.0)),
                                        ((1.01, 0.0), (1.01, 0.0)), ((0.0, 0.0), (0.0, 0.0))])
def test_fair_cascade_end_to_end_matches_its_cached_outcome(exit_, skip):
    model = tiny_revit()
    x, y = torch.randn(60, 3, 32, 32), torch.randint(0, 10, (60,))
    _, correct, confidence = cached(model, x, y)
    rule = CascadeRule(exit_, skip)
    live = cascade_predict(model, x, rule.exit, rule.skip)
    hit, spent, length = rule_outcome(rule, confidence, correct, lengths_flops(model))
    assert torch.equal(live.length, length)
    assert torch.equal(live.logits.argmax(-1) == y, hit)
    assert torch.equal(live.flops, spent)
    if skip[0] == 1.01:  # everything below the exit skips the middle length
        costs = lengths_flops(model)
        assert (spent[length == 2] == costs[0] + costs[2]).all()


@torch.no_grad()
def test_a_shared_threshold_cascade_rule_is_the_plain_cascade():
    model = tiny_revit()
    x, y = torch.randn(50, 3, 32, 32), torch.randint(0, 10, (50,))
    logits, correct, confidence = cached(model, x, y)
    costs = lengths_flops(model)
    for threshold in (0.0, 0.105, 0.11, 1.0):
        old = cascade_point(threshold, logits, correct, costs)
        new = rule_point(shared_cascade(threshold, 3), confidence, correct, costs)
        assert (old.accuracy, old.flops, old.shares) == (new.accuracy, new.flops, new.shares)


def pool_of(seed, shares=(0.5, 0.7, 0.85), n=300, classes=10):
    """A pool whose length k is right on a ``shares[k]`` of the images, confidently (its true
    class far ahead), and wrong otherwise, less confidently."""
    generator = torch.Generator().manual_seed(seed)
    targets = torch.randint(0, classes, (n,), generator=generator)
    logits = torch.randn(len(shares), n, classes, generator=generator)
    for k, share in enumerate(shares):
        right = torch.rand(n, generator=generator) < share
        logits[k, right, targets[right]] += 6.0
        wrong = torch.nonzero(~right).flatten()
        logits[k, wrong, (targets[wrong] + 1) % classes] += 3.0 * torch.rand(
            len(wrong), generator=generator)
    return Pool(logits, targets, max_loss=1.0, source=f"pool {seed}")


def test_the_fair_cascade_grid_contains_the_skip_rule_and_the_shared_cascade():
    pool = pool_of(0)
    costs = torch.tensor([16, 36, 64])
    choices, _ = choose_peers(pool, costs, {})
    by_kind = {c.kind: c for c in choices}
    fair = by_kind["fair cascade"].pool_point
    for other in ("confidence-skip", "cascade"):
        assert fair.flops <= by_kind[other].pool_point.flops
    full = pool.full_accuracy
    for choice in choices:
        assert choice.pool_point.accuracy >= full - 1.0
    rules = rule_grid("fair cascade", 3)
    assert CascadeRule((0.9, 0.0), (0.5, 0.0)) in rules  # a confidence-skip rule, as a cascade
    assert shared_cascade(0.9, 3) in rules


def test_peer_choices_are_made_on_the_pool_and_match_each_tla_there():
    costs = torch.tensor([16, 36, 64])
    pool = pool_of(1)
    choices, frontiers = choose_peers(pool, costs, {"TLA x": 60.0})
    confidence, correct = top_probability(pool.logits), pool.correct
    for kind in ("confidence-skip", "fair cascade"):
        points = [rule_point(r, confidence, correct, costs, kind) for r in rule_grid(kind, 3)]
        best = calibrate(points, pool.full_accuracy, 1.0)
        chosen = next(c for c in choices if c.kind == kind and c.name == kind)
        assert chosen.pool_point.rule == best.rule
        assert chosen.pool_point.flops == best.flops
        matched = next(c for c in choices if c.kind == kind and
                       any("TLA x" in reason for reason in c.chosen_for))
        reaching = [p for p in points if p.accuracy >= 60.0]
        assert matched.pool_point.flops == min(p.flops for p in reaching)
        assert all(a.flops < b.flops and a.accuracy < b.accuracy
                   for a, b in zip(frontiers[kind], frontiers[kind][1:]))


@torch.no_grad()
def test_evaluation_takes_peer_thresholds_from_the_pool_never_the_test_images():
    model = tiny_revit(depth=1)
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 10, (40,))
    rules = {}
    for seed, shares in ((2, (0.5, 0.7, 0.85)), (3, (0.85, 0.85, 0.85))):
        pool = pool_of(seed, shares)
        evaluation = evaluate_revit(model, [], x, y, batch_size=16, repeats=1, pool=pool,
                                    tome_rates=(2,), resamples=0)
        choices, _ = choose_peers(pool, lengths_flops(model), {})
        measured = {p.name: p for p in evaluation.measured}
        for choice in choices:
            assert measured[choice.name].rule == choice.rule.as_dict()
            assert measured[choice.name].pool_accuracy == choice.pool_point.accuracy
        rules[seed] = [measured[c.name].rule for c in choices]
        assert evaluation.pool["source"] == f"pool {seed}"
    assert rules[2] != rules[3]  # the same test images; other pools, other thresholds


@torch.no_grad()
def test_without_a_pool_only_the_given_cascade_and_tome_run_and_tome_costs_are_exact():
    model = tiny_revit(depth=1)
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 10, (40,))
    evaluation = evaluate_revit(model, [], x, y, cascade_threshold=0.5, batch_size=16,
                                repeats=2, tome_rates=(2, 30), resamples=10)
    measured = {p.name: p for p in evaluation.measured}
    assert set(measured) == {"fixed 16 tokens", "fixed 36 tokens", "fixed 64 tokens", "oracle",
                             "cascade", "ToMe r=2", "ToMe r=30"}
    assert measured["cascade"].rule["exit"] == [0.5, 0.5]
    assert measured["cascade"].pool_accuracy is None
    assert measured["ToMe r=2"].flops == tome_flops(model, 2, length=2)
    # the matching's similarity matmul costs more than r = 2 saves in a 16-wide, 1-block model
    assert measured["ToMe r=30"].flops < model.flops_at(2) < measured["ToMe r=2"].flops
    for name in ("ToMe r=2", "cascade", "oracle"):
        entry = evaluation.comparisons[name]
        assert len(entry["throughput_vs_fixed_curve"]["per_round"]) == 2
        assert "ratio" in entry["flops_ratio_vs_fixed"]


# --------------------------------------------------------------------------- statistics


def test_curve_ratio_at_equal_accuracy_and_above_the_curve():
    reference = [(1.0, 70.0), (2.0, 80.0)]
    assert curve_ratio(reference, 0.75, 75.0) == pytest.approx(2.0)
    assert curve_ratio(reference, 1.0, 85.0) == pytest.approx(2.0)  # dominates the top point
    assert curve_ratio(reference, 3.0, 85.0) != curve_ratio(reference, 3.0, 85.0)  # NaN


def test_nan_ranks_lowest_in_medians_and_intervals():
    values = torch.tensor([float("nan"), 1.0, 2.0, 3.0, 4.0])
    assert low_median(values) == 2.0
    assert rank_interval(values, 0.5)[0] == 1.0
    assert rank_interval(torch.tensor([float("nan")] * 4))[0] == float("-inf")


def test_the_median_of_an_even_count_is_the_lower_middle_value():
    assert low_median(torch.tensor([1.0, 2, 3, 4])) == 2.0


def test_rank_interval_takes_the_nearest_ranks_of_its_quantiles():
    # level 0.5 of 10 values: ranks ceil(2.5) = 3 and ceil(7.5) = 8
    assert rank_interval(torch.arange(1.0, 11.0), 0.5) == [3.0, 8.0]


def test_a_point_on_the_chord_of_the_frontier_is_not_a_corner_of_it():
    # (2, 55) is the even mixture of (1, 50) and (3, 60): the hull needs only the two ends
    assert mixture_frontier([(1, 50), (2, 55), (3, 60)]) == [(1.0, 50.0), (3.0, 60.0)]


@torch.no_grad()
def test_a_cascade_exits_at_a_confidence_exactly_at_its_threshold():
    model = tiny_revit()
    model.head.weight.zero_()
    model.head.bias.zero_()  # every length predicts uniformly: confidence exactly 1/10
    assert cascade_predict(model, torch.randn(3, 3, 32, 32), 0.1).length.tolist() == [0, 0, 0]


def test_timing_bootstrap_recovers_a_known_speedup_and_ignores_one_slow_round():
    n, rounds = 200, 5
    generator = torch.Generator().manual_seed(0)
    correct = torch.stack([torch.rand(n, generator=generator) < 0.6,
                           torch.rand(n, generator=generator) < 0.8])
    correct = torch.cat([correct, correct[1:]])  # policy 2 answers as the long length does
    seconds = torch.tensor([1.0, 4.0, 2.0]).view(3, 1, 1).expand(3, rounds, n).clone()
    seconds[:, 2] *= 3.0  # one slow round slows everything in it
    seconds[2, 4] *= 1.5  # one noisy measurement of the policy alone
    flops = torch.tensor([1.0, 4.0, 2.0]).view(3, 1).expand(3, n)
    stats = TimingBootstrap(seconds, correct, flops, resamples=200, seed=0)
    versus = stats.versus_curve(2, [0, 1])
    assert versus["ratio"] == pytest.approx(2.0)  # median over rounds: the noisy one is out
    assert versus["per_round"][2] == pytest.approx(2.0)  # the slow round is slow for all
    low, high = versus["ci"]
    assert low == pytest.approx(4.0 / 3.0, rel=1e-3) and high == pytest.approx(2.0)
    assert stats.flops_versus_curve(2, [0, 1]) == {"ratio": 2.0, "ci": [2.0, 2.0]}
    matched = stats.versus_policy(2, 1)
    assert matched["throughput_ratio"]["ratio"] == pytest.approx(2.0)
    assert matched["accuracy_difference"] == {"points": 0.0, "ci": [0.0, 0.0]}
    lo, hi = stats.accuracy_interval(0)
    assert lo < 100.0 * float(correct[0].float().mean()) < hi


def test_neighbours_move_one_threshold_and_stay_valid():
    skip = SkipRule((0.8, 0.5, 0.3))
    moved = neighbours(skip)
    assert moved and skip not in moved
    for rule in moved:
        changed = sum(a != b for a, b in zip(rule.thresholds, skip.thresholds))
        assert changed == 1 and list(rule.thresholds) == sorted(rule.thresholds, reverse=True)
    cascade = CascadeRule((0.8, 0.7, 0.6), (0.3, 0.2, 0.0))
    for rule in neighbours(cascade):
        changed = sum(a != b for a, b in zip(rule.exit + rule.skip, cascade.exit + cascade.skip))
        assert changed == 1 and rule.skip[-1] == 0.0
        assert all(s <= e for s, e in zip(rule.skip, rule.exit))


def test_four_length_peers_search_beyond_the_thinned_grid():
    # with four lengths the fair cascade's grid is thinned; one round of single-threshold
    # moves around its front reaches the full grid's values again
    grid = rule_grid("fair cascade", 4)
    on_grid = {t for rule in grid for t in rule.exit}
    missing = [t for t in THRESHOLDS if t not in on_grid]
    assert missing, "the four-length grid is expected to be thinned"
    start = CascadeRule((0.95, 0.85, 0.7), (0.4, 0.0, 0.0))
    assert {r.exit[1] for r in neighbours(start)} >= set(missing)
    pool = pool_of(2, shares=(0.4, 0.5, 0.7, 0.85))
    costs = torch.tensor([9, 16, 36, 64])
    confidence, correct = top_probability(pool.logits), pool.correct
    grid_only = calibrate([rule_point(r, confidence, correct, costs, "fair cascade")
                           for r in grid], pool.full_accuracy, 1.0)
    choices, _ = choose_peers(pool, costs, {}, kinds=("fair cascade",))
    refined = choices[0].pool_point
    assert refined.accuracy >= pool.full_accuracy - 1.0
    assert refined.flops < grid_only.flops  # the thinned grid alone leaves FLOPs on the table


# --------------------------------------------------------------------------- merged peers


def test_a_merged_rule_round_trips_and_keeps_its_rates_when_moved():
    for rule in (SkipRule((0.6, 0.3), (0, 2, 8)), CascadeRule((0.5, 0.3), (0.2, 0.0), (0, 4, 8))):
        assert rule_from_dict(rule.as_dict()) == rule
        assert rule.policy == merged_kind(rule.kind)
        assert all(moved.merge == rule.merge for moved in neighbours(rule))
    plain = SkipRule((0.6, 0.3))
    assert "merge" not in plain.as_dict() and plain.policy == "confidence-skip"
    assert with_merge([plain], (0, 0, 0)) == [plain]  # no merging is the plain rule
    assert shared_cascade(0.5, 3).policy == "cascade"
    with pytest.raises(ConfigError):
        SkipRule((0.6, 0.3), (0, 2))  # one rate per length
    with pytest.raises(ConfigError):
        CascadeRule((0.5, 0.3), (0.0, 0.0), (0, -1, 2))


@torch.no_grad()
def test_merged_peers_end_to_end_run_tome_passes_and_charge_their_flops():
    model = tiny_revit()
    x, y = torch.randn(60, 3, 32, 32), torch.randint(0, 10, (60,))
    merge = (0, 2, 5)
    logits = torch.stack([model(x, length=0), tome_forward(model, x, 2, length=1),
                          tome_forward(model, x, 5, length=2)])
    costs = lengths_flops(model, merge)
    assert costs.tolist() == [model.flops_at(0), tome_flops(model, 2, length=1),
                              tome_flops(model, 5, length=2)]
    assert (costs[1:] != lengths_flops(model)[1:]).all()
    correct, confidence = correct_by_length(logits, y), top_probability(logits)
    for rule in (SkipRule((0.12, 0.105), merge), CascadeRule((0.12, 0.1), (0.105, 0.0), merge)):
        live = (skip_predict(model, x, rule.thresholds, rule.merge) if isinstance(rule, SkipRule)
                else cascade_predict(model, x, rule.exit, rule.skip, rule.merge))
        hit, spent, length = rule_outcome(rule, confidence, correct, costs)
        assert torch.equal(live.length, length)
        assert torch.equal(live.logits.argmax(-1) == y, hit)
        assert torch.equal(live.flops, spent)
    # rate 0 everywhere is the plain pass, operation for operation
    plain = cascade_predict(model, x, (0.12, 0.1), (0.105, 0.0), (0, 0, 0))
    assert torch.equal(plain.logits, cascade_predict(model, x, (0.12, 0.1), (0.105, 0.0)).logits)


def merged_pool(seed, cheaper, hurt_at=None):
    """``pool_of(seed)`` whose lengths 1 and 2 also run merged at rates 2 and 6: the same
    logits (so the same answers) at ``cheaper`` times the FLOPs, except rate 6 at length
    ``hurt_at``, which gets every image wrong."""
    pool = pool_of(seed)
    costs = torch.tensor([16, 36, 64])
    for k in (1, 2):
        for r in (2, 6):
            logits = pool.logits[k].clone()
            if (k, r) == (hurt_at, 6):
                logits[torch.arange(len(pool.targets)), pool.targets] = -1e3
            pool.merged[k, r] = logits
            pool.merged_flops[k, r] = int(costs[k] * cheaper[r])
    return pool, costs


def test_merged_peers_choose_their_rates_on_the_pool():
    pool, costs = merged_pool(4, cheaper={2: 0.9, 6: 0.5})
    assert len(pool.merge_options()) == 8  # {0, 2, 6} at lengths 1 and 2, some merging
    choices, frontiers = choose_peers(pool, costs, {})
    by_name = {c.name: c for c in choices}
    for kind in ("confidence-skip", "fair cascade"):
        plain, merged = by_name[kind], by_name[merged_kind(kind)]
        assert merged.kind == merged_kind(kind) and merged.rule.merge == (0, 6, 6)
        assert merged.pool_point.rule == merged.rule.as_dict()
        # the same answers at lower cost: the same thresholds, cheaper
        assert merged.pool_point.accuracy == plain.pool_point.accuracy
        assert merged.pool_point.flops < plain.pool_point.flops
        assert frontiers[merged_kind(kind)]
    # a rate that ruins a length is never chosen for it
    pool, costs = merged_pool(4, cheaper={2: 0.9, 6: 0.5}, hurt_at=2)
    choices, _ = choose_peers(pool, costs, {})
    fair = next(c for c in choices if c.name == merged_kind("fair cascade"))
    assert fair.rule.merge[2] != 6 and fair.pool_point.accuracy >= pool.full_accuracy - 1.0


@torch.no_grad()
def test_evaluation_runs_merged_peers_and_compares_them_with_tome_and_the_other_peers():
    model = tiny_revit(depth=1)
    x, y = torch.randn(40, 3, 32, 32), torch.randint(0, 10, (40,))
    pool = pool_of(5)
    for k in (1, 2):
        pool.merged[k, 4] = pool.logits[k].clone()
        pool.merged_flops[k, 4] = tome_flops(model, 4, length=k)
    evaluation = evaluate_revit(model, [], x, y, batch_size=16, repeats=1, pool=pool,
                                tome_rates=(4,), resamples=5)
    merged = [p for p in evaluation.measured if p.policy.endswith("+ ToMe")]
    assert {p.policy for p in merged} == {merged_kind("confidence-skip"),
                                          merged_kind("fair cascade")}
    test_logits = {k: model(x, length=k) for k in range(3)}
    for point in merged:
        rule = rule_from_dict(point.rule)
        assert any(rule.merge)
        passes = torch.stack([test_logits[k] if r == 0 else tome_forward(model, x, r, length=k)
                              for k, r in enumerate(rule.merge)])
        _, spent, _ = rule_outcome(rule, top_probability(passes), correct_by_length(passes, y),
                                   lengths_flops(model, rule.merge))
        assert point.flops == pytest.approx(float(spent.double().mean()))  # merged FLOPs charged
        entry = evaluation.comparisons[point.name]
        assert {"throughput_vs_simple_peers", "throughput_vs"} <= set(entry)
        assert set(entry["throughput_vs"]) == {"ToMe"}
        # the end-to-end run agrees with the cached outcome on the test images
        assert point.accuracy == point.cached_accuracy
    assert merged_kind("fair cascade") in evaluation.curves
