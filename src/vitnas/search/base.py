"""The search-algorithm protocol: what decides a search's answer (``SearchConfig``), the
``Searcher`` base class, and the registry of algorithms."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from vitnas.errors import ConfigError
from vitnas.recommended import DEFAULT_SEARCH_PROXY
from vitnas.registry import Registry
from vitnas.search.candidates import Candidate, Drawer
from vitnas.search.constraints import Constraints
from vitnas.search.history import History
from vitnas.spaces.base import SearchSpace

SEARCHERS: Registry = Registry("search algorithm")


@dataclass(frozen=True)
class EvolutionConfig:
    """AutoFormer's defaults (Cream ``AutoFormer/evolution.py``): keep the top 10, then 25
    mutations (per-layer rate 0.2, depth and width 0.4) and 25 crossovers a generation, with
    10 tries per slot; slots left over are refilled at random."""

    parents: int = 10
    mutations: int = 25
    crossovers: int = 25
    layer_prob: float = 0.2
    structure_prob: float = 0.4
    attempts: int = 10

    @classmethod
    def for_population(cls, population: int, mutations: int | None = None,
                       crossovers: int | None = None, **options: float) -> EvolutionConfig:
        """AutoFormer's split of a generation: half mutations, half crossovers, unless given."""
        return cls(mutations=population // 2 if mutations is None else mutations,
                   crossovers=population // 2 if crossovers is None else crossovers, **options)


@dataclass(frozen=True)
class SearchConfig:
    """Everything that decides a search's answer (how it is run, workers or backend, does not).

    ``population``: candidates per generation; random search reports in batches of that size.
    ``seed``: the scoring seed of every candidate (model init, proxy randomness, the batch), and
    the root of each candidate's own drawing seed.
    """

    proxies: tuple[str, ...] = (DEFAULT_SEARCH_PROXY,)
    algorithm: str = "evolution"
    budget: int = 1000
    seed: int = 0
    constraints: Constraints = Constraints()
    aggregate: str = "rank"
    dataset: str = "cifar10"
    batch_size: int = 32
    population: int = 50
    evolution: EvolutionConfig = EvolutionConfig()

    def check(self) -> None:
        from vitnas.search.aggregate import AGGREGATES

        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"unknown aggregate {self.aggregate!r}; choose from: "
                              f"{', '.join(AGGREGATES)}")
        if not self.proxies:
            raise ConfigError("a search needs at least one proxy")
        if self.batch_size < 1:
            raise ConfigError(f"the proxy batch size must be at least 1, got {self.batch_size}")
        get_searcher(self.algorithm).check(self)


class Searcher(ABC):
    """Proposes batches of candidates; the driver scores them and records them in a history.

    ``adaptive`` searchers need a batch's scores before proposing the next, so a shard stops at
    the first batch whose scores other shards still owe.
    """

    name: str = ""
    adaptive: bool = True

    def __init__(self, space: SearchSpace, drawer: Drawer, config: SearchConfig) -> None:
        self.space = space
        self.drawer = drawer
        self.config = config

    @classmethod
    def check(cls, config: SearchConfig) -> None:
        """Raise ``ConfigError`` for settings this algorithm cannot run with; subclasses
        extend it."""
        if config.budget < 1 or config.population < 1:
            raise ConfigError("budget and population must be at least 1")

    @abstractmethod
    def propose(self, history: History, remaining: int) -> Sequence[Candidate]:
        """The next batch (at most ``remaining``); empty when the search cannot go on."""


def get_searcher(name: str) -> type[Searcher]:
    return SEARCHERS.get(name)
