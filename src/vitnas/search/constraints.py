"""Budget windows and the feasibility check that runs before any proxy.

Analytic parameter and FLOP counts are free, so a candidate outside the window is rejected (and
counted) before a model is built; only measured latency costs a forward pass, and it is checked
last.
"""

from __future__ import annotations

import math
import random
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from vitnas.errors import ConfigError
from vitnas.formatting import UNITS, format_count
from vitnas.spaces.base import SearchSpace

_NUMBER = re.compile(r"^([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([KMGT]?)$", re.IGNORECASE)
WINDOW_PROBES = 2000


def parse_count(text: str, what: str, window: str) -> float:
    """``"5M"`` -> 5e6; also ``1.2G``, ``300K``, ``3e6``."""
    match = _NUMBER.match(text.strip())
    if not match:
        raise ConfigError(f"{what} window {window!r}: {text.strip()!r} is not a number like "
                          "5M, 1.2G, 300K or 3e6")
    value = float(match.group(1)) * UNITS[match.group(2).upper()]
    if not math.isfinite(value):
        raise ConfigError(f"{what} window {window!r}: {text.strip()!r} is past the float range "
                          f"(leave the side empty for no limit)")
    return value


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
