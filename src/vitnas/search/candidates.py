"""Candidates that carry their own seed, and the drawer that proposes feasible, unseen ones.

Each candidate's RNG is derived from the search seed and its slot, so every draw is reproducible
on its own, whatever order workers finish in.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vitnas.search.constraints import Feasibility
from vitnas.spaces.base import SearchSpace


@dataclass(frozen=True)
class Candidate:
    """An architecture proposed by a searcher, with the seed of the RNG that drew it, so every
    draw is reproducible on its own, whatever order workers finish in."""

    arch: Any
    key: str
    seed: int
    origin: str  # "random", "mutation" or "crossover"
    generation: int
    params: int
    flops: int


def candidate_rng(algorithm: str, seed: int, generation: int,
                  slot: int) -> tuple[int, random.Random]:
    """The seed and RNG of one candidate slot, derived from the search seed and its position."""
    position = f"vitnas-search:{algorithm}:{seed}:{generation}:{slot}"
    slot_seed = random.Random(position).getrandbits(63)
    return slot_seed, random.Random(slot_seed)


@dataclass
class Drawer:
    """Draws feasible, not-yet-seen candidates with a bounded number of attempts."""

    space: SearchSpace
    feasible: Feasibility
    seen: set[str]
    random_attempts: int = 20_000
    duplicates: int = 0
    exhausted: bool = False

    def accept(self, arch: Any, seed: int, origin: str, generation: int) -> Candidate | None:
        key = self.space.key(arch)
        if key in self.seen:
            self.duplicates += 1
            return None
        if not self.feasible(arch):
            return None
        self.seen.add(key)
        return Candidate(arch, key, seed, origin, generation, self.space.params(arch),
                         self.space.flops(arch))

    def random(self, rng: random.Random, seed: int, generation: int) -> Candidate | None:
        """A uniformly random feasible new architecture, or None (and ``exhausted``) when
        ``random_attempts`` draws found none: the window holds no unseen architecture left."""
        for _ in range(self.random_attempts):
            candidate = self.accept(self.space.sample(rng), seed, "random", generation)
            if candidate is not None:
                return candidate
        self.exhausted = True
        return None

    def varied(self, make: Callable[[random.Random], Any], origin: str, attempts: int,
               rng: random.Random, seed: int, generation: int) -> Candidate | None:
        """A mutation or crossover from ``make``; after ``attempts`` misses, a random draw
        (AutoFormer refills the population at random when variation runs out of tries)."""
        for _ in range(attempts):
            candidate = self.accept(make(rng), seed, origin, generation)
            if candidate is not None:
                return candidate
        return self.random(rng, seed, generation)
