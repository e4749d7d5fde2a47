"""Rank statistics against scipy, the seeded bootstrap (plain and paired), the beyond-size
statistics on hand-made cases, named ensembles, and the training-noise ceiling."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from vitnas.bench.correlate import (
    Ensemble,
    Scoreboard,
    ScoreboardConfig,
    judge,
    parse_ensemble,
    rejudge,
    scoreboard_specs,
)
from vitnas.bench.files import Benchmark, BenchmarkRecord
from vitnas.bench.noise import (
    average_seeds,
    noise_ceiling,
    paired_seeds,
    reliability,
    simulate_noise_ceiling,
)
from vitnas.bench.stats import (
    bootstrap_interval,
    budget_regret,
    kendall_tau_b,
    paired_bootstrap_difference,
    params_windows,
    partial_kendall,
    pearson,
    random_pick_regret,
    rankdata,
    spearman_rho,
    strata_labels,
    stratified_kendall,
    top_precision,
)
from vitnas.errors import ConfigError
from vitnas.proxies import get_proxy
from vitnas.proxies.shape import SHAPE_BASELINES
from vitnas.search.aggregate import fitness


def data_with_ties(seed: int, n: int = 80):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, n).astype(float)  # many ties
    y = 0.5 * x + rng.normal(size=n)
    y[::7] = y[0]  # ties in y as well
    return x, y


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tau_rho_pearson_match_scipy_with_ties(seed):
    x, y = data_with_ties(seed)
    assert kendall_tau_b(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(scipy_stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(scipy_stats.pearsonr(x, y).statistic, abs=1e-12)
    assert np.array_equal(rankdata(x), scipy_stats.rankdata(x))


def test_tau_over_chunk_boundary_matches_scipy():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=1100), rng.normal(size=1100)
    assert kendall_tau_b(x, y) == pytest.approx(scipy_stats.kendalltau(x, y).statistic, abs=1e-12)


def test_perfect_reversed_and_constant():
    x = np.arange(10.0)
    assert kendall_tau_b(x, x) == pytest.approx(1.0)
    assert spearman_rho(x, -x) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau_b(x, np.ones(10)))
    assert math.isnan(pearson(np.ones(10), x))


def test_top_precision():
    truth = np.arange(20.0)
    assert top_precision(truth, truth, 0.1) == 1.0
    assert top_precision(-truth, truth, 0.1) == 0.0
    swapped = truth.copy()
    swapped[[19, 0]] = swapped[[0, 19]]
    assert top_precision(swapped, truth, 0.1) == 0.5  # k = 2, one of two found


def test_bootstrap_contains_estimate_and_is_seeded():
    x, y = data_with_ties(4)
    estimate = kendall_tau_b(x, y)
    interval = bootstrap_interval(x, y, kendall_tau_b, resamples=300, seed=7)
    assert interval.low < estimate < interval.high
    assert interval == bootstrap_interval(x, y, kendall_tau_b, resamples=300, seed=7)
    assert interval != bootstrap_interval(x, y, kendall_tau_b, resamples=300, seed=8)
    wider = bootstrap_interval(x, y, kendall_tau_b, resamples=300, level=0.99, seed=7)
    assert wider.low <= interval.low and wider.high >= interval.high


def test_bootstrap_of_too_few_points_is_nan():
    interval = bootstrap_interval(np.arange(2.0), np.arange(2.0), kendall_tau_b)
    assert math.isnan(interval.low) and math.isnan(interval.high)


# --- beyond size ----------------------------------------------------------------------------
def test_strata_are_size_quantiles_and_ties_share_one():
    assert strata_labels(np.arange(10.0), 5).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert strata_labels(np.array([5.0, 1, 1, 1, 9, 9]), 2).tolist() == [1, 0, 0, 0, 1, 1]
    with pytest.raises(ValueError):
        strata_labels(np.arange(3.0), 0)


def test_strata_of_an_odd_count_put_the_middle_size_in_the_upper_stratum():
    # rank r falls in floor((r - 1/2) * strata / n): the middle of three is at exactly 1.0
    assert strata_labels(np.arange(3.0), 2).tolist() == [0, 1, 1]


def test_within_strata_tau_is_the_mean_of_the_strata():
    size = np.arange(6.0)  # strata {0, 1, 2} and {3, 4, 5}
    truth = np.arange(6.0)
    score = np.array([1.0, 2, 3, 6, 4, 5])  # tau 1 in the first, (1 - 2) / 3 in the second
    assert stratified_kendall(score, truth, size, strata=2) == pytest.approx((1 - 1 / 3) / 2)
    # ranking by size is perfect overall but knows nothing inside a stratum of equal size
    assert math.isnan(stratified_kendall(np.repeat([1.0, 2.0], 3), truth, np.repeat([1, 2], 3),
                                         strata=2))


def test_partial_tau_by_hand():
    z = np.array([1.0, 2, 3, 4])
    x = np.array([1.0, 3, 2, 4])  # t_xz = (5 - 1) / 6 = 2/3
    y = np.array([2.0, 1, 4, 3])  # t_yz = (4 - 2) / 6 = 1/3, t_xy = (3 - 3) / 6 = 0
    expected = (0 - 2 / 3 * 1 / 3) / math.sqrt((1 - 4 / 9) * (1 - 1 / 9))
    assert partial_kendall(x, y, z) == pytest.approx(expected)
    assert expected == pytest.approx(-2 / math.sqrt(40))


def test_partial_tau_separates_size_knowledge_from_knowledge_beyond_size():
    rng = np.random.default_rng(0)
    params = rng.normal(size=1500)
    beyond = rng.normal(size=1500)
    accuracy = np.tanh(params) + beyond  # a function of size plus an orthogonal part
    assert math.isnan(partial_kendall(params, accuracy, params))  # nothing left once given size
    assert math.isnan(partial_kendall(2 * params + 1, accuracy, params))
    # a proxy that knows only size: its tau is large, its partial tau small (about 0.05 here,
    # not 0: Kendall's partial tau does not vanish under conditional independence)
    size_only = params + 0.05 * rng.normal(size=1500)
    assert kendall_tau_b(size_only, accuracy) > 0.3
    assert abs(partial_kendall(size_only, accuracy, params)) < 0.08
    assert partial_kendall(beyond, accuracy, params) > 0.5


def test_windows_hold_a_fifth_and_slide_by_one():
    windows = params_windows(np.array([5.0, 1, 4, 2, 3, 0, 9, 8, 7, 6]), 0.2)
    assert len(windows) == 9 and all(len(w) == 2 for w in windows)
    assert windows[0].tolist() == [5, 1] and windows[-1].tolist() == [7, 6]


def test_regret_by_hand():
    size = np.arange(5.0)
    truth = np.array([3.0, 1, 4, 1, 5])
    # windows of ceil(0.4 * 5) = 2: {0,1} {1,2} {2,3} {3,4}, best 3, 4, 4, 5
    assert budget_regret(truth, truth, size, 0.4) == 0.0
    assert budget_regret(size, truth, size, 0.4) == pytest.approx((2 + 0 + 3 + 0) / 4)
    assert budget_regret(-size, truth, size, 0.4) == pytest.approx((0 + 3 + 0 + 4) / 4)
    # random pick: the window mean, 2, 2.5, 2.5, 3
    assert random_pick_regret(truth, size, 0.4) == pytest.approx((1 + 1.5 + 1.5 + 2) / 4)
    # a constant proxy ties everywhere: its expected pick is the random one
    assert budget_regret(np.ones(5), truth, size, 0.4) == random_pick_regret(truth, size, 0.4)
    # a failed score is never picked while another is finite
    failed = truth.copy()
    failed[4] = math.nan
    assert budget_regret(failed, truth, size, 0.4) == pytest.approx((0 + 0 + 0 + 4) / 4)


# --- paired bootstrap -----------------------------------------------------------------------
def test_paired_bootstrap_of_the_truth_against_its_reverse_is_exactly_two():
    # on every resample with two distinct values tau(truth) = 1 and tau(-truth) = -1, so the
    # difference is 2 whatever the draw, and its sign follows the argument order
    truth = np.array([3.0, 1, 4, 1, 5, 9, 2, 6])
    forward = paired_bootstrap_difference(truth, -truth, truth, resamples=100, seed=3)
    backward = paired_bootstrap_difference(-truth, truth, truth, resamples=100, seed=3)
    assert (forward.low, forward.high) == pytest.approx((2.0, 2.0))
    assert (backward.low, backward.high) == pytest.approx((-2.0, -2.0))


def test_paired_interval_is_narrower_than_either_proxy_alone_and_seeded():
    rng = np.random.default_rng(6)
    truth = rng.normal(size=60)
    first = truth + rng.normal(size=60)
    second = first + 0.1 * rng.normal(size=60)  # nearly the same proxy
    paired = paired_bootstrap_difference(first, second, truth, resamples=300, seed=1)
    alone = bootstrap_interval(first, truth, kendall_tau_b, resamples=300, seed=1)
    assert paired.contains(kendall_tau_b(first, truth) - kendall_tau_b(second, truth))
    assert paired.high - paired.low < (alone.high - alone.low) / 3
    assert paired == paired_bootstrap_difference(first, second, truth, resamples=300, seed=1)
    worse = paired_bootstrap_difference(-first, first, truth, resamples=300, seed=1)
    assert worse.high < 0


# --- scoreboard rows: ensembles and the beyond-size columns ----------------------------------
def test_ensemble_grammar():
    assert parse_ensemble("ens:nwot+params").members == ("nwot", "params")
    options = parse_ensemble("ens:vintk:mode=band,cutoff=0.5+zen")
    assert options.members == ("vintk:mode=band,cutoff=0.5", "zen")
    assert options.name == "ens:vintk:mode=band,cutoff=0.5+zen"
    for bad in ("ens:nwot", "ens:nwot+nwot", "ens:", "ens:nwot+nosuchproxy"):
        with pytest.raises(ConfigError):
            parse_ensemble(bad)
    # spaces around '+' are layout, as around ',' in every other grammar; ensembles do not nest
    assert parse_ensemble("ens: nwot + params ").members == ("nwot", "params")
    with pytest.raises(ConfigError, match="ensembles do not nest"):
        parse_ensemble("ens:ens:depth+width+logsize")
    with pytest.raises(ConfigError, match="unknown proxy 'ENS'"):  # the name, before options
        get_proxy("ENS:depth+width")
    assert scoreboard_specs("nwot,ens:zen+vintk:mode=band,cutoff=0.5,ens:vintk:mode=band,"
                            "cutoff=0.5+zen") == [
        *SHAPE_BASELINES, "nwot", "zen", "vintk:mode=band,cutoff=0.5",
        "ens:zen+vintk:mode=band,cutoff=0.5"]


def test_ensemble_is_the_rank_sum_search_ranks_by():
    ensemble = Ensemble(("a", "b"))
    scores = {"a": np.array([1.0, 2, 3, math.nan]), "b": np.array([1.0, 3, 2, 4])}
    # ranks a: nan worst -> [2, 3, 4, 1]; b: [1, 3, 2, 4]
    assert ensemble.combine(scores).tolist() == [3, 6, 6, 5]
    columns = np.column_stack([scores["a"], scores["b"]])
    assert np.array_equal(ensemble.combine(scores), fitness(columns))


def test_judge_fills_beyond_size_columns():
    config = ScoreboardConfig(proxies=(), metric="top1", resamples=50, strata=2,
                              regret_window=0.4)
    size = np.arange(6.0)
    truth = np.array([3.0, 1, 4, 1, 5, 9])
    # tau(size, truth) by hand: 11 concordant, 3 discordant, one tie in truth -> 8 / sqrt(15 * 14)
    tau_size = 8 / math.sqrt(210)
    size_row = judge("size", size, truth, np.ones(6), config, size)
    assert size_row.kendall == pytest.approx(tau_size)
    assert math.isnan(size_row.partial_kendall)
    # the reversed size proxy: tau is odd, so on every shared resample the difference is
    # -2 tau(size), and the paired interval is the size interval mirrored and doubled
    row = judge("reversed", -size, truth, np.ones(6), config, size)
    assert row.delta_kendall == pytest.approx(-2 * tau_size)
    low, high = size_row.kendall_ci
    assert row.delta_kendall_ci == pytest.approx((-2 * high, -2 * low))
    oracle = judge("oracle", truth, truth, np.ones(6), config, size)
    assert oracle.regret == 0 and oracle.within_strata_kendall == pytest.approx(1.0)
    assert oracle.delta_kendall == pytest.approx(1 - kendall_tau_b(size, truth))
    old = judge("x", truth, truth, np.ones(6), config)
    assert math.isnan(old.regret)


def old_board() -> dict:
    """A scoreboard as files written before the beyond-size columns hold it (NaN included)."""
    truth = [3.0, 1, 4, 1, 5, 9, 2, 6]
    row = {"n": 8, "failed": 0, "kendall": 0.1, "kendall_ci": [0.0, 0.2], "spearman": 0.1,
           "spearman_ci": [0.0, 0.2], "pearson": math.nan, "pearson_ci": [math.nan, math.nan],
           "top_precision": 0.0, "seconds": 0.5}
    return {"benchmark": "b", "space": "s", "metric": "top1", "split": "test", "n": 8,
            "rows": [{**row, "proxy": "params"}, {**row, "proxy": "oracle"}],
            "config": {"proxies": ["oracle"], "metric": "top1", "batch": "cifar10",
                       "batch_size": 32, "seed": 0, "split": "test", "dev_fraction": 0.5,
                       "split_seed": 0, "resamples": 40, "level": 0.95, "top_fraction": 0.1},
            "scores": {"params": [1.0, 2, 3, 4, 5, 6, 7, 8], "oracle": truth},
            "accuracy": truth, "command": "vitnas bench correlate ..."}


def test_old_scoreboards_load_and_rejudge_fills_the_new_columns():
    board = Scoreboard.from_dict(json.loads(json.dumps(old_board())))
    assert math.isnan(board.row("oracle").regret) and math.isnan(board.random_regret)
    again = rejudge(board)
    assert again.row("oracle").regret == 0 and again.row("oracle").kendall == 1.0
    assert again.row("params").delta_kendall == 0 and again.params == board.scores["params"]
    assert again.random_regret > 0
    text = json.dumps(again.as_dict(), allow_nan=False)  # strict JSON: NaN written as null
    assert Scoreboard.from_dict(json.loads(text)).as_dict() == again.as_dict()
    subset = rejudge(board, truth=[-v for v in board.accuracy], keep=[0, 2, 4, 6])
    assert subset.n == 4 and subset.row("oracle").kendall == -1.0
    assert subset.scores["oracle"] == [3.0, 4, 5, 2]


def test_best_is_the_highest_finite_tau_among_one_proxys_variants():
    # a variant with no score (NaN tau) comes first, and a better proxy whose name merely
    # starts with "vintk" is not one of its variants
    data = old_board()
    truth = data["accuracy"]
    data["scores"].update({"vintk:sigma=3": [math.nan] * 8, "vintk:sigma=1": [-t for t in truth],
                           "vintk:sigma=2": [2.0, 1, 4, 1, 5, 9, 3, 6], "vintkx": truth})
    board = rejudge(Scoreboard.from_dict(json.loads(json.dumps(data))))
    assert 0 < board.row("vintk:sigma=2").kendall < board.row("vintkx").kendall == 1.0
    assert board.best("vintk").proxy == "vintk:sigma=2"
    assert board.best("params").proxy == "params"
    with pytest.raises(ConfigError, match="no nwot variant has a finite Kendall tau"):
        board.best("nwot")


def test_the_table_names_the_top_fraction_it_judged_never_a_false_zero():
    from vitnas.bench.report import table_rows

    for fraction, header in ((0.1, "top-10%"), (0.025, "top-2.5%"), (1e-9, "top-1e-07%")):
        data = old_board()
        data["config"]["top_fraction"] = fraction
        assert header in table_rows(rejudge(Scoreboard.from_dict(data)))[0]


# --- noise ceiling --------------------------------------------------------------------------
def test_noise_ceiling_by_hand():
    # tau 0.31 -> r = sin(0.155 pi) = 0.4679; one seed: r = sqrt(0.4679) = 0.6840
    assert reliability(0.31) == pytest.approx(math.sin(0.155 * math.pi))
    assert noise_ceiling(0.31) == pytest.approx(2 / math.pi * math.asin(0.6840), abs=1e-4)
    assert 0.47 < noise_ceiling(0.31) < 0.49
    # two seeds averaged: Spearman-Brown, r^2 = 2R / (1 + R)
    two = math.sqrt(2 * reliability(0.31) / (1 + reliability(0.31)))
    assert noise_ceiling(0.31, seeds=2) == pytest.approx(2 / math.pi * math.asin(two))
    assert noise_ceiling(1.0) == 1.0 and noise_ceiling(0.0) == 0.0
    assert noise_ceiling(-0.2) == 0.0
    assert noise_ceiling(0.31) < noise_ceiling(0.31, 2) < noise_ceiling(0.31, 10) < 1


def test_simulated_ceiling_matches_the_formula():
    ceiling, agreement = simulate_noise_ceiling(0.31, n=60, seeds=1, trials=300, seed=0)
    assert agreement == pytest.approx(0.31, abs=0.02)
    assert ceiling == pytest.approx(noise_ceiling(0.31), abs=0.02)
    two, _ = simulate_noise_ceiling(0.31, n=60, seeds=2, trials=300, seed=0)
    assert two == pytest.approx(noise_ceiling(0.31, 2), abs=0.02)


class KeySpace:
    def key(self, arch):
        return str(arch)


def test_average_seeds_means_where_both_exist():
    first = Benchmark("a", KeySpace(), [BenchmarkRecord(i, {"top1": v})
                                        for i, v in enumerate([30.0, 31, None, 33])])
    second = Benchmark("b", KeySpace(), [BenchmarkRecord(i, {"top1": v})
                                         for i, v in [(3, 35.0), (0, 32.0), (2, 40.0)]])
    indices, a, b = paired_seeds(first, second, "top1")
    assert indices == [0, 3] and a.tolist() == [30, 33] and b.tolist() == [32, 35]
    mean = average_seeds(first, second, "top1")
    assert mean.values("top1") == [31.0, 31.0, None, 34.0]
    assert [r.values["top1_seeds"] for r in mean.records] == [2, 1, 1, 2]
    both = average_seeds(first, second, "top1", both_only=True)
    assert [r.arch for r in both.records] == [0, 3]


def test_logrank_ensemble_is_aznas_aggregate_and_rewards_agreement():
    ensemble = parse_ensemble("logrank:params+l2_norm")
    assert ensemble.name == "logrank:params+l2_norm"
    scores = {"params": np.array([4.0, 2.0, 1.0, 3.0]), "l2_norm": np.array([1.0, 3.0, 2.0, 4.0])}
    combined = ensemble.combine(scores)
    expected = np.log(np.array([4, 2, 1, 3]) / 4) + np.log(np.array([1, 3, 2, 4]) / 4)
    assert np.allclose(combined, expected)
    # the rank sum ties architectures 0 (ranks 4 and 1) and 1 (ranks 2 and 3); the log-rank
    # prefers the one both members rank fairly high
    ranks = Ensemble(("params", "l2_norm")).combine(scores)
    assert ranks[0] == ranks[1] == 5
    assert combined[1] > combined[0]
    assert scoreboard_specs("ens:params+l2_norm,logrank:params+l2_norm")[-2:] == [
        "ens:params+l2_norm", "logrank:params+l2_norm"]


def test_correlate_builds_ensemble_rows_from_member_scores(tmp_path):
    from vitnas.bench.correlate import correlate
    from vitnas.spaces import get_space
    from vitnas.store import ScoreStore

    space = get_space("autoformer-tiny-micro")
    rng = np.random.default_rng(0)
    records = [BenchmarkRecord(space.sample(i), {"top1": float(rng.normal())}) for i in range(8)]
    bench = Benchmark("b", space, records)
    config = ScoreboardConfig(proxies=("ens:params+l2_norm",), metric="top1",
                              batch="gaussian", batch_size=2, resamples=20)
    with ScoreStore(tmp_path / "s.sqlite") as store:
        board = correlate(bench, config, store)
    names = [r.proxy for r in board.rows]
    assert names == [*SHAPE_BASELINES, "l2_norm", "ens:params+l2_norm"]
    members = np.column_stack([board.scores["params"], board.scores["l2_norm"]])
    assert board.scores["ens:params+l2_norm"] == fitness(members).tolist()
    assert board.params == [float(space.params(r.arch)) for r in records]
    assert board.row("params").delta_kendall == 0 and math.isfinite(board.random_regret)


# --- reliability: a board says when its ground truth is at noise --------------------------------
class NamedKeySpace(KeySpace):
    name = "toy"


def seeds(first_values, second_values, space=None):
    """A ground truth and a second training of its architectures 0..k-1."""
    first = Benchmark("gt", NamedKeySpace(), [BenchmarkRecord(i, {"miou": v})
                                              for i, v in enumerate(first_values)])
    second = Benchmark("gt_seed1", space or NamedKeySpace(),
                       [BenchmarkRecord(i, {"miou": v}) for i, v in enumerate(second_values)])
    return first, second


def test_seed_reliability_and_the_at_noise_flag_by_hand():
    from vitnas.bench.noise import seed_reliability

    # two adjacent swaps: 8 of the 10 pairs concordant, tau = (8 - 2) / 10 = 0.6
    first, second = seeds([1.0, 2, 3, 4, 5, 6], [2.0, 1, 3, 5, 4])
    clear = seed_reliability(first, second, "miou", resamples=200)
    assert clear["seed_kendall"] == pytest.approx(0.6) and clear["pairs"] == 5
    assert clear["ceiling"] == pytest.approx(noise_ceiling(0.6)) and not clear["at_noise"]
    low, high = clear["seed_kendall_ci"]
    assert -1 <= low < 0.6 < high <= 1 and clear["second_seed"] == "gt_seed1"
    # (1, 2), (2, 3) -> (2, 3), (3, 1): 7 concordant, 3 discordant, tau 0.4 < 0.5
    noisy = seed_reliability(*seeds([1.0, 2, 3, 4, 5], [2.0, 3, 1, 5, 4]), "miou",
                             resamples=0)
    assert noisy["seed_kendall"] == pytest.approx(0.4) and noisy["at_noise"]
    assert all(math.isnan(v) for v in noisy["seed_kendall_ci"])  # no resamples, no interval
    with pytest.raises(ConfigError, match="trained 2 of the architectures"):
        seed_reliability(*seeds([1.0, 2, 3], [1.0, 2]), "miou")

    class Other(KeySpace):
        name = "other"

    with pytest.raises(ConfigError, match="ground truth of other, not of toy"):
        seed_reliability(*seeds([1.0, 2, 3], [1.0, 2, 3], Other()), "miou")


def test_a_board_records_its_reliability_and_its_report_says_at_noise():
    import dataclasses

    from vitnas.bench.report import markdown_table

    old = Scoreboard.from_dict(json.loads(json.dumps(old_board())))
    assert old.reliability is None and old.at_noise is None  # boards before the field load
    assert "Reliability" not in markdown_table(rejudge(old))
    reliability = {"seed_kendall": 0.36, "seed_kendall_ci": [-0.12, 0.83], "pairs": 8,
                   "ceiling": 0.53, "second_seed": "s3seg_seed1"}
    board = dataclasses.replace(rejudge(old), reliability=reliability, at_noise=True)
    text = markdown_table(board)
    assert ("seed-vs-seed Kendall tau 0.360 [95% CI -0.12, 0.83] on 8 architectures trained "
            "twice; noise ceiling (a perfect proxy's expected tau) 0.530") in text
    assert "**At noise**" in text
    saved = json.loads(json.dumps(board.as_dict(), allow_nan=False))
    assert saved["reliability"] == reliability and saved["at_noise"] is True
    again = Scoreboard.from_dict(saved)
    assert again.reliability == reliability and again.at_noise
    assert rejudge(again).reliability == reliability  # the same truth keeps it
    assert rejudge(again, keep=[0, 1, 2]).reliability is None  # another truth has not one
    fine = dataclasses.replace(board, reliability={**reliability, "seed_kendall": 0.7},
                               at_noise=False)
    assert "0.700" in markdown_table(fine) and "At noise" not in markdown_table(fine)


def test_correlate_with_a_second_seed_records_the_reliability(tmp_path):
    from vitnas.bench.correlate import correlate
    from vitnas.spaces import get_space
    from vitnas.store import ScoreStore

    space = get_space("autoformer-tiny-micro")
    archs = [space.sample(i) for i in range(8)]
    bench = Benchmark("b", space, [BenchmarkRecord(a, {"top1": float(i)})
                                   for i, a in enumerate(archs)])
    repeat = Benchmark("b_seed1", space, [BenchmarkRecord(a, {"top1": float(-i)})
                                          for i, a in enumerate(archs[:4])])
    config = ScoreboardConfig(proxies=("params",), metric="top1", batch="gaussian",
                              batch_size=2, resamples=20)
    with ScoreStore(tmp_path / "s.sqlite") as store:
        board = correlate(bench, config, store, repeat=repeat)
    assert board.reliability["pairs"] == 4 and board.reliability["seed_kendall"] == -1.0
    assert board.at_noise is True and "at_noise" not in board.reliability


def test_an_infinite_proxy_score_is_strict_json_and_reads_back_as_itself():
    import dataclasses

    board = rejudge(Scoreboard.from_dict(json.loads(json.dumps(old_board()))))
    spec = next(iter(board.scores))
    scores = list(board.scores[spec])
    scores[0], scores[1] = -math.inf, math.nan  # nwot's -inf on a degenerate net; no score
    board = dataclasses.replace(board, scores={**board.scores, spec: scores})
    text = json.dumps(board.as_dict(), allow_nan=False)  # would raise on -inf or NaN
    saved = json.loads(text)
    assert saved["scores"][spec][:2] == ["-inf", None]
    again = Scoreboard.from_dict(saved)
    assert again.scores[spec][0] == -math.inf and math.isnan(again.scores[spec][1])
    assert again.scores[spec][2:] == scores[2:]
