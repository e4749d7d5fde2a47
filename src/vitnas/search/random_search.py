"""Random search, the baseline every NAS method must beat: uniform draws inside the constraints,
each new to the search (TF-TAS, Zhou et al. CVPR 2022, ranks 8,000 such AutoFormer candidates).
"""

from __future__ import annotations

from collections.abc import Sequence

from vitnas.search.base import SEARCHERS, Searcher
from vitnas.search.candidates import Candidate, candidate_rng
from vitnas.search.history import History


@SEARCHERS.register("random")
class RandomSearch(Searcher):
    name = "random"
    adaptive = False

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.batches = 0

    def propose(self, history: History, remaining: int) -> Sequence[Candidate]:
        batch = []
        for slot in range(min(self.config.population, remaining)):
            seed, rng = candidate_rng(self.name, self.config.seed, self.batches, slot)
            candidate = self.drawer.random(rng, seed, self.batches)
            if candidate is None:
                break
            batch.append(candidate)
        self.batches += 1
        return batch
