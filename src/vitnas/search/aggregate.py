"""Several proxies at once: rank aggregation (TE-NAS) and Pareto fronts.

Scores are normalised so higher is better; a non-finite score counts as the worst possible.
Every ordering breaks ties by the architecture key, so it never depends on evaluation order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import rankdata

AGGREGATES = ("rank", "pareto")


def _worst_for_nan(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, -np.inf)


def rank_sum(scores: np.ndarray) -> np.ndarray:
    """Sum over proxies of each candidate's rank (1 = worst, ties averaged): TE-NAS (Chen et al.
    2021, sec. 3.3) combines the NTK condition number and linear regions this way, so proxies
    on different scales weigh the same."""
    scores = _worst_for_nan(np.asarray(scores, dtype=float))
    if scores.size == 0:
        return np.zeros(len(scores))
    return np.sum([rankdata(column) for column in scores.T], axis=0)


def fitness(scores: np.ndarray) -> np.ndarray:
    """One proxy: its score (so plots show the proxy's own scale); several: the rank sum."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 2 and scores.shape[1] == 1:
        return _worst_for_nan(scores[:, 0])
    return rank_sum(scores)


def pareto_front(objectives: np.ndarray) -> list[int]:
    """Indices of rows no other row dominates (all objectives maximised; NSGA-II's first
    front, Deb et al. 2002)."""
    objectives = _worst_for_nan(np.asarray(objectives, dtype=float))
    keep = []
    for i, row in enumerate(objectives):
        dominators = (objectives >= row).all(axis=1) & (objectives > row).any(axis=1)
        if not dominators.any():
            keep.append(i)
    return keep


SIZE_PROXIES = ("params", "flops")  # costs: already the "down" objectives of a front


def pareto_objectives(scores: np.ndarray, params: Sequence[int], flops: Sequence[int],
                      proxies: Sequence[str] | None = None) -> np.ndarray:
    """Every proxy score up, parameters and FLOPs down. Given the ``proxies``' names, a size
    proxy is left out of the "up" side: against its own cost every architecture would be a
    trade-off, and the front would be everything."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim == 1:
        scores = scores[:, None]
    if proxies is not None:
        quality = [i for i, spec in enumerate(proxies)
                   if spec.partition(":")[0] not in SIZE_PROXIES]
        scores = scores[:, quality]
    costs = -np.column_stack([np.asarray(params, dtype=float), np.asarray(flops, dtype=float)])
    return np.column_stack([scores, costs])


def selection_order(scores: np.ndarray, params: Sequence[int], flops: Sequence[int],
                    keys: Sequence[str], aggregate: str, needed: int | None = None,
                    proxies: Sequence[str] | None = None) -> list[int]:
    """Candidates best first. ``rank``: by fitness. ``pareto``: by non-dominated front over
    (proxies, -params, -FLOPs), then fitness within a front. ``needed`` stops the (quadratic)
    front peeling once that many are ordered."""
    value = fitness(scores)

    def by_fitness(indices: Sequence[int]) -> list[int]:
        return sorted(indices, key=lambda i: (-value[i], keys[i]))

    if aggregate == "rank":
        return by_fitness(range(len(keys)))
    order: list[int] = []
    remaining = np.arange(len(keys))
    objectives = pareto_objectives(scores, params, flops, proxies)
    while remaining.size and (needed is None or len(order) < needed):
        front = [int(remaining[i]) for i in pareto_front(objectives[remaining])]
        order.extend(by_fitness(front))
        remaining = np.setdiff1d(remaining, front)
    return order
