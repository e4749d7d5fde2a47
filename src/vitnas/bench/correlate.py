"""The scoreboard: score every architecture of a benchmark with every proxy (through the score
store, so a re-run only computes what is new), then judge each proxy by its rank correlation with
the trained accuracy on a dev, test or full split.

The dev/test split is decided per architecture by a seeded hash of its key, so it stays the same
when a ground truth grows. Non-finite scores are dropped from that proxy's statistics and counted
in its ``failed`` column, never replaced.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vitnas.bench.files import Benchmark
from vitnas.bench.stats import (
    STATISTICS,
    Interval,
    bootstrap_interval,
    top_precision,
)
from vitnas.errors import ConfigError
from vitnas.proxies import expand_proxy_specs, get_proxy
from vitnas.proxies.scoring import proxy_batch, score_cached
from vitnas.store import ScoreStore, batch_identity

SPLITS = ("dev", "test", "all")
BASELINES = ("params", "flops")
# 'all' on the scoreboard: every registered proxy, the ViNTK family grid, and LGA after training
# (Mok et al. measure it at init and after a few epochs).
SCOREBOARD_ALL = ("all", "vintk-variants", "lga:epochs=1")


def scoreboard_specs(text: str | Sequence[str]) -> list[str]:
    """Expand the proxy list ('all' as above; 'registered' = every registered proxy at its
    defaults, without the variant grid), always adding the params and FLOPs baselines, without
    duplicates (two specs naming the same configuration count once)."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    parts = [item for part in parts
             for item in (SCOREBOARD_ALL if part.strip() == "all"
                          else ("all",) if part.strip() == "registered" else (part,))]
    expanded = expand_proxy_specs(parts)
    specs, seen = [], set()
    for spec in [*BASELINES, *expanded]:
        proxy = get_proxy(spec)
        if proxy.full_spec not in seen:
            seen.add(proxy.full_spec)
            specs.append(proxy.spec)
    return specs


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
        return {**asdict(self), "rows": [asdict(r) for r in self.rows]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scoreboard:
        """Rebuild a scoreboard from the JSON ``vitnas bench correlate --out`` wrote."""
        fields = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        rows = [ProxyRow(**{**r, **{k: tuple(r[k]) for k in r if k.endswith("_ci")}})
                for r in data["rows"]]
        return cls(**{**fields, "rows": rows})


def score_benchmark(
    bench: Benchmark,
    specs: Sequence[str],
    store: ScoreStore,
    batch: str = "cifar10",
    batch_size: int = 32,
    seed: int = 0,
    data_dir: str | None = None,
    progress: bool = False,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scores and seconds per proxy spec, one entry per record, all through ``store``."""
    space = bench.space
    x, y = proxy_batch(batch, batch_size, space.img_size, space.in_chans, space.num_classes,
                       seed, data_dir)
    batch_id = batch_identity(x, y)
    proxies = [get_proxy(s) for s in specs]
    scores = {p.spec: np.full(len(bench.records), math.nan) for p in proxies}
    seconds = {p.spec: np.full(len(bench.records), math.nan) for p in proxies}
    records = bench.records
    if progress:
        from tqdm import tqdm

        records = tqdm(records, unit="arch", desc=f"scoring {bench.name}")
    for i, record in enumerate(records):
        results = score_cached(store, space, record.arch, proxies, x, y, seed, batch_id)
        for proxy, result in zip(proxies, results):
            scores[proxy.spec][i] = result.score
            seconds[proxy.spec][i] = result.seconds
    return scores, seconds


def judge(
    proxy: str,
    score: np.ndarray,
    truth: np.ndarray,
    seconds: np.ndarray,
    config: ScoreboardConfig,
) -> ProxyRow:
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
    )


def correlate(
    bench: Benchmark,
    config: ScoreboardConfig,
    store: ScoreStore,
    data_dir: str | None = None,
    progress: bool = False,
) -> Scoreboard:
    """Score (cached) and judge every proxy on the chosen split of ``bench``."""
    accuracy = bench.values(config.metric)
    specs = scoreboard_specs(list(config.proxies))
    indices = [i for i in split_indices(bench, config.split, config.dev_fraction,
                                        config.split_seed) if accuracy[i] is not None]
    if len(indices) < 3:
        raise ConfigError(f"the {config.split} split of {bench.name} has {len(indices)} "
                          f"architectures with a {config.metric}; need at least 3")
    subset = Benchmark(bench.name, bench.space, [bench.records[i] for i in indices], bench.meta)
    scores, seconds = score_benchmark(subset, specs, store, config.batch, config.batch_size,
                                      config.seed, data_dir, progress)
    truth = np.array([accuracy[i] for i in indices], dtype=float)
    rows = [judge(spec, scores[spec], truth, seconds[spec], config) for spec in specs]
    return Scoreboard(
        benchmark=bench.name,
        space=bench.space.name,
        metric=config.metric,
        split=config.split,
        n=len(indices),
        rows=rows,
        config=asdict(config),
        scores={spec: [float(v) for v in scores[spec]] for spec in specs},
        accuracy=truth.tolist(),
    )
