"""The scoreboard: score every architecture of a benchmark with every proxy (through the score
store, so a re-run only computes what is new), then judge each proxy by its rank correlation with
the trained accuracy on a dev, test or full split.

The dev/test split is decided per architecture by a seeded hash of its key, so it stays the same
when a ground truth grows. Non-finite scores are dropped from that proxy's statistics and counted
in its ``failed`` column, never replaced.

A row may be a named ensemble, ``ens:<spec>+<spec>[+...]`` (e.g. ``ens:nwot+params``,
``ens:vintk:mode=band,cutoff=0.5+zen``): its score is the rank sum of its members' scores, exactly
what ``vitnas search --aggregate rank`` ranks by, so ensembles are tested without new proxies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitnas.bench.files import Benchmark
from vitnas.bench.stats import (
    STATISTICS,
    Interval,
    bootstrap_interval,
    budget_regret,
    kendall_tau_b,
    paired_bootstrap_difference,
    partial_kendall,
    partial_kendall_given,
    random_pick_regret,
    stratified_kendall,
    top_precision,
    within_group_kendall,
)
from vitnas.errors import ConfigError
from vitnas.formatting import from_nonfinite_word, nonfinite_word, progress_bar
from vitnas.proxies.scoring import proxy_batch, space_task
from vitnas.proxies.shape import SHAPE_BASELINES, is_baseline
from vitnas.proxies.spec import expand_proxy_specs, get_proxy, resolve_proxies
from vitnas.search.aggregate import rank_sum
from vitnas.store import ScoreStore, batch_identity

SPLITS = ("dev", "test", "all")
# every board scores the shape baselines (free), and judges each row against the best of them
BASELINES = SHAPE_BASELINES
SHAPE_COLUMNS = ("params", "depth", "width")  # the shape a row must know more than
SMALL_SAMPLE = 20  # fewer architectures than this: the bootstrap intervals get a caveat


ENSEMBLE_PREFIX = "ens:"
LOGRANK_PREFIX = "logrank:"
ENSEMBLE_PREFIXES = (ENSEMBLE_PREFIX, LOGRANK_PREFIX)
# a '+' starts a new member only before a name, so an option value such as 1e+3 stays whole
_MEMBER_SEPARATOR = re.compile(r"\s*\+\s*(?=[A-Za-z_])")


def is_ensemble(spec: str) -> bool:
    return spec.startswith(ENSEMBLE_PREFIXES)


@dataclass(frozen=True)
class Ensemble:
    """A scoreboard row made of other rows. ``ens:`` is the rank sum of the members' scores
    (TE-NAS, and ``vitnas search --aggregate rank``); ``logrank:`` is AZ-NAS's sum of
    log(rank / m), which only rewards an architecture every member ranks high."""

    members: tuple[str, ...]
    prefix: str = ENSEMBLE_PREFIX

    @property
    def name(self) -> str:
        return self.prefix + "+".join(self.members)

    def combine(self, scores: dict[str, np.ndarray]) -> np.ndarray:
        """The aggregate over the scored population (a failed member's score ranks worst, as
        in search)."""
        if self.prefix == LOGRANK_PREFIX:
            from vitnas.proxies.aznas import aznas_aggregate

            return aznas_aggregate({m: scores[m] for m in self.members})
        return rank_sum(np.column_stack([scores[m] for m in self.members]))


def parse_ensemble(spec: str) -> Ensemble:
    """``ens:a+b[+...]`` or ``logrank:a+b[+...]`` into its members' canonical specs; each
    member is checked like any proxy spec, and an ensemble needs two different members."""
    prefix = next((p for p in ENSEMBLE_PREFIXES if spec.startswith(p)), ENSEMBLE_PREFIX)
    body = spec[len(prefix):] if spec.startswith(prefix) else ""
    members = [m.strip() for m in _MEMBER_SEPARATOR.split(body) if m.strip()]
    if any(is_ensemble(m) for m in members):
        raise ConfigError(f"ensemble {spec!r}: ensembles do not nest; list every proxy once, "
                          f"e.g. {ENSEMBLE_PREFIX}a+b+c")
    proxies = [get_proxy(m) for m in members]
    full = {p.full_spec for p in proxies}
    if len(proxies) < 2 or len(full) < len(proxies):
        raise ConfigError(f"ensemble {spec!r} needs two or more different members, e.g. "
                          f"{ENSEMBLE_PREFIX}nwot+params")
    return Ensemble(tuple(p.spec for p in proxies), prefix)


def scoreboard_plan(text: str | Sequence[str]) -> tuple[list[str], list[Ensemble]]:
    """The proxy specs to score and the ensembles to build from them: the list and its aliases
    (``proxies.spec.ALIASES``) expanded, always with the params and FLOPs baselines and every
    ensemble member, without duplicates (two specs naming the same configuration count once).
    The returned specs are canonical."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    expanded = expand_proxy_specs(parts)
    ensembles: list[Ensemble] = []
    for spec in expanded:
        if is_ensemble(spec):
            ensemble = parse_ensemble(spec)
            if all((set(ensemble.members), ensemble.prefix) != (set(e.members), e.prefix)
                   for e in ensembles):
                ensembles.append(ensemble)
    plain = [s for s in expanded if not is_ensemble(s)]
    members = [m for e in ensembles for m in e.members]
    return [p.spec for p in resolve_proxies([*BASELINES, *plain, *members])], ensembles


def scoreboard_specs(text: str | Sequence[str]) -> list[str]:
    """Every row's name: the specs ``scoreboard_plan`` scores, then its ensembles."""
    specs, ensembles = scoreboard_plan(text)
    return [*specs, *(e.name for e in ensembles)]


def in_dev_split(key: str, fraction: float, seed: int) -> bool:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def split_indices(bench: Benchmark, split: str, fraction: float = 0.5,
                  seed: int = 0) -> list[int]:
    if split not in SPLITS:
        raise ConfigError(f"split {split!r} is not one of {', '.join(SPLITS)}")
    if split == "all":
        return list(range(len(bench.records)))
    want_dev = split == "dev"
    return [i for i, r in enumerate(bench.records)
            if in_dev_split(bench.space.key(r.arch), fraction, seed) == want_dev]


@dataclass(frozen=True)
class ScoreboardConfig:
    proxies: tuple[str, ...]
    metric: str
    batch: str = "cifar10"
    batch_size: int = 32
    seed: int = 0
    split: str = "all"
    dev_fraction: float = 0.5
    split_seed: int = 0
    resamples: int = 1000
    level: float = 0.95
    top_fraction: float = 0.1
    strata: int = 5
    regret_window: float = 0.2
    # the shape baseline every row is compared with; "" = the best one on this split (say so
    # when claiming: a claim compares with the baseline chosen on dev)
    shape_baseline: str = ""


@dataclass
class ProxyRow:
    proxy: str
    n: int
    failed: int
    kendall: float
    kendall_ci: tuple[float, float]
    spearman: float
    spearman_ci: tuple[float, float]
    pearson: float
    pearson_ci: tuple[float, float]
    top_precision: float
    seconds: float
    # beyond size (absent from scoreboards written before them, hence the defaults)
    within_strata_kendall: float = math.nan
    partial_kendall: float = math.nan
    regret: float = math.nan
    delta_kendall: float = math.nan
    delta_kendall_ci: tuple[float, float] = (math.nan, math.nan)
    # beyond shape (issue 23): partial tau given (#params, depth, width), tau within each
    # depth, tau - tau(the board's shape baseline) with its paired interval
    partial_kendall_shape: float = math.nan
    within_depth_kendall: float = math.nan
    delta_shape_kendall: float = math.nan
    delta_shape_kendall_ci: tuple[float, float] = (math.nan, math.nan)


@dataclass
class Scoreboard:
    benchmark: str
    space: str
    metric: str
    split: str
    n: int
    rows: list[ProxyRow]
    config: dict[str, Any]
    scores: dict[str, list[float]] = field(default_factory=dict)
    accuracy: list[float] = field(default_factory=list)
    params: list[float] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    random_regret: float = math.nan
    shape: dict[str, list[float]] = field(default_factory=dict)  # SHAPE_COLUMNS per arch
    shape_baseline: str = ""
    shape_baseline_rule: str = ""
    # the ground truth's seed-vs-seed agreement where a second-seed file was given
    # (``vitnas.bench.noise.seed_reliability``); absent from older boards, hence optional
    reliability: dict[str, Any] | None = None
    at_noise: bool | None = None  # seed tau below noise.AT_NOISE: proxies cannot be told apart

    def caveats(self) -> list[str]:
        """What a reader must know before trusting the intervals."""
        if self.n < SMALL_SAMPLE and self.config.get("resamples", 1):  # 0: no intervals
            return [f"only {self.n} architectures: bootstrap intervals from fewer than "
                    f"{SMALL_SAMPLE} are unreliable (a resample repeats the same few pairs, so "
                    f"an interval can collapse to one value)"]
        return []

    def row(self, proxy: str) -> ProxyRow:
        for row in self.rows:
            if row.proxy == proxy:
                return row
        raise ConfigError(f"proxy {proxy} is not on this scoreboard")

    def best(self, prefix: str = "vintk") -> ProxyRow:
        """The row with the highest finite Kendall tau among proxies named ``prefix``."""
        candidates = [r for r in self.rows if r.proxy.split(":")[0] == prefix
                      and math.isfinite(r.kendall)]
        if not candidates:
            raise ConfigError(f"no {prefix} variant has a finite Kendall tau")
        return max(candidates, key=lambda r: r.kendall)

    def as_dict(self) -> dict[str, Any]:
        """Plain data with NaN written as None, so the JSON is strict (RFC 8259 has no NaN)."""
        return _nan_to_none({**asdict(self), "rows": [asdict(r) for r in self.rows]})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scoreboard:
        """Rebuild a scoreboard from the JSON ``vitnas bench correlate --out`` wrote, today's or
        an older one (NaN or null for a missing value; columns it lacks stay NaN)."""
        numeric = ("scores", "accuracy", "params", "random_regret", "shape")
        fields = {k: _none_to_nan(v) if k in numeric or (k == "reliability" and v) else v
                  for k, v in data.items() if k in cls.__dataclass_fields__}
        rows = []
        for row in data["rows"]:
            row = {k: _none_to_nan(v) for k, v in row.items() if k in ProxyRow.__dataclass_fields__}
            rows.append(ProxyRow(**{**row, **{k: tuple(row[k]) for k in row
                                              if k.endswith("_ci")}}))
        return cls(**{**fields, "rows": rows})


def _nan_to_none(value: Any) -> Any:
    """NaN (no score, an undefined statistic) -> None; +-inf -> "inf" / "-inf" (a proxy's -inf
    ranks last, so it must read back as itself, and strict JSON has no infinity)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else nonfinite_word(value)
    if isinstance(value, dict):
        return {k: _nan_to_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_nan_to_none(v) for v in value]
    return value


def _none_to_nan(value: Any) -> Any:
    if value is None:
        return math.nan
    if isinstance(value, str):
        return from_nonfinite_word(value)
    if isinstance(value, dict):
        return {k: _none_to_nan(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_none_to_nan(v) for v in value]
    return value


def score_benchmark(
    bench: Benchmark,
    specs: Sequence[str],
    store: ScoreStore,
    batch: str = "cifar10",
    batch_size: int = 32,
    seed: int = 0,
    data_dir: str | None = None,
    progress: bool = False,
    workers: int = 1,
    threads: int | None = None,
    backend: str = "local",
    address: str | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scores and seconds per proxy spec, one entry per record, all through ``store``.

    The missing scores are computed by the worker pool ``vitnas search`` uses (``backend``
    local or ray, ``workers`` x ``threads``); workers return results and only this process
    writes the store, so a scoreboard equals the serial one whatever the workers. ``threads``
    defaults to this process's torch threads for one worker and to 1 for several.
    """
    import torch

    from vitnas.search.runner import ScoringContext, Task, open_backend
    from vitnas.store import ScoreKey, StoredScore, space_identity

    space = bench.space
    x, y = proxy_batch(batch, batch_size, space.img_size, space.in_chans, space.num_classes,
                       seed, data_dir, space_task(space))
    batch_id = batch_identity(x, y)
    space_id = space_identity(space)
    proxies = [get_proxy(s) for s in specs]
    scores = {p.spec: np.full(len(bench.records), math.nan) for p in proxies}
    seconds = {p.spec: np.full(len(bench.records), math.nan) for p in proxies}

    def record(index: int, proxy: Any, score: float, took: float) -> None:
        scores[proxy.spec][index], seconds[proxy.spec][index] = score, took

    tasks = []
    for i, r in enumerate(bench.records):
        arch_id = space.key(r.arch)
        stored = [store.get(ScoreKey(space_id, arch_id, p.full_spec, seed, batch_id))
                  for p in proxies]
        for proxy, found in zip(proxies, stored):
            if found is not None:
                record(i, proxy, found.score, found.seconds)
        missing = tuple(p for p, found in zip(proxies, stored) if found is None)
        if missing:
            tasks.append(Task(i, r.arch, missing))
    if not tasks:
        return scores, seconds
    threads = threads or (torch.get_num_threads() if workers == 1 else 1)
    context = ScoringContext(space, x, y, seed, threads)
    asked = {task.index: task.proxies for task in tasks}
    with progress_bar(progress, total=len(tasks), unit="arch",
                      desc=f"scoring {bench.name}") as bar:
        with open_backend(backend, context, workers, address) as engine:
            for outcome in engine.run(tasks):
                rows = []
                for proxy, result in zip(asked[outcome.index], outcome.results):
                    record(outcome.index, proxy, result.score, result.seconds)
                    key = ScoreKey(space_id, space.key(bench.records[outcome.index].arch),
                                   proxy.full_spec, seed, batch_id)
                    rows.append(StoredScore(key, result.score, result.raw, result.seconds,
                                            result.warnings))
                store.put(rows)
                bar.update(1)
    return scores, seconds


def judge(
    proxy: str,
    score: np.ndarray,
    truth: np.ndarray,
    seconds: np.ndarray,
    config: ScoreboardConfig,
    size: np.ndarray | None = None,
    shape: np.ndarray | None = None,
    reference: np.ndarray | None = None,
) -> ProxyRow:
    """One row. With ``size`` (#params per architecture) also the beyond-size columns: tau within
    params strata, partial tau given params, budget regret, and tau(proxy) - tau(params) with a
    paired bootstrap interval (the same resampled architectures for both). With ``shape``
    (columns ``SHAPE_COLUMNS``) and ``reference`` (the shape baseline's scores) the
    beyond-shape columns too (``beyond_shape``)."""
    finite = np.isfinite(score)
    s, t = score[finite], truth[finite]
    values: dict[str, float] = {}
    intervals: dict[str, Interval] = {}
    for name, statistic in STATISTICS.items():
        values[name] = statistic(s, t) if len(s) >= 2 else math.nan
        intervals[name] = bootstrap_interval(s, t, statistic, config.resamples, config.level,
                                             config.split_seed)
    return ProxyRow(
        proxy=proxy,
        n=int(finite.sum()),
        failed=int((~finite).sum()),
        kendall=values["kendall"],
        kendall_ci=(intervals["kendall"].low, intervals["kendall"].high),
        spearman=values["spearman"],
        spearman_ci=(intervals["spearman"].low, intervals["spearman"].high),
        pearson=values["pearson"],
        pearson_ci=(intervals["pearson"].low, intervals["pearson"].high),
        top_precision=top_precision(s, t, config.top_fraction) if len(s) else math.nan,
        seconds=float(np.nanmean(seconds)) if np.isfinite(seconds).any() else math.nan,
        **(beyond_size(score, truth, size, config) if size is not None else {}),
        **(beyond_shape(score, truth, shape, reference, config) if shape is not None
           and reference is not None else {}),
    )


def beyond_size(score: np.ndarray, truth: np.ndarray, size: np.ndarray,
                config: ScoreboardConfig) -> dict[str, Any]:
    """The ``ProxyRow`` columns that ask what a proxy knows beyond #params (issue 13.2)."""
    finite = np.isfinite(score)
    s, t, z = score[finite], truth[finite], np.asarray(size, dtype=float)[finite]
    enough = len(s) >= 2
    delta = paired_bootstrap_difference(s, z, t, kendall_tau_b, config.resamples, config.level,
                                        config.split_seed)
    return {
        "within_strata_kendall": stratified_kendall(s, t, z, config.strata) if enough
        else math.nan,
        "partial_kendall": partial_kendall(s, t, z) if enough else math.nan,
        "regret": budget_regret(score, truth, size, config.regret_window),
        "delta_kendall": kendall_tau_b(s, t) - kendall_tau_b(z, t) if enough else math.nan,
        "delta_kendall_ci": (delta.low, delta.high),
    }


def beyond_shape(score: np.ndarray, truth: np.ndarray, shape: np.ndarray,
                 reference: np.ndarray, config: ScoreboardConfig) -> dict[str, Any]:
    """The ``ProxyRow`` columns that ask what a proxy knows beyond the architecture's shape
    (issue 23): partial tau given (#params, depth, width), tau within each depth, and
    tau(proxy) - tau(shape baseline) on the same resampled architectures."""
    finite = np.isfinite(score) & np.isfinite(reference)
    s, t, r = score[finite], truth[finite], reference[finite]
    z = np.asarray(shape, dtype=float)[finite]
    if len(s) < 3:
        return {}
    delta = paired_bootstrap_difference(s, r, t, kendall_tau_b, config.resamples, config.level,
                                        config.split_seed)
    return {
        "partial_kendall_shape": partial_kendall_given(s, t, z),
        "within_depth_kendall": within_group_kendall(s, t, z[:, SHAPE_COLUMNS.index("depth")]),
        "delta_shape_kendall": kendall_tau_b(s, t) - kendall_tau_b(r, t),
        "delta_shape_kendall_ci": (delta.low, delta.high),
    }


def shape_matrix(space: Any, archs: Sequence[Any]) -> np.ndarray:
    """(#params, depth, width) per architecture, the ``SHAPE_COLUMNS``."""
    rows = []
    for arch in archs:
        shape = space.shape(arch)
        rows.append((space.params(arch), shape.depth, shape.width))
    return np.array(rows, dtype=float).reshape(len(rows), len(SHAPE_COLUMNS))


def choose_shape_baseline(scores: dict[str, np.ndarray], truth: np.ndarray,
                          wanted: str = "") -> tuple[str, str]:
    """The shape baseline rows are compared with: ``wanted`` (chosen elsewhere, on dev) when
    given, else the scored baseline with the highest tau here. Returns (spec, rule)."""
    if wanted:
        spec = get_proxy(wanted).spec
        if spec not in scores:
            raise ConfigError(f"shape baseline {wanted!r} was not scored on this board")
        return spec, "given (chosen on dev)"
    taus = {name: kendall_tau_b(values[np.isfinite(values)], truth[np.isfinite(values)])
            for name, values in scores.items() if is_baseline(name)}
    taus = {name: tau for name, tau in taus.items() if math.isfinite(tau)}
    if not taus:
        raise ConfigError("no shape baseline has a finite Kendall tau on this board")
    return max(taus, key=taus.get), "the best shape baseline on this split"


def judge_all(names: Sequence[str], scores: dict[str, np.ndarray], seconds: dict,
              truth: np.ndarray, config: ScoreboardConfig, size: np.ndarray,
              shape: np.ndarray) -> tuple[list[ProxyRow], str, str]:
    """Every row, each beside #params and the board's shape baseline."""
    baseline, rule = choose_shape_baseline({n: scores[n] for n in names}, truth,
                                           config.shape_baseline)
    rows = [judge(name, scores[name], truth, seconds[name], config, size, shape,
                  scores[baseline]) for name in names]
    return rows, baseline, rule


def correlate(
    bench: Benchmark,
    config: ScoreboardConfig,
    store: ScoreStore,
    data_dir: str | None = None,
    progress: bool = False,
    repeat: Benchmark | None = None,
    **execution: Any,
) -> Scoreboard:
    """Score (cached) and judge every proxy and ensemble on the chosen split of ``bench``;
    ``execution`` (workers, threads, backend, address) goes to ``score_benchmark``.
    ``repeat``: architectures of ``bench`` trained again under another seed; the board then
    records the split's reliability and whether it is at noise (``noise.seed_reliability``),
    so no reader ranks proxies on a ground truth that cannot rank them."""
    accuracy = bench.values(config.metric)
    specs, ensembles = scoreboard_plan(list(config.proxies))
    indices = [i for i in split_indices(bench, config.split, config.dev_fraction,
                                        config.split_seed) if accuracy[i] is not None]
    if len(indices) < 3:
        raise ConfigError(f"the {config.split} split of {bench.name} has {len(indices)} "
                          f"architectures with a {config.metric}; need at least 3")
    if len({accuracy[i] for i in indices}) < 2:  # the whole file may vary where a half does not
        raise ConfigError(f"the label {config.metric} does not vary on the {config.split} split "
                          f"of {bench.name} (every architecture has {accuracy[indices[0]]:g}): "
                          "no ranking to correlate with")
    check_label_span([accuracy[i] for i in indices], config.metric, bench.name)
    subset = Benchmark(bench.name, bench.space, [bench.records[i] for i in indices], bench.meta)
    reliability = _reliability(subset, repeat, config)  # before the scoring: it may refuse
    scores, seconds = score_benchmark(subset, specs, store, config.batch, config.batch_size,
                                      config.seed, data_dir, progress, **execution)
    for ensemble in ensembles:
        scores[ensemble.name] = ensemble.combine(scores)
        seconds[ensemble.name] = np.sum([seconds[m] for m in ensemble.members], axis=0)
    names = [*specs, *(e.name for e in ensembles)]
    truth = np.array([accuracy[i] for i in indices], dtype=float)
    shape = shape_matrix(bench.space, [r.arch for r in subset.records])
    size = shape[:, 0]
    rows, baseline, rule = judge_all(names, scores, seconds, truth, config, size, shape)
    return Scoreboard(
        benchmark=bench.name,
        space=bench.space.name,
        metric=config.metric,
        split=config.split,
        n=len(indices),
        rows=rows,
        config=asdict(config),
        scores={name: [float(v) for v in scores[name]] for name in names},
        accuracy=truth.tolist(),
        params=size.tolist(),
        keys=[bench.space.key(r.arch) for r in subset.records],
        random_regret=random_pick_regret(truth, size, config.regret_window),
        shape={c: shape[:, j].tolist() for j, c in enumerate(SHAPE_COLUMNS)},
        shape_baseline=baseline,
        shape_baseline_rule=rule,
        **reliability,
    )


def check_label_span(labels: Sequence[float], metric: str, name: str) -> None:
    """Refuse labels whose spread (max - min) is past the float range (1.8e308): the ranks are
    fine, but the regret columns are in label units and would be infinite."""
    low, high = min(labels), max(labels)
    if high / 2 - low / 2 > sys.float_info.max / 2:
        raise ConfigError(f"the {metric} labels of {name} span {low:.3g}..{high:.3g}, more than "
                          f"a float holds, so the regret (in label units) is undefined; "
                          f"rescale the labels")


def _reliability(subset: Benchmark, repeat: Benchmark | None,
                 config: ScoreboardConfig) -> dict[str, Any]:
    """The board's ``reliability`` and ``at_noise`` fields; none without a second seed."""
    if repeat is None:
        return {}
    from vitnas.bench.noise import seed_reliability

    reliability = seed_reliability(subset, repeat, config.metric, config.resamples,
                                   config.level, config.seed)
    return {"at_noise": reliability.pop("at_noise"), "reliability": reliability}


def with_shape_baselines(board: Scoreboard, space: Any) -> Scoreboard:
    """A board written before the shape baselines, given their scores and the shape columns,
    computed from its architectures (``keys``) in ``space`` (the benchmark's, whose options
    size the layers ``logsize`` counts); nothing else changes. Judge it again with
    ``rejudge``."""
    import torch

    from vitnas.proxies.scoring import score_architecture

    archs = [space.validate(json.loads(key)) for key in board.keys]
    if not archs:
        raise ConfigError("this scoreboard lists no architectures (keys); it cannot be extended")
    missing = [p for p in BASELINES if get_proxy(p).spec not in board.scores]
    scores = {name: list(values) for name, values in board.scores.items()}
    dummy = torch.zeros(2, space.in_chans, 1, 1), torch.zeros(2, dtype=torch.long)
    for spec in missing:
        scores[spec] = []
    for arch in archs:
        results = score_architecture(space, arch, missing, *dummy, seed=0) if missing else []
        for spec, result in zip(missing, results):
            scores[spec].append(result.score)
    shape = shape_matrix(space, archs)
    return dataclasses.replace(
        board, scores=scores,
        shape={c: shape[:, j].tolist() for j, c in enumerate(SHAPE_COLUMNS)})


def rejudge(board: Scoreboard, truth: Sequence[float] | None = None,
            keep: Sequence[int] | None = None,
            config: ScoreboardConfig | None = None) -> Scoreboard:
    """Judge a scoreboard's stored per-architecture scores again, without scoring: fills the
    columns an older file lacks (its size is the ``params`` row when it stored no params), or
    judges against another target (``truth``, e.g. the mean of two training seeds) on the
    architectures ``keep`` (indices into the board). Every stored score gets a row (the
    shape baselines ``with_shape_baselines`` added too); the beyond-shape columns need the
    board's ``shape`` columns."""
    keep = list(range(board.n)) if keep is None else list(keep)
    if config is None:
        names = ScoreboardConfig.__dataclass_fields__
        config = ScoreboardConfig(**{k: tuple(v) if k == "proxies" else v
                                     for k, v in board.config.items() if k in names})
    target = np.asarray(board.accuracy if truth is None else truth, dtype=float)[keep]
    size = np.asarray(board.params or board.scores["params"], dtype=float)[keep]
    seconds = {row.proxy: np.full(len(keep), row.seconds) for row in board.rows}
    names = [*(row.proxy for row in board.rows),
             *(name for name in board.scores if name not in seconds)]
    scores = {name: np.asarray(board.scores[name], dtype=float)[keep] for name in names}
    seconds.update({name: np.full(len(keep), math.nan) for name in names if name not in seconds})
    baseline, rule = "", ""
    if board.shape:
        shape = np.column_stack([np.asarray(board.shape[c], dtype=float)[keep]
                                 for c in SHAPE_COLUMNS])
        rows, baseline, rule = judge_all(names, scores, seconds, target, config, size, shape)
    else:
        rows = [judge(name, scores[name], target, seconds[name], config, size) for name in names]
    return Scoreboard(
        benchmark=board.benchmark, space=board.space, metric=board.metric, split=board.split,
        n=len(keep), rows=rows, config=asdict(config),
        scores={k: [v[i] for i in keep] for k, v in board.scores.items()},
        accuracy=target.tolist(), params=size.tolist(),
        keys=[board.keys[i] for i in keep] if board.keys else [],
        random_regret=random_pick_regret(target, size, config.regret_window),
        shape={k: [v[i] for i in keep] for k, v in board.shape.items()},
        shape_baseline=baseline, shape_baseline_rule=rule,
        # the same ground truth keeps its measured reliability; another truth has not one
        **({"reliability": board.reliability, "at_noise": board.at_noise}
           if truth is None and keep == list(range(board.n)) else {}),
    )
