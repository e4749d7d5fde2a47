"""The search driver: propose, look up, score what is missing, record; the only store writer.

Every evaluation is looked up in the score store first and committed as soon as it finishes, so
a search killed with SIGKILL, run again, replays its finished evaluations from the store for
free and takes the same decisions: the answer of a resumed search equals an uninterrupted one.
Scores are keyed by (space, architecture, proxy config, seed, batch), so other searches and the
scoreboard reuse them too.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vitnas.calibrate import Ranker
from vitnas.device import check_device
from vitnas.errors import ConfigError
from vitnas.grammar import plain_digits
from vitnas.proxies.base import Proxy, ProxyResult
from vitnas.proxies.scoring import proxy_batch, space_task
from vitnas.proxies.spec import resolve_proxies
from vitnas.search.base import SearchConfig, get_searcher
from vitnas.search.candidates import Candidate, Drawer
from vitnas.search.constraints import Feasibility
from vitnas.search.history import Evaluation, History
from vitnas.search.ranked import RankerHistory
from vitnas.search.runner import (
    Backend,
    ScoringContext,
    Task,
    check_backend_options,
    open_backend,
)
from vitnas.spaces.base import SearchSpace, get_space
from vitnas.store import (
    ScoreKey,
    ScoreStore,
    StoredScore,
    batch_identity,
    default_store_path,
    space_identity,
)

STAGES = ("setup", "draw", "store", "build", "proxy", "evaluate", "total")


def _json_number(value: float) -> float | None:
    """Strict JSON has no NaN or infinity: a failed score is null."""
    return value if math.isfinite(value) else None


@dataclass
class SearchResult:
    """A finished (or, for a shard, partial) search. ``fitness`` parallels ``evaluations``;
    ``timings`` are wall seconds per stage, except ``build`` and ``proxy``, which are summed
    over workers."""

    space: SearchSpace
    config: SearchConfig
    proxies: tuple[str, ...]
    evaluations: list[Evaluation]
    fitness: list[float]
    best: Evaluation | None
    pareto_front: list[Evaluation]
    infeasible: dict[str, int]
    duplicates: int
    computed: int
    reused: int
    pending: int
    stopped: str | None
    feasible_fraction: float
    timings: dict[str, float]
    execution: dict[str, Any] = field(default_factory=dict)
    ranker: dict[str, Any] | None = None  # the objective, when a calibrated ranker set it

    def __post_init__(self) -> None:
        self._fitness_of = {e.index: f for e, f in zip(self.evaluations, self.fitness)}

    @property
    def complete(self) -> bool:
        return self.pending == 0

    @property
    def best_arch(self) -> Any:
        return None if self.best is None else self.space.to_json(self.best.candidate.arch)

    def best_per_generation(self) -> list[float]:
        """The best fitness among everything scored up to each generation."""
        best: dict[int, float] = {}
        for evaluation, value in zip(self.evaluations, self.fitness):
            generation = evaluation.candidate.generation
            best[generation] = max(best.get(generation, value), value)
        running, out = float("-inf"), []
        for generation in sorted(best):
            running = max(running, best[generation])
            out.append(running)
        return out

    def record(self, evaluation: Evaluation) -> dict[str, Any]:
        c = evaluation.candidate
        return {
            "index": evaluation.index,
            "generation": c.generation,
            "origin": c.origin,
            "seed": c.seed,
            "arch": self.space.to_json(c.arch),
            "params": c.params,
            "flops": c.flops,
            "scores": {p: _json_number(s) for p, s in zip(self.proxies, evaluation.scores)},
            "fitness": _json_number(self._fitness_of[evaluation.index]),
            "reused": evaluation.reused,
            "seconds": round(evaluation.seconds, 4),
            "warnings": list(evaluation.warnings),
        }

    def as_dict(self) -> dict[str, Any]:
        config = dataclasses.asdict(self.config)
        config["constraints"] = self.config.constraints.as_dict()
        best = self.best
        return {
            "space": self.space.name,
            "space_identity": space_identity(self.space),
            "config": config,
            "proxies": list(self.proxies),
            "ranker": self.ranker,
            "complete": self.complete,
            "best": None if best is None else {
                **self.record(best),
                "layers": [dataclasses.asdict(r) for r in self.space.layer_costs(
                    best.candidate.arch)],
            },
            "counts": {
                "evaluated": len(self.evaluations),
                "computed": self.computed,
                "reused": self.reused,
                "pending": self.pending,
                "infeasible": self.infeasible,
                "duplicates": self.duplicates,
                "feasible_fraction": self.feasible_fraction,
            },
            "stopped": self.stopped,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "execution": self.execution,
            "best_per_generation": [_json_number(v) for v in self.best_per_generation()],
            "pareto_front": [self.record(e) for e in self.pareto_front],
            "evaluations": [self.record(e) for e in self.evaluations],
        }


@dataclass
class _Scorer:
    """Looks up, dispatches and records the scores of candidate batches."""

    store: ScoreStore
    backend: Backend
    proxies: Sequence[Proxy]
    space_id: str
    batch_id: str
    seed: int
    shard: tuple[int, int] | None
    timings: dict[str, float]
    bar: Any = None
    computed: int = 0
    reused: int = 0
    pending: int = 0
    # after the first computed candidate: say what the whole budget will cost, once
    status: Callable[[str], None] | None = None
    budget: int = 0
    workers: int = 1

    def keys(self, candidate: Candidate) -> list[ScoreKey]:
        return [ScoreKey(self.space_id, candidate.key, p.full_spec, self.seed, self.batch_id)
                for p in self.proxies]

    def estimate(self, seconds: float) -> None:
        """The cost of the budget, from the first candidate's wall time (it includes worker
        start-up, so it errs high)."""
        total = seconds * self.budget / max(1, self.workers)
        if self.bar is not None:
            self.bar.clear()  # a line of its own that stays, above the bar, not under it
        self.status(f"the first architecture took {seconds:.1f} s: the budget of {self.budget} "
                    f"needs about {format_duration(total)} with {self.workers} worker(s) "
                    "(stored scores are reused; an interrupted run resumes)")
        if self.bar is not None:
            self.bar.refresh()

    def mine(self, index: int) -> bool:
        return self.shard is None or index % self.shard[1] == self.shard[0]

    def score(self, batch: Sequence[Candidate], first_index: int) -> tuple[list[Evaluation], int]:
        """Evaluations of the batch in proposal order, and how many are left to other shards."""
        start = time.perf_counter()
        known: dict[int, list[ProxyResult | None]] = {}
        tasks = []
        pending = 0
        for index, candidate in enumerate(batch, start=first_index):
            stored = [self.store.get(key) for key in self.keys(candidate)]
            known[index] = [None if s is None else ProxyResult(p.spec, s.score, s.raw, s.seconds,
                                                               s.warnings)
                            for p, s in zip(self.proxies, stored)]
            missing = tuple(p for p, s in zip(self.proxies, stored) if s is None)
            if missing and self.mine(index):
                tasks.append(Task(index, candidate.arch, missing))
            elif missing:
                pending += 1
                del known[index]
        self.timings["store"] += time.perf_counter() - start
        fresh: set[int] = set()
        if self.bar is not None:
            self.bar.update(len(known) - len(tasks))
        start = time.perf_counter()
        for outcome in self.backend.run(tasks):
            candidate = batch[outcome.index - first_index]
            results = iter(outcome.results)
            merged = [r if r is not None else next(results) for r in known[outcome.index]]
            rows = [StoredScore(key, r.score, r.raw, r.seconds, r.warnings)
                    for key, r, old in zip(self.keys(candidate), merged, known[outcome.index])
                    if old is None]
            put_start = time.perf_counter()
            self.store.put(rows)
            self.timings["store"] += time.perf_counter() - put_start
            self.timings["build"] += outcome.build_seconds
            self.timings["proxy"] += outcome.proxy_seconds
            known[outcome.index] = merged
            fresh.add(outcome.index)
            if self.bar is not None:
                self.bar.update(1)
            if self.status is not None and self.computed == 0 and len(fresh) == 1:
                self.estimate(time.perf_counter() - start)
        self.timings["evaluate"] += time.perf_counter() - start
        evaluations = []
        for index in sorted(known):
            results = known[index]
            warnings = tuple(w for r in results for w in r.warnings)
            evaluations.append(Evaluation(
                index, batch[index - first_index], tuple(r.score for r in results),
                tuple(r.raw for r in results), warnings, sum(r.seconds for r in results),
                reused=index not in fresh))
        self.computed += len(fresh)
        self.reused += len(evaluations) - len(fresh)
        self.pending += pending
        return evaluations, pending


def format_duration(seconds: float) -> str:
    """``75`` -> ``1.2 min``; ``5400`` -> ``1.5 h``: a cost a person can plan around."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


MAX_SHARDS = 100_000  # processes sharing one search; more is a typo, not a cluster


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"0/4"`` -> (0, 4): this process scores the candidates whose index is 0 modulo 4."""
    if not text:
        return None
    index, slash, count = (part.strip() for part in text.partition("/"))
    if slash and all(plain_digits(p) for p in (index, count)):
        shard = int(index), int(count)
        if shard[0] < shard[1] <= MAX_SHARDS:
            return shard
    raise ConfigError(f"shard {text!r} must be i/n with 0 <= i < n <= {MAX_SHARDS:,} "
                      f"(one process each), e.g. 0/4")


def run_search(
    space: SearchSpace | str,
    config: SearchConfig | None = None,
    *,
    store: ScoreStore | str | Path | None = None,
    workers: int = 1,
    threads: int = 1,
    backend: str = "local",
    address: str | None = None,
    gpus: float = 0,
    device: str = "cpu",
    shard: tuple[int, int] | None = None,
    progress: bool = False,
    status: Callable[[str], None] | None = None,
    data_dir: str | None = None,
    ranker: Ranker | None = None,
) -> SearchResult:
    """Search ``space`` for the architecture the proxies like best within the constraints.

    How the search runs (``workers``, ``threads`` per worker, ``backend``, ``address`` of a Ray
    cluster, ``gpus`` per Ray worker, ``device``) never changes its answer, except that float
    reductions may differ in the last bits across ``threads`` per worker and devices, which is
    why ``threads`` defaults to 1 rather than to the machine's cores. ``store``: a
    ``ScoreStore``, a path, or None for the default cache.
    ``shard=(i, n)`` scores only candidates whose index is i mod n; merge the shards' stores
    and run again to continue (one round per generation for evolution, one for random search).
    ``status`` receives a line before each silent set-up phase and the estimated cost.
    ``ranker`` (``vitnas.calibrate``) replaces the proxies and their aggregate: candidates are
    scored with its features and ranked by its score.
    """
    started = time.perf_counter()
    config = config or SearchConfig()
    if ranker is not None:
        if config.aggregate != "rank":
            raise ConfigError("a ranker orders the candidates itself; it cannot be combined "
                              f"with --aggregate {config.aggregate}")
        config = dataclasses.replace(config, proxies=ranker.feature_specs)
    config.check()
    space = get_space(space) if isinstance(space, str) else space
    proxies = resolve_proxies(config.proxies)
    if ranker is not None and tuple(p.spec for p in proxies) != ranker.feature_specs:
        raise ConfigError(f"the ranker's features {', '.join(ranker.feature_specs)} are not "
                          f"distinct canonical proxy specs; calibrate again")
    if shard is not None and not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"shard {shard[0]}/{shard[1]} must be i/n with 0 <= i < n")
    say = status or (lambda message: None)
    feasibility = Feasibility(space, config.constraints)
    if not (config.constraints.params.unbounded and config.constraints.flops.unbounded
            and config.constraints.latency_ms.unbounded):
        say("checking that the budget windows can be met")
    feasible_fraction = feasibility.check_reachable(config.seed)
    check_backend_options(backend, address, gpus)
    if gpus and device == "cpu":
        device = "cuda"  # a worker holding a Ray GPU scores on it
    if backend == "local":  # Ray workers may hold GPUs this driver lacks; before any data
        check_device(device)
    say(f"building the proxy batch: {config.batch_size} {config.dataset} images at "
        f"{space.img_size} px")
    inputs, labels = proxy_batch(config.dataset, config.batch_size, space.img_size,
                                 space.in_chans, space.num_classes, config.seed, data_dir,
                                 space_task(space))
    context = ScoringContext(space, inputs, labels, config.seed, threads, device)
    owns_store = not isinstance(store, ScoreStore)
    db = ScoreStore(store or default_store_path()) if owns_store else store
    timings = dict.fromkeys(STAGES, 0.0)
    history = (RankerHistory(ranker) if ranker is not None
               else History(tuple(p.spec for p in proxies), config.aggregate))
    drawer = Drawer(space, feasibility, seen=set())
    searcher = get_searcher(config.algorithm)(space, drawer, config)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=config.budget, unit="arch", desc=f"{config.algorithm} {space.name}")
    proposed, stopped = 0, None
    try:
        with open_backend(backend, context, workers, address, gpus) as engine:
            scorer = _Scorer(db, engine, proxies, space_identity(space),
                             batch_identity(inputs, labels), config.seed, shard, timings, bar,
                             status=status, budget=config.budget, workers=workers)
            timings["setup"] = time.perf_counter() - started
            while proposed < config.budget:
                start = time.perf_counter()
                batch = searcher.propose(history, config.budget - proposed)
                timings["draw"] += time.perf_counter() - start
                evaluations, pending = scorer.score(batch, proposed)
                for evaluation in evaluations:
                    history.add(evaluation)
                proposed += len(batch)
                if bar is not None and len(history):
                    leader = history.evaluations[int(history.fitness().argmax())]
                    bar.set_postfix({**{p: f"{s:.4g}" for p, s in zip(history.proxies,
                                                                       leader.scores)},
                                     "infeasible": feasibility.infeasible})
                if drawer.exhausted or not batch:
                    stopped = (f"the constraints leave no unseen architecture after {proposed} "
                               f"candidates ({drawer.random_attempts} random draws found none)")
                    break
                if pending and searcher.adaptive:
                    break
    finally:
        if bar is not None:
            bar.close()
        if owns_store:
            db.close()
    timings["total"] = time.perf_counter() - started
    fitness = history.fitness().tolist()
    ranked = history.ranked(needed=1)
    return SearchResult(
        space=space,
        config=config,
        proxies=history.proxies,
        evaluations=history.evaluations,
        fitness=fitness,
        best=ranked[0] if ranked else None,
        pareto_front=history.pareto_front() if len(history) else [],
        infeasible=dict(feasibility.rejected),
        duplicates=drawer.duplicates,
        computed=scorer.computed,
        reused=scorer.reused,
        pending=scorer.pending,
        stopped=stopped,
        feasible_fraction=feasible_fraction,
        timings=timings,
        execution={"backend": backend, "workers": workers, "threads_per_worker": threads,
                   "device": device, "shard": None if shard is None else f"{shard[0]}/{shard[1]}",
                   "store": db.path, "data_dir": data_dir},
        ranker=None if ranker is None else ranker.summary(),
    )
