"""Whether an assigner learned anything, and whether an adaptive policy beats fixed lengths.

- :func:`label_report`: out-of-fold label accuracy against the majority-label prior (the
  accuracy of always answering the commonest label), with a paired percentile-bootstrap
  interval of the difference; the ROC AUC of "needs more tokens" with its interval.
- :func:`mixture_frontier` and :func:`cost_at_accuracy`: the curve of fixed lengths. Sending a
  fraction of the images to one length and the rest to another reaches every point on the
  segment between them (accuracy and cost both average), so the fixed-length curve is the upper
  concave hull of the fixed points in (cost, accuracy); an adaptive policy counts only above it.
  :func:`ratio_at_equal_accuracy` gives how many times cheaper a policy is than a curve at the
  policy's own accuracy (cost = seconds per image, or FLOPs).
- :class:`TimingBootstrap`: those ratios from measured wall-clock rounds, the median over
  interleaved rounds with a bootstrap interval over rounds and test images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def roc_auc(scores: torch.Tensor, positive: torch.Tensor) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); NaN when one
    class is empty."""
    scores, positive = scores.double().flatten(), positive.bool().flatten()
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(scores)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.float64)
    # average ranks over ties
    unique, inverse, counts = torch.unique(sorted_scores, return_inverse=True,
                                           return_counts=True)
    if len(unique) < len(scores):
        rank_sum = torch.zeros(len(unique), dtype=torch.float64).index_add_(
            0, inverse, torch.arange(1, len(scores) + 1, dtype=torch.float64))
        ranks[order] = (rank_sum / counts)[inverse]
    u = float(ranks[positive].sum()) - n_pos * (n_pos + 1) / 2
    return u / (n_pos * n_neg)


def _interval(values: torch.Tensor) -> list[float]:
    values = values[torch.isfinite(values)]
    if len(values) == 0:
        return [float("nan"), float("nan")]
    return [round(float(torch.quantile(values, 0.025)), 4),
            round(float(torch.quantile(values, 0.975)), 4)]


def label_report(predicted: torch.Tensor, labels: torch.Tensor, needs_more: torch.Tensor,
                 positive: torch.Tensor, decidable: torch.Tensor,
                 reference_score: torch.Tensor | None = None, resamples: int = 1000,
                 seed: int = 0) -> dict:
    """Out-of-fold label accuracy vs the majority prior, and the AUC of "needs more tokens".

    ``predicted``/``labels`` (N,): the assigner's implied label and the true smallest-correct
    label (-1 = dropped, left out). ``needs_more`` (N,): the assigner's score;
    ``positive``/``decidable`` (N,): the shortest length is wrong but a longer one is right /
    some length is right (the AUC is over decidable images: shortest right vs needs more).
    ``reference_score``: another score of the same event (e.g. 1 - ReViT's shortest-length
    confidence, what a cascade sees after the short pass) for comparison.
    """
    kept = labels >= 0
    predicted, labels_kept = predicted[kept], labels[kept]
    hits = (predicted == labels_kept).double()
    majority = int(torch.bincount(labels_kept).argmax())
    prior_hits = (labels_kept == majority).double()
    generator = torch.Generator().manual_seed(seed)
    n = len(hits)
    differences = torch.empty(resamples, dtype=torch.float64)
    for i in range(resamples):
        pick = torch.randint(n, (n,), generator=generator)
        differences[i] = hits[pick].mean() - prior_hits[pick].mean()
    auc_scores, auc_positive = needs_more[decidable], positive[decidable]
    report = {
        "images": n,
        "accuracy": round(100.0 * float(hits.mean()), 2),
        "majority_label": majority,
        "majority_share": round(100.0 * float(prior_hits.mean()), 2),
        "accuracy_minus_prior": round(100.0 * float(hits.mean() - prior_hits.mean()), 2),
        "accuracy_minus_prior_ci": [round(100.0 * v, 2) for v in _interval(differences)],
        "needs_more_positives": int(auc_positive.sum()),
        "needs_more_decidable": int(decidable.sum()),
        "needs_more_auc": round(roc_auc(auc_scores, auc_positive), 4),
        "needs_more_auc_ci": _bootstrap_auc(auc_scores, auc_positive, resamples, seed),
        "resamples": resamples,
    }
    if reference_score is not None:
        report["reference_auc"] = round(roc_auc(reference_score[decidable], auc_positive), 4)
    return report


def _bootstrap_auc(scores: torch.Tensor, positive: torch.Tensor, resamples: int,
                   seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed + 1)
    n = len(scores)
    if n == 0 or resamples == 0:
        return [float("nan"), float("nan")]
    values = torch.empty(resamples, dtype=torch.float64)
    for i in range(resamples):
        pick = torch.randint(n, (n,), generator=generator)
        values[i] = roc_auc(scores[pick], positive[pick])
    return _interval(values)


def mixture_frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper concave hull of (cost, accuracy) points from the cheapest point up to the most
    accurate one: what mixing the points' policies over the images can reach."""
    ordered = sorted(set((float(c), float(a)) for c, a in points))
    hull: list[tuple[float, float]] = []
    for point in ordered:
        if hull and point[1] <= hull[-1][1]:
            continue  # costs more, no more accurate: never on the frontier
        while len(hull) >= 2:
            (c1, a1), (c2, a2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord from c1 to the new point
            if (a2 - a1) * (point[0] - c1) <= (point[1] - a1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append(point)
    return hull


def cost_at_accuracy(frontier: Sequence[tuple[float, float]], accuracy: float) -> float | None:
    """The cost at which the frontier reaches ``accuracy``: the cheapest point's cost at or
    below its accuracy, linear along the hull, None above its most accurate point."""
    if not frontier:
        return None
    if accuracy <= frontier[0][1]:
        return frontier[0][0]
    for (c1, a1), (c2, a2) in zip(frontier, frontier[1:]):
        if a1 < accuracy <= a2:
            return c1 + (accuracy - a1) / (a2 - a1) * (c2 - c1)
    return None


def ratio_at_equal_accuracy(frontier: Sequence[tuple[float, float]], cost: float,
                            accuracy: float) -> float | None:
    """How many times cheaper a policy (``cost``, ``accuracy``) is than the frontier at the
    same accuracy (> 1: above the curve); None when it is more accurate than the whole curve."""
    reference = cost_at_accuracy(frontier, accuracy)
    if reference is None or cost <= 0:
        return None
    return reference / cost


def curve_ratio(reference: Sequence[tuple[float, float]], cost: float, accuracy: float) -> float:
    """How many times cheaper (``cost``, ``accuracy``) is than the mixture curve of the
    ``reference`` points at equal accuracy. A policy more accurate than every reference point
    gets the lower bound top_cost / cost when it is also cheaper than the most accurate one
    (it dominates it), else NaN: there is no point at equal accuracy to compare with."""
    frontier = mixture_frontier(reference)
    ratio = ratio_at_equal_accuracy(frontier, cost, accuracy)
    if ratio is not None:
        return ratio
    top_cost = frontier[-1][0] if frontier else float("nan")
    return top_cost / cost if cost > 0 and cost <= top_cost else float("nan")


def _conservative(values: torch.Tensor) -> torch.Tensor:
    """NaN (no comparison exists) ranks lowest: it is never evidence for a policy."""
    values = values.double()
    return torch.where(torch.isnan(values), torch.full_like(values, float("-inf")), values)


def low_median(values: torch.Tensor) -> float:
    """The lower median, NaN ranked lowest (:func:`_conservative`)."""
    ordered = _conservative(values.flatten()).sort().values
    return float(ordered[(len(ordered) - 1) // 2])


def rank_interval(values: torch.Tensor, level: float = 0.95) -> list[float]:
    """Percentile interval by nearest rank (no interpolation, so infinities stay exact), NaN
    ranked lowest."""
    ordered = _conservative(values.flatten()).sort().values
    n = len(ordered)
    low = ordered[max(0, math.ceil((1 - level) / 2 * n) - 1)]
    high = ordered[min(n - 1, math.ceil((1 + level) / 2 * n) - 1)]
    return [float(low), float(high)]


def finite_or_none(value: float, digits: int = 3) -> float | None:
    return round(value, digits) if math.isfinite(value) else None


class TimingBootstrap:
    """Throughput ratios at equal accuracy with intervals over timing rounds and test images.

    ``seconds`` (P, R, N): each policy's wall-clock time per image in each of R interleaved
    rounds (a batch's time shared equally by its images); ``correct`` and ``flops`` (P, N):
    each policy's per-image outcome and cost. A ratio is taken per round (the policy against
    the reference curve measured in that same round, so a slow moment slows both) and the
    median over rounds reported. The interval resamples both sources of spread together:
    ``resamples`` draws of the rounds (with replacement) and of the test images (with
    replacement, the same draw for every policy, so comparisons stay paired); each draw
    recomputes every accuracy, cost and curve and takes the median ratio over its rounds.
    """

    def __init__(self, seconds: torch.Tensor, correct: torch.Tensor, flops: torch.Tensor,
                 resamples: int = 1000, seed: int = 0) -> None:
        policies, rounds, images = seconds.shape
        generator = torch.Generator().manual_seed(seed)
        weights = torch.ones(resamples + 1, images, dtype=torch.float64)
        picks = torch.arange(rounds).repeat(resamples + 1, 1)
        for s in range(1, resamples + 1):
            weights[s] = torch.bincount(torch.randint(images, (images,), generator=generator),
                                        minlength=images).double()
            picks[s] = torch.randint(rounds, (rounds,), generator=generator)
        weights /= images
        self.resamples = resamples
        self.picks = picks  # (S + 1, R); row 0 is the measurement itself
        # (S + 1, P, R): mean seconds per image of each policy in each round, per draw
        self.cost = torch.einsum("prn,sn->spr", seconds.double(), weights)
        self.accuracy = 100.0 * weights @ correct.double().T  # (S + 1, P)
        self.flops = weights @ flops.double().T  # (S + 1, P)

    def _summary(self, values: torch.Tensor, digits: int = 3) -> dict:
        point = float(values[0])
        low, high = rank_interval(values[1:]) if self.resamples else (point, point)
        return {"ratio": finite_or_none(point, digits),
                "ci": [finite_or_none(low, digits), finite_or_none(high, digits)]}

    def versus_curve(self, policy: int, reference: Sequence[int]) -> dict:
        """Throughput ratio against the mixture curve of the ``reference`` policies, median
        over rounds, with its interval and the measured rounds' own ratios."""
        values = torch.empty(len(self.picks), dtype=torch.float64)
        per_round: list[float] = []
        for s, picks in enumerate(self.picks):
            ratios = []
            accuracy, by_round = self.accuracy[s].tolist(), self.cost[s].T.tolist()  # (R, P)
            for r in picks.tolist():
                cost = by_round[r]
                ratios.append(curve_ratio([(cost[i], accuracy[i]) for i in reference],
                                          cost[policy], accuracy[policy]))
            values[s] = low_median(torch.tensor(ratios))
            if s == 0:
                per_round = ratios
        return {**self._summary(values),
                "per_round": [finite_or_none(v) for v in per_round]}

    def flops_versus_curve(self, policy: int, reference: Sequence[int]) -> dict:
        """FLOPs ratio against the reference curve (deterministic at the measurement; the
        interval over test images only)."""
        flops, accuracy = self.flops.tolist(), self.accuracy.tolist()
        values = torch.tensor([curve_ratio([(f[i], a[i]) for i in reference], f[policy],
                                           a[policy]) for f, a in zip(flops, accuracy)])
        return self._summary(values)

    def versus_policy(self, policy: int, other: int) -> dict:
        """Throughput of ``policy`` over ``other`` (median over rounds) and the accuracy
        difference in points, each with its interval."""
        ratios = torch.empty(len(self.picks), dtype=torch.float64)
        for s, picks in enumerate(self.picks):
            ratios[s] = low_median(self.cost[s, other, picks] / self.cost[s, policy, picks])
        difference = self.accuracy[:, policy] - self.accuracy[:, other]
        low, high = rank_interval(difference[1:]) if self.resamples else (0.0, 0.0)
        return {"throughput_ratio": self._summary(ratios),
                "accuracy_difference": {"points": round(float(difference[0]), 2),
                                        "ci": [round(low, 2), round(high, 2)]}}

    def accuracy_interval(self, policy: int) -> list[float]:
        if not self.resamples:
            value = round(float(self.accuracy[0, policy]), 2)
            return [value, value]
        return [round(v, 2) for v in rank_interval(self.accuracy[1:, policy])]
