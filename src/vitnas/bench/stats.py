"""Rank statistics for judging proxies: Kendall tau-b, Spearman rho, Pearson r, top-k precision,
and seeded percentile-bootstrap confidence intervals.

Written out in numpy (and checked against scipy in the tests) so ties, NaN policy and the
bootstrap are under our control: non-finite scores are dropped and *counted* by the caller,
never replaced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

CHUNK = 512


def rankdata(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties given their average rank."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    ranks = np.empty(len(values))
    starts = np.flatnonzero(np.r_[True, sorted_values[1:] != sorted_values[:-1]])
    ends = np.r_[starts[1:], len(values)]
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2
    return ranks


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """tau-b = (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)); O(n^2) in chunks."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan
    s = 0.0
    pairs_x = pairs_y = 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        dx = np.sign(x[start:stop, None] - x[None, :])
        dy = np.sign(y[start:stop, None] - y[None, :])
        s += float((dx * dy).sum())
        pairs_x += float(np.abs(dx).sum())
        pairs_y += float(np.abs(dy).sum())
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    # every unordered pair was counted twice in each sum
    return s / math.sqrt(pairs_x * pairs_y)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2:
        return math.nan
    xc, yc = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xc * xc).sum()) * float((yc * yc).sum()))
    return float((xc * yc).sum()) / denom if denom > 0 else math.nan


def spearman_rho(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation of average ranks (the tie-correct Spearman)."""
    return pearson(rankdata(x), rankdata(y))


def top_precision(score: np.ndarray, truth: np.ndarray, fraction: float = 0.1) -> float:
    """Share of the proxy's top ``fraction`` that is also in the true top ``fraction``
    (k = ceil(fraction * n), ties broken by position, so a constant proxy scores chance)."""
    n = len(score)
    if n == 0:
        return math.nan
    k = max(1, math.ceil(fraction * n))
    best_by_score = set(np.argsort(-np.asarray(score, dtype=float), kind="stable")[:k].tolist())
    best_by_truth = set(np.argsort(-np.asarray(truth, dtype=float), kind="stable")[:k].tolist())
    return len(best_by_score & best_by_truth) / k


STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "kendall": kendall_tau_b,
    "spearman": spearman_rho,
    "pearson": pearson,
}


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


def bootstrap_interval(
    x: np.ndarray,
    y: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float],
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap over architectures (pairs resampled together), seeded."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 3 or resamples <= 0:
        return Interval(math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(x[idx], y[idx])
                       for idx in rng.integers(0, n, size=(resamples, n))])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high))
