"""Everything a search has scored, in the order it was proposed, and the rankings over it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vitnas.search.aggregate import fitness, pareto_front, pareto_objectives, selection_order
from vitnas.search.candidates import Candidate


@dataclass(frozen=True)
class Evaluation:
    """A scored candidate. ``seconds`` is what the proxies took when they were computed (maybe
    in an earlier search); ``reused`` says the scores came from the store."""

    index: int
    candidate: Candidate
    scores: tuple[float, ...]
    raws: tuple[float, ...]
    warnings: tuple[str, ...]
    seconds: float
    reused: bool


class History:
    def __init__(self, proxies: tuple[str, ...], aggregate: str) -> None:
        self.proxies = proxies
        self.aggregate = aggregate
        self.evaluations: list[Evaluation] = []

    def __len__(self) -> int:
        return len(self.evaluations)

    def add(self, evaluation: Evaluation) -> None:
        self.evaluations.append(evaluation)

    def scores(self) -> np.ndarray:
        return np.array([e.scores for e in self.evaluations], dtype=float).reshape(
            len(self.evaluations), len(self.proxies))

    def fitness(self) -> np.ndarray:
        """The single score, or the rank sum over everything scored so far."""
        return fitness(self.scores())

    def ranked(self, needed: int | None = None) -> list[Evaluation]:
        """Best first, by the search's aggregate (see ``selection_order``)."""
        order = selection_order(
            self.scores(),
            [e.candidate.params for e in self.evaluations],
            [e.candidate.flops for e in self.evaluations],
            [e.candidate.key for e in self.evaluations],
            self.aggregate,
            needed,
            self.proxies,
        )
        return [self.evaluations[i] for i in order[:needed]]

    def pareto_front(self) -> list[Evaluation]:
        """Proxies up, params and FLOPs down; by params, smallest first. A size proxy
        (``params``, ``flops``) is left out of the "up" side: against its own cost every
        architecture would be a trade-off, and the front would be everything."""
        objectives = pareto_objectives(self.scores(),
                                       [e.candidate.params for e in self.evaluations],
                                       [e.candidate.flops for e in self.evaluations],
                                       self.proxies)
        front = [self.evaluations[i] for i in pareto_front(objectives)]
        return sorted(front, key=lambda e: (e.candidate.params, e.candidate.key))
