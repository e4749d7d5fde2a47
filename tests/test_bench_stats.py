"""Rank statistics against scipy, and the seeded bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats

from vitnas.bench.stats import (
    bootstrap_interval,
    kendall_tau_b,
    pearson,
    rankdata,
    spearman_rho,
    top_precision,
)


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
