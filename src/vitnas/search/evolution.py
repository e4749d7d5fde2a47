"""Evolutionary search as AutoFormer runs it (Chen et al., ICCV 2021; Cream
``AutoFormer/evolution.py``), with a training-free proxy as the fitness.

Generation 0 is ``population`` random candidates. Every later generation keeps the top
``parents`` of everything scored so far, then proposes ``mutations`` mutants of random parents,
``crossovers`` children of random parent pairs and random candidates for the rest. Every slot
draws from its own seeded RNG, and a candidate outside the constraints or already scored is
retried, so it never reaches a proxy.
"""

from __future__ import annotations

from collections.abc import Sequence

from vitnas.errors import ConfigError
from vitnas.search.base import SEARCHERS, SearchConfig, Searcher
from vitnas.search.candidates import Candidate, candidate_rng
from vitnas.search.history import History


@SEARCHERS.register("evolution")
class Evolution(Searcher):
    name = "evolution"
    adaptive = True

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.generation = 0

    @classmethod
    def check(cls, config: SearchConfig) -> None:
        super().check(config)
        evo = config.evolution
        if evo.parents < 1 or evo.attempts < 1 or min(evo.mutations, evo.crossovers) < 0:
            raise ConfigError("evolution needs parents >= 1, attempts >= 1 and non-negative "
                              "mutation and crossover counts")
        if evo.mutations + evo.crossovers > config.population:
            raise ConfigError(f"{evo.mutations} mutations + {evo.crossovers} crossovers exceed "
                              f"the population of {config.population}")
        if not (0 <= evo.layer_prob <= 1 and 0 <= evo.structure_prob <= 1):
            raise ConfigError("mutation probabilities must be in [0, 1]")

    def slots(self, size: int) -> list[str]:
        if self.generation == 0:
            return ["random"] * size
        evo = self.config.evolution
        refill = self.config.population - evo.mutations - evo.crossovers
        return (["mutation"] * evo.mutations + ["crossover"] * evo.crossovers
                + ["random"] * refill)[:size]

    def propose(self, history: History, remaining: int) -> Sequence[Candidate]:
        evo, space, drawer = self.config.evolution, self.space, self.drawer
        parents = [e.candidate.arch for e in history.ranked(needed=evo.parents)]

        def mutant(rng):
            return space.mutate(rng.choice(parents), rng, layer_prob=evo.layer_prob,
                                structure_prob=evo.structure_prob)

        def child(rng):
            first, second = rng.sample(parents, 2) if len(parents) > 1 else parents * 2
            return space.crossover(first, second, rng)

        batch = []
        for slot, origin in enumerate(self.slots(min(self.config.population, remaining))):
            seed, rng = candidate_rng(self.name, self.config.seed, self.generation, slot)
            if origin == "random" or not parents:
                candidate = drawer.random(rng, seed, self.generation)
            else:
                make = mutant if origin == "mutation" else child
                candidate = drawer.varied(make, origin, evo.attempts, rng, seed, self.generation)
            if candidate is None:
                break
            batch.append(candidate)
        self.generation += 1
        return batch
