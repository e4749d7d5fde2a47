"""Training noise in a ground truth: how well any proxy can possibly rank it, and the mean of
repeated trainings to rank against.

Noise model (classical test theory): architecture i trained under seed s reaches
``a_s(i) = f(i) + e_s(i)``, with the seed noise e independent across architectures and seeds,
of one variance sigma^2, and (f, a_s) jointly normal. Then the Pearson correlation of two seeds
is the reliability R = var f / (var f + sigma^2), and for bivariate normals Kendall's tau is
(2/pi) arcsin(r) (Greiner's relation, Kendall 1949). A perfect proxy (f itself) judged against
the mean of k seeds correlates at r = sqrt(k R / (1 + (k - 1) R)) (Spearman-Brown), so its tau
is the ceiling. Tau between two seeds is *not* that ceiling: it compares two noisy copies, the
ceiling compares truth with one (for seed-vs-seed tau 0.31 the one-seed ceiling is about 0.48).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from vitnas.bench.files import Benchmark, BenchmarkRecord
from vitnas.bench.stats import bootstrap_interval, kendall_tau_b
from vitnas.errors import ConfigError

# below this seed-vs-seed tau a board is "at noise": two trainings of the same architectures
# disagree on so many pairs that no proxy's tau can be told from another's (issue 25)
AT_NOISE = 0.5


def reliability(seed_tau: float) -> float:
    """R, the seed-vs-seed Pearson correlation implied by their Kendall tau (Greiner's relation
    inverted); no agreement (tau <= 0) means no signal, R = 0."""
    return max(0.0, math.sin(math.pi / 2 * min(1.0, seed_tau)))


def noise_ceiling(seed_tau: float, seeds: int = 1) -> float:
    """Expected Kendall tau of a perfect proxy against the mean of ``seeds`` trainings, given
    the tau two single trainings reach with each other (model in the module docstring)."""
    if seeds < 1:
        raise ValueError(f"seeds must be at least 1, not {seeds}")
    r = reliability(seed_tau)
    if r == 0:
        return 0.0
    correlation = math.sqrt(seeds * r / (1 + (seeds - 1) * r))
    return 2 / math.pi * math.asin(min(1.0, correlation))


def simulate_noise_ceiling(seed_tau: float, n: int, seeds: int = 1, trials: int = 1000,
                           seed: int = 0) -> tuple[float, float]:
    """Monte Carlo of the same model on ``n`` architectures: (mean tau of the truth against the
    mean of ``seeds`` trainings, mean tau between two single trainings). A check on
    ``noise_ceiling`` that includes the finite-n behaviour of tau-b."""
    r = reliability(seed_tau)
    if r <= 0:
        return 0.0, 0.0
    noise_sd = math.sqrt((1 - r) / r)
    rng = np.random.default_rng(seed)
    ceiling, agreement = [], []
    for _ in range(trials):
        truth = rng.normal(size=n)
        runs = truth + noise_sd * rng.normal(size=(max(2, seeds), n))
        ceiling.append(kendall_tau_b(truth, runs[:seeds].mean(axis=0)))
        agreement.append(kendall_tau_b(runs[0], runs[1]))
    return float(np.mean(ceiling)), float(np.mean(agreement))


def paired_seeds(first: Benchmark, second: Benchmark,
                 metric: str) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Indices into ``first`` of the architectures both benchmarks trained (matched by
    architecture key), with their ``metric`` under each."""
    other = {second.space.key(r.arch): v for r, v in zip(second.records, second.values(metric))}
    indices, a, b = [], [], []
    for i, (record, value) in enumerate(zip(first.records, first.values(metric))):
        repeat = other.get(first.space.key(record.arch))
        if value is not None and repeat is not None:
            indices.append(i)
            a.append(value)
            b.append(repeat)
    return indices, np.array(a), np.array(b)


def seed_reliability(first: Benchmark, second: Benchmark, metric: str, resamples: int = 1000,
                     level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """How far a ground truth can be trusted, from the architectures ``second`` trained again
    under another seed: their seed-vs-seed Kendall tau with its bootstrap interval (pairs of
    trainings resampled together), the number of such architectures, the one-seed noise
    ceiling it implies (``noise_ceiling``) and ``at_noise``: tau below ``AT_NOISE`` (or no tau
    at all), where a board cannot separate proxies. NaN where there is nothing to measure."""
    if first.space.name != second.space.name:
        raise ConfigError(f"{second.name} is a ground truth of {second.space.name}, not of "
                          f"{first.space.name}: it cannot repeat {first.name}'s trainings")
    _, a, b = paired_seeds(first, second, metric)
    if len(a) < 3:
        raise ConfigError(f"{second.name} trained {len(a)} of the architectures of "
                          f"{first.name} again (with a {metric}); a seed-vs-seed tau needs at "
                          "least 3")
    tau = kendall_tau_b(a, b)
    interval = bootstrap_interval(a, b, kendall_tau_b, resamples, level, seed)
    return {"seed_kendall": tau, "seed_kendall_ci": [interval.low, interval.high],
            "pairs": len(a), "ceiling": noise_ceiling(tau) if math.isfinite(tau) else math.nan,
            "second_seed": second.name, "at_noise": not tau >= AT_NOISE}


def average_seeds(first: Benchmark, second: Benchmark, metric: str,
                  both_only: bool = False) -> Benchmark:
    """``first`` with ``metric`` replaced by the mean of both trainings where both exist (their
    noise variance halves there) and ``<metric>_seeds`` counting them; ``both_only`` keeps only
    the architectures trained twice, so every target has the same noise."""
    indices, a, b = paired_seeds(first, second, metric)
    mean = dict(zip(indices, a / 2 + b / 2))  # no overflow near 1e308
    records = []
    for i, record in enumerate(first.records):
        if both_only and i not in mean:
            continue
        values = dict(record.values)
        values[metric] = float(mean[i]) if i in mean else values.get(metric)
        values[f"{metric}_seeds"] = 2 if i in mean else 1
        records.append(BenchmarkRecord(record.arch, values))
    meta = {**first.meta, "averaged_with": second.name}
    return Benchmark(first.name, first.space, records, meta)
