"""What every search shares: budget windows, the feasibility check that runs before any proxy,
candidates that carry their own seed, and the registry of search algorithms.

Analytic parameter and FLOP counts are free, so a candidate outside the window is rejected (and
counted) before a model is built; only measured latency costs a forward pass, and it is checked
last.
"""

from __future__ import annotations

import random
import re
import statistics
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from vitnas.errors import ConfigError
from vitnas.recommended import DEFAULT_SEARCH_PROXY
from vitnas.registry import Registry
from vitnas.spaces.base import SearchSpace

if TYPE_CHECKING:
    from vitnas.search.history import History

SEARCHERS: Registry = Registry("search algorithm")

_UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}
_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)$", re.IGNORECASE)
WINDOW_PROBES = 2000


def parse_count(text: str, what: str, window: str) -> float:
    """``"5M"`` -> 5e6; also ``1.2G``, ``300K``, ``3e6``."""
    match = _NUMBER.match(text.strip())
    if not match:
        raise ConfigError(f"{what} window {window!r}: {text.strip()!r} is not a number like "
                          "5M, 1.2G, 300K or 3e6")
    return float(match.group(1)) * _UNITS[match.group(2).upper()]


def format_count(value: float) -> str:
    for unit in ("T", "G", "M", "K"):
        if abs(value) >= _UNITS[unit]:
            return f"{value / _UNITS[unit]:g}{unit}"
    return f"{value:g}"


@dataclass(frozen=True)
class Window:
    """A closed interval; either end may be open (None)."""

    low: float | None = None
    high: float | None = None

    def __contains__(self, value: float) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)

    @property
    def unbounded(self) -> bool:
        return self.low is None and self.high is None

    def __str__(self) -> str:
        if self.unbounded:
            return "any"
        return ":".join("" if end is None else format_count(end) for end in (self.low, self.high))


def parse_window(text: str | None, what: str) -> Window:
    """``"5M:6M"``, ``"5M:"`` (at least) or ``":6M"`` (at most); None or "" is no limit."""
    if not text:
        return Window()
    low_text, colon, high_text = text.partition(":")
    if not colon:
        raise ConfigError(f"{what} window {text!r} must look like LOW:HIGH, e.g. 5M:6M "
                          "(either side may be empty)")
    low = parse_count(low_text, what, text) if low_text.strip() else None
    high = parse_count(high_text, what, text) if high_text.strip() else None
    if low is not None and high is not None and low > high:
        raise ConfigError(f"{what} window {text!r} is empty: {format_count(low)} > "
                          f"{format_count(high)}")
    return Window(low, high)


@dataclass(frozen=True)
class Constraints:
    """Budget windows: analytic params and FLOPs, and optionally measured latency (ms, batch 1,
    median of a few forwards on this process's CPU threads: not reproducible across machines)."""

    params: Window = Window()
    flops: Window = Window()
    latency_ms: Window = Window()

    def violations(self, space: SearchSpace, arch: Any) -> list[str]:
        """The analytic windows ``arch`` falls outside of (latency is not re-measured here)."""
        out = []
        params, flops = space.params(arch), space.flops(arch)
        if params not in self.params:
            out.append(f"params {format_count(params)} outside {self.params}")
        if flops not in self.flops:
            out.append(f"FLOPs {format_count(flops)} outside {self.flops}")
        return out

    def as_dict(self) -> dict[str, str]:
        return {"params": str(self.params), "flops": str(self.flops),
                "latency_ms": str(self.latency_ms)}


@torch.inference_mode()
def measure_latency_ms(space: SearchSpace, arch: Any, repeats: int = 5) -> float:
    """Median wall time of one batch-1 forward pass after one warm-up."""
    model = space.build(arch).eval()
    x = space.example_input(1)
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


class Feasibility:
    """The gate every candidate passes before scoring; counts rejections by reason."""

    def __init__(self, space: SearchSpace, constraints: Constraints,
                 latency: Callable[[SearchSpace, Any], float] = measure_latency_ms) -> None:
        self.space = space
        self.constraints = constraints
        self.latency = latency
        self.rejected: Counter[str] = Counter()
        self._latency_cache: dict[str, float] = {}

    def __call__(self, arch: Any) -> bool:
        c = self.constraints
        if self.space.params(arch) not in c.params:
            self.rejected["params"] += 1
            return False
        if self.space.flops(arch) not in c.flops:
            self.rejected["flops"] += 1
            return False
        if not c.latency_ms.unbounded:
            key = self.space.key(arch)
            if key not in self._latency_cache:
                self._latency_cache[key] = self.latency(self.space, arch)
            if self._latency_cache[key] not in c.latency_ms:
                self.rejected["latency"] += 1
                return False
        return True

    @property
    def infeasible(self) -> int:
        return sum(self.rejected.values())

    def check_reachable(self, seed: int, probes: int = WINDOW_PROBES) -> float:
        """Fail early, with the sampled range, when random draws never land in the windows;
        returns the fraction that lands in the analytic ones (how hard they are to hit).

        Latency is probed with two measurements, not thousands: the draw with the fewest FLOPs
        must meet the upper bound and the one with the most the lower bound."""
        c = self.constraints
        if c.params.unbounded and c.flops.unbounded and c.latency_ms.unbounded:
            return 1.0
        rng = random.Random(f"vitnas-search:probe:{seed}")
        draws = [self.space.sample(rng) for _ in range(probes)]
        params = [self.space.params(a) for a in draws]
        flops = [self.space.flops(a) for a in draws]
        fits = [a for a, p, f in zip(draws, params, flops) if p in c.params and f in c.flops]
        if not fits:
            raise ConfigError(
                f"no architecture of {self.space.name} in {probes} random draws fits params "
                f"{c.params} and FLOPs {c.flops} (sampled params {format_count(min(params))}.."
                f"{format_count(max(params))}, FLOPs {format_count(min(flops))}.."
                f"{format_count(max(flops))}); widen the window")
        if c.latency_ms.high is not None:
            fastest = min(fits, key=self.space.flops)
            latency = self.latency(self.space, fastest)
            if latency > c.latency_ms.high:
                raise ConfigError(
                    f"latency window {c.latency_ms} ms is out of reach: the cheapest of "
                    f"{len(fits)} feasible draws ({format_count(self.space.flops(fastest))} "
                    f"FLOPs) takes {latency:.3g} ms here; widen the window")
        if c.latency_ms.low is not None:
            slowest = max(fits, key=self.space.flops)
            latency = self.latency(self.space, slowest)
            if latency < c.latency_ms.low:
                raise ConfigError(
                    f"latency window {c.latency_ms} ms is out of reach: the costliest of "
                    f"{len(fits)} feasible draws ({format_count(self.space.flops(slowest))} "
                    f"FLOPs) takes {latency:.3g} ms here; widen the window")
        return len(fits) / probes


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"0/4"`` -> (0, 4): this process scores the candidates whose index is 0 modulo 4."""
    if not text:
        return None
    index, slash, count = text.partition("/")
    if slash and index.strip().isdigit() and count.strip().isdigit():
        shard = int(index), int(count)
        if shard[0] < shard[1]:
            return shard
    raise ConfigError(f"shard {text!r} must be i/n with 0 <= i < n, e.g. 0/4")


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
