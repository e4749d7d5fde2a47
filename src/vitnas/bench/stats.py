"""Rank statistics for judging proxies: Kendall tau-b, Spearman rho, Pearson r, top-k precision,
seeded percentile-bootstrap confidence intervals (plain and paired), and the beyond-size
statistics a budgeted search needs: tau within params strata, partial tau given params, and the
budget regret over sliding params windows.

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


def _pair_signs(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """sign(rows[i] - values[j]) by comparison, so no difference of huge values overflows."""
    return ((rows[:, None] > values[None, :]).astype(float)
            - (rows[:, None] < values[None, :]).astype(float))


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """tau-b = (concordant - discordant) / sqrt((n0 - ties_x) (n0 - ties_y)); O(n^2) in chunks."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    n = len(x)
    if n < 2 or np.isnan(x).any() or np.isnan(y).any():
        return math.nan
    s = 0.0
    pairs_x = pairs_y = 0.0
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        dx = _pair_signs(x[start:stop], x)
        dy = _pair_signs(y[start:stop], y)
        s += float((dx * dy).sum())
        pairs_x += float(np.abs(dx).sum())
        pairs_y += float(np.abs(dy).sum())
    if pairs_x == 0 or pairs_y == 0:
        return math.nan
    # every unordered pair was counted twice in each sum
    return s / math.sqrt(pairs_x * pairs_y)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 2 or not (np.isfinite(x).all() and np.isfinite(y).all()):
        return math.nan
    x, y = x / _magnitude(x), y / _magnitude(y)  # no overflow of squares near 1e308
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


def paired_bootstrap_difference(
    first: np.ndarray,
    second: np.ndarray,
    truth: np.ndarray,
    statistic: Callable[[np.ndarray, np.ndarray], float] = kendall_tau_b,
    resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile interval of statistic(first, truth) - statistic(second, truth), both computed on
    the *same* resampled architectures: the two proxies' errors are correlated through the shared
    ground truth, so two separate intervals overstate the uncertainty of their difference."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    truth = np.asarray(truth, dtype=float)
    n = len(truth)
    if n < 3 or resamples <= 0:
        return Interval(math.nan, math.nan)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(first[idx], truth[idx]) - statistic(second[idx], truth[idx])
                       for idx in rng.integers(0, n, size=(resamples, n))])
    values = values[np.isfinite(values)]
    if len(values) == 0:
        return Interval(math.nan, math.nan)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return Interval(float(low), float(high))


def strata_labels(size: np.ndarray, strata: int = 5) -> np.ndarray:
    """Stratum 0..strata-1 of each architecture by its size rank (quantile strata); tied sizes
    share their average rank, hence one stratum."""
    size = np.asarray(size, dtype=float)
    if strata < 1:
        raise ValueError(f"strata must be at least 1, not {strata}")
    ranks = rankdata(size)
    return np.minimum(strata - 1, np.floor((ranks - 0.5) * strata / len(size))).astype(int)


def stratified_kendall(score: np.ndarray, truth: np.ndarray, size: np.ndarray,
                       strata: int = 5) -> float:
    """Mean Kendall tau inside each size stratum (strata with an undefined tau are skipped): what
    a proxy ranks right among architectures of about the same size, which is the choice a
    user with a budget actually faces."""
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    if len(score) < 2:
        return math.nan
    labels = strata_labels(size, strata)
    taus = [kendall_tau_b(score[labels == k], truth[labels == k]) for k in range(strata)]
    finite = [t for t in taus if math.isfinite(t)]
    return float(np.mean(finite)) if finite else math.nan


def partial_kendall(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> float:
    """Partial Kendall tau of x and y given z (Kendall 1942):
    (t_xy - t_xz t_yz) / sqrt((1 - t_xz^2)(1 - t_yz^2)); with z = #params, the agreement a
    proxy has with accuracy beyond what both share with size. Undefined (NaN) when x or y is a
    monotone function of z. Unlike a partial correlation it is not exactly 0 when x and y are
    independent given z (a proxy that is size plus a little noise reads about 0.05-0.1), so read
    it beside the within-strata tau."""
    t_xy, t_xz, t_yz = kendall_tau_b(x, y), kendall_tau_b(x, z), kendall_tau_b(y, z)
    denominator = (1 - t_xz**2) * (1 - t_yz**2)
    if not math.isfinite(t_xy + t_xz + t_yz) or denominator <= 1e-12:
        return math.nan
    return (t_xy - t_xz * t_yz) / math.sqrt(denominator)


def params_windows(size: np.ndarray, fraction: float = 0.2) -> list[np.ndarray]:
    """Every run of k = ceil(fraction n) consecutive architectures in size order (ties in
    submitted order), sliding by one: the budgets a user might have."""
    n = len(size)
    if n == 0:
        return []
    k = min(n, max(1, math.ceil(fraction * n)))
    order = np.argsort(np.asarray(size, dtype=float), kind="stable")
    return [order[start:start + k] for start in range(n - k + 1)]


def _expected_pick(score: np.ndarray, truth: np.ndarray) -> float:
    """Accuracy of the proxy's top pick; a tie at the top is broken at random, so its expected
    value (the mean over the tied) is returned. Non-finite scores are never picked unless all
    are."""
    finite = np.isfinite(score)
    if not finite.any():
        return float(truth.mean())
    top = score == score[finite].max()
    return float(truth[top].mean())


def _magnitude(values: np.ndarray) -> float:
    """The largest finite magnitude (1 when there is none): statistics computed on values
    divided by it (a correlation, a regret scaled back) do not overflow near 1e308."""
    finite = np.abs(values[np.isfinite(values)])
    largest = float(finite.max()) if len(finite) else 0.0
    return largest if largest > 0 else 1.0


def budget_regret(score: np.ndarray, truth: np.ndarray, size: np.ndarray,
                  fraction: float = 0.2) -> float:
    """Mean over sliding params windows of (best accuracy in the window) - (accuracy of the
    proxy's top pick in it), in the accuracy's units; 0 is perfect, lower is better. Non-finite
    scores count as the worst (as in search), so a failing proxy is not judged on fewer
    windows."""
    score, truth = np.asarray(score, dtype=float), np.asarray(truth, dtype=float)
    windows = params_windows(size, fraction)
    if not windows:
        return math.nan
    unit = _magnitude(truth)
    truth = truth / unit
    return unit * float(np.mean([truth[w].max() - _expected_pick(score[w], truth[w])
                                 for w in windows]))


def random_pick_regret(truth: np.ndarray, size: np.ndarray, fraction: float = 0.2) -> float:
    """The regret of a uniformly random pick, exactly: its expected pick is the window mean."""
    truth = np.asarray(truth, dtype=float)
    windows = params_windows(size, fraction)
    if not windows:
        return math.nan
    unit = _magnitude(truth)
    truth = truth / unit
    return unit * float(np.mean([truth[w].max() - truth[w].mean() for w in windows]))


def residual_ranks(values: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` minus their least-squares fit (with intercept) on the ranks of each
    covariate column: what is left of the ordering once the covariates' orderings are
    explained linearly."""
    ranks = rankdata(values)
    design = np.column_stack([np.ones(len(ranks)),
                              *(rankdata(c) for c in np.atleast_2d(covariates.T))])
    coefficients, *_ = np.linalg.lstsq(design, ranks, rcond=None)
    residual = ranks - design @ coefficients
    # a residual at rounding level is no signal (a covariate that already orders the values)
    residual[np.abs(residual) < 1e-9 * max(1.0, float(np.abs(ranks).max()))] = 0.0
    return residual


def partial_kendall_given(x: np.ndarray, y: np.ndarray, covariates: np.ndarray) -> float:
    """Kendall tau of x and y after both lose what the covariates' ranks explain (residual
    ranks, ``residual_ranks``), with covariates = (#params, depth, width): the agreement a
    proxy has with accuracy beyond the architecture's shape (issue 23). A proxy that is a
    linear function of those ranks reads NaN (nothing left); a monotone but curved one
    (logsize, depth-then-params) keeps a small residual, so read it beside
    ``within_group_kendall``."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    covariates = np.asarray(covariates, dtype=float).reshape(len(x), -1)
    if len(x) < covariates.shape[1] + 3:
        return math.nan
    return kendall_tau_b(residual_ranks(x, covariates), residual_ranks(y, covariates))


def within_group_kendall(score: np.ndarray, truth: np.ndarray, group: np.ndarray,
                         min_size: int = 3) -> float:
    """Kendall tau inside each group of equal ``group`` value (e.g. depth), averaged with
    weights = the group's number of pairs: how well a proxy orders architectures of the same
    depth, where a depth count knows nothing. Groups smaller than ``min_size`` or with an
    undefined tau are skipped."""
    score, truth, group = (np.asarray(a, dtype=float) for a in (score, truth, group))
    taus, weights = [], []
    for value in np.unique(group):
        inside = group == value
        n = int(inside.sum())
        if n < min_size:
            continue
        tau = kendall_tau_b(score[inside], truth[inside])
        if math.isfinite(tau):
            taus.append(tau)
            weights.append(n * (n - 1) / 2)
    return float(np.average(taus, weights=weights)) if taus else math.nan
