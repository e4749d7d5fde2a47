"""The proxy protocol: every training-free score is a named, configurable, timed function.

A proxy takes a model, one data batch (inputs and labels) and a config, and returns a raw value
in its paper's convention plus a normalised ``score`` where higher always means better
(``score = direction * raw``). Configs are dataclasses, so any variant is addressable as a
string: ``get_proxy("vintk:mode=band,cutoff=0.5")`` (the grammar lives in ``proxies.spec``).
"""

from __future__ import annotations

import dataclasses
import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from vitnas.errors import ConfigError
from vitnas.registry import Registry

PROXIES: Registry = Registry("proxy")

# Cost classes, cheapest first (shown by `vitnas proxies`).
FREE = "free"  # analytic, no model run
FORWARD = "forward"  # forward passes only
BACKWARD = "backward"  # one or a few backward passes
PER_SAMPLE = "per-sample"  # per-sample gradients (an N x N kernel)
TRAINING = "training"  # needs some training


def ceiling(default: Any, most: float) -> Any:
    """A numeric config option with a ceiling, refused past it where a spec is parsed
    (``get_proxy``): an absurd value would otherwise overflow deep in the maths or run for days,
    instead of being one line. Ceilings sit far above any use in the papers."""
    return field(default=default, metadata={"max": most})


@dataclass(frozen=True)
class EmptyConfig:
    pass


def read_when(config_class: type, conditional: dict[str, str]) -> dict[str, str]:
    """Every option of ``config_class`` with when it is read: ``conditional``'s text, else
    always (a config's ``readers()``, shown by ``vitnas proxies NAME``)."""
    return {f.name: conditional.get(f.name, "always") for f in dataclasses.fields(config_class)}


def unread_options(config: Any) -> list[str]:
    """Options set away from their default that the config, as set, never reads.

    A config whose options depend on others (a mode, a schedule, a switch) defines
    ``read_options()`` (the options it reads) and ``setting()`` (what decides it, for the
    message); it may accept some unread values (``ACCEPTED_UNREAD``: values committed grids
    spell). Everything else it does not read would be silently ignored, so ``get_proxy``
    refuses it: ``vintk:mode=band,sigma=3`` is the same computation as ``vintk:mode=band``."""
    reads = getattr(config, "read_options", None)
    if reads is None:
        return []
    read, accepted = reads(), getattr(config, "ACCEPTED_UNREAD", {})
    return [f.name for f in dataclasses.fields(config)
            if f.name not in read and getattr(config, f.name) != f.default
            and str(getattr(config, f.name)) != accepted.get(f.name)]


@dataclass
class ProxyContext:
    """What a proxy may use beside the model: the batch, the architecture and a warning sink."""

    inputs: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    seed: int = 0
    space: Any = None
    arch: Any = None
    warnings: list[str] = field(default_factory=list)
    # Kernels already computed for this (architecture, seed, batch), shared by the proxies of
    # one scoring call: every proxy gets an identical fresh copy of the same initial model.
    cache: dict = field(default_factory=dict)

    def require_architecture(self, proxy: str) -> None:
        """Proxies that read the architecture (shape counts, brief training) need both."""
        if self.space is None or self.arch is None:
            raise ConfigError(f"{proxy} needs the search space and architecture (score "
                              f"through score_architecture, a search or a scoreboard)")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


@dataclass(frozen=True)
class ProxyResult:
    proxy: str
    score: float
    raw: float
    seconds: float
    warnings: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class Proxy(ABC):
    """Subclasses set the class attributes and implement ``compute`` (the raw value)."""

    name: ClassVar[str] = ""
    direction: ClassVar[int] = 1  # +1: a larger raw value is better; -1: a smaller one
    cost: ClassVar[str] = BACKWARD
    reference: ClassVar[str] = ""
    Config: ClassVar[type] = EmptyConfig
    # a count of the architecture's size or shape (``proxies.shape``): the rows a proxy must beat
    baseline: ClassVar[bool] = False
    # the fewest samples the value means anything on (2 for a kernel or statistic across them)
    min_batch: ClassVar[int] = 1

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @property
    def spec(self) -> str:
        """The canonical string of this proxy and its non-default options."""
        defaults = self.Config()
        changed = [
            f"{f.name}={getattr(self.config, f.name)}"
            for f in dataclasses.fields(self.config)
            if getattr(self.config, f.name) != getattr(defaults, f.name)
        ]
        return self.name + (":" + ",".join(changed) if changed else "")

    @property
    def full_spec(self) -> str:
        """Every option spelled out: the identity a store keys on, immune to default changes."""
        options = [f"{f.name}={_canonical(getattr(self.config, f.name), f.type)}"
                   for f in dataclasses.fields(self.config)]
        return self.name + (":" + ",".join(options) if options else "")

    @abstractmethod
    def compute(self, model: nn.Module, ctx: ProxyContext) -> float:
        """The raw value in the paper's convention."""

    def __call__(self, model: nn.Module, ctx: ProxyContext) -> ProxyResult:
        """Time ``compute`` under the context's seed; a non-finite value is kept (never replaced
        silently) and reported as a warning."""
        if len(ctx.inputs) < self.min_batch:
            ctx.warn(f"{self.name} needs a batch of at least {self.min_batch} samples, got "
                     f"{len(ctx.inputs)}")
            return ProxyResult(self.spec, math.nan, math.nan, 0.0, tuple(ctx.warnings))
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(ctx.seed)
            raw = float(self.compute(model, ctx))
        seconds = time.perf_counter() - start
        if not math.isfinite(raw):
            ctx.warn(f"{self.name}: non-finite value {raw}")
        return ProxyResult(self.spec, self.direction * raw, raw, seconds, tuple(ctx.warnings))


def _canonical(value: Any, kind: Any) -> Any:
    """A float-typed option prints as a float whether it came from a default (0) or a string."""
    return float(value) if kind in (float, "float") and not isinstance(value, bool) else value
