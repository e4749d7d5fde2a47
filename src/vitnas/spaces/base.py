"""The search-space protocol every space implements, and the registry that names them.

An architecture is a small frozen dataclass (hashable, so it can key caches and databases);
its JSON form is what users write and what result files store.
"""

from __future__ import annotations

import inspect
import json
import random
import re
import sys
import typing
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vitnas.errors import ArchitectureError, ConfigError
from vitnas.flops import LayerCost
from vitnas.paths import not_a_file
from vitnas.registry import Registry

SPACES: Registry = Registry("search space")


def register_presets(family: str, space_class: type, presets: dict[str, Any],
                     micro: Callable[[Any], Any]) -> None:
    """Register ``<family>-<size>`` and its CPU-sized ``<family>-<size>-micro`` for every
    preset; ``micro`` shrinks a preset's choices. Each factory passes the user's options on."""
    for size, choices in presets.items():
        for is_micro, chosen in ((False, choices), (True, micro(choices))):
            name = f"{family}-{size}" + ("-micro" if is_micro else "")
            SPACES.register(name, partial(space_class, name, chosen, is_micro=is_micro))


def as_rng(seed_or_rng: int | random.Random | None) -> random.Random:
    """A ``random.Random``: pure Python, so a seed means the same draw on every platform."""
    if isinstance(seed_or_rng, random.Random):
        return seed_or_rng
    return random.Random(seed_or_rng)


def choice_text(values: Sequence[Any]) -> str:
    return "{" + ", ".join(str(v) for v in values) + "}"


def check_choice(space: str, field: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise ArchitectureError(f"{field} {value!r} is not in {choice_text(allowed)} for {space}")


def check_keys(space: str, obj: dict, required: Sequence[str], aliases: dict[str, str]) -> dict:
    """Resolve aliases and reject unknown or missing keys (typos must not pass silently)."""
    resolved = {}
    for key, value in obj.items():
        canonical = aliases.get(key, key)
        if canonical not in required:
            raise ArchitectureError(
                f"unknown key {key!r} in {space} architecture (expected {', '.join(required)})"
            )
        if canonical in resolved:
            raise ArchitectureError(f"{space} architecture gives {canonical!r} twice")
        resolved[canonical] = value
    missing = [k for k in required if k not in resolved]
    if missing:
        raise ArchitectureError(f"{space} architecture is missing {', '.join(missing)}")
    return resolved


def unwrap_record(obj: Any) -> Any:
    """``{"arch": A, "params": ..., ...}`` (a line of ``vitnas sample``, a benchmark record, the
    output of ``vitnas train --json``) -> ``A``; anything else unchanged. No space has a gene
    called ``arch``, so the wrapper cannot be mistaken for an architecture."""
    if isinstance(obj, dict) and "arch" in obj:
        return obj["arch"]
    return obj


@dataclass(frozen=True)
class Shape:
    """The two shape counts of an architecture: ``depth`` is the number of blocks a sample
    passes through (transformer blocks; for a NAS-Bench-201 cell, the parametric ops on its
    longest path), ``width`` the embedding width (summed over stages where widths change; for a
    cell, its number of convolution edges)."""

    depth: int
    width: int


def build_seeded(factory, seed: int) -> nn.Module:
    """Run a model constructor under ``seed`` without disturbing the global RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


# ceilings on a space's input: far beyond any real use (a 16,384 px image is a million 16 px
# patches), low enough that the counts stay meaningful numbers instead of 20-digit garbage
MAX_IMG_SIZE = 16_384
MAX_IN_CHANS = 4_096
MAX_NUM_CLASSES = 1_000_000


class SearchSpace(ABC):
    """Describe, sample, vary, count and build the architectures of one space."""

    name: str = ""
    default_img_size = 224
    default_num_classes = 100

    def __init__(
        self,
        *,
        img_size: int | None = None,
        in_chans: int = 3,
        num_classes: int | None = None,
    ) -> None:
        self.img_size = self.default_img_size if img_size is None else img_size
        self.in_chans = in_chans
        self.num_classes = self.default_num_classes if num_classes is None else num_classes
        if self.img_size <= 0 or in_chans <= 0 or self.num_classes <= 0:
            raise ConfigError(f"{self.name}: img_size, in_chans and num_classes must be "
                              f"positive, got {self.img_size}, {in_chans}, {self.num_classes}")
        if self.num_classes == 1:  # a softmax over one class is constant: every gradient is 0
            raise ConfigError(f"{self.name}: num_classes must be at least 2 (one class gives a "
                              f"constant softmax, so every gradient and every label is trivial)")
        for option, value, ceiling in (("img_size", self.img_size, MAX_IMG_SIZE),
                                       ("in_chans", in_chans, MAX_IN_CHANS),
                                       ("num_classes", self.num_classes, MAX_NUM_CLASSES)):
            if value > ceiling:
                raise ConfigError(f"{self.name}: {option} {value:,} is past the ceiling of "
                                  f"{ceiling:,}")

    # --- the protocol -------------------------------------------------------------------------
    @abstractmethod
    def sample(self, seed: int | random.Random | None = None) -> Any:
        """A uniformly random architecture (per-gene uniform choice)."""

    @abstractmethod
    def mutate(self, arch: Any, seed: int | random.Random | None = None, **rates: float) -> Any:
        """A valid neighbour of ``arch``."""

    @abstractmethod
    def crossover(self, a: Any, b: Any, seed: int | random.Random | None = None) -> Any:
        """A valid child mixing the genes of ``a`` and ``b``."""

    @abstractmethod
    def from_json(self, obj: Any) -> Any:
        """Parse and validate the JSON form; raise ``ArchitectureError`` with a clear message."""

    @abstractmethod
    def to_json(self, arch: Any) -> Any:
        """The canonical JSON-serialisable form."""

    @abstractmethod
    def layer_costs(self, arch: Any) -> list[LayerCost]:
        """Analytic per-layer parameter and FLOP counts (see ``vitnas.flops``)."""

    @abstractmethod
    def build(self, arch: Any, seed: int = 0) -> nn.Module:
        """A freshly initialised standalone model; the same seed gives the same weights."""

    @abstractmethod
    def choices(self) -> dict[str, Any]:
        """The choice sets and options, for ``vitnas spaces``."""

    @abstractmethod
    def size(self) -> int:
        """How many distinct architectures the space holds."""

    # --- derived ------------------------------------------------------------------------------
    def validate(self, arch: Any) -> Any:
        """The space's own form of ``arch``: an architecture object, its JSON form (a plain
        dict), or a record that wraps one under ``"arch"`` (``vitnas sample``'s lines)."""
        if isinstance(arch, (dict, list, str, int)):
            return self.from_record(arch)
        return self.from_json(self.to_json(arch))

    def from_record(self, obj: Any) -> Any:
        """``from_json`` of ``obj`` or of the architecture a record wraps (``unwrap_record``).
        A record that also gives a gene beside ``arch`` is refused: which one was meant?"""
        arch = self.from_json(unwrap_record(obj))
        if isinstance(obj, dict) and "arch" in obj:
            genes = self.to_json(arch)
            inner = obj["arch"] if isinstance(obj["arch"], dict) else {}
            clash = sorted((set(obj) - {"arch"}) & (set(genes if isinstance(genes, dict)
                                                        else {}) | set(inner)))
            if clash:
                raise ArchitectureError(f"a record gives the architecture under 'arch' and "
                                        f"{', '.join(clash)} beside it: give one")
        return arch

    def parse(self, text: str) -> Any:
        """An architecture from JSON text (the CLI's input), bare or wrapped in a record."""
        from vitnas.formatting import loads_strict

        try:
            obj = loads_strict(text, "architecture")
        except ConfigError as err:
            raise ArchitectureError(str(err)) from None
        return self.from_record(obj)

    def key(self, arch: Any) -> str:
        """Canonical string identity of an architecture (for caches and databases)."""
        return json.dumps(self.to_json(arch), sort_keys=True, separators=(",", ":"))

    def params(self, arch: Any) -> int:
        """Exact parameter count; ``arch`` may be the plain JSON form, as ``build`` takes."""
        return sum(row.params for row in self.layer_costs(self._as_arch(arch)))

    def flops(self, arch: Any) -> int:
        """FLOPs per image (2 x MACs); ``arch`` may be the plain JSON form."""
        return sum(row.flops for row in self.layer_costs(self._as_arch(arch)))

    def shape(self, arch: Any) -> Shape:
        """Depth and width of ``arch``, the shape counts every proxy must beat (issue 23)."""
        raise ConfigError(f"{self.name} does not define depth and width")

    def _as_arch(self, arch: Any) -> Any:
        return self.validate(arch) if isinstance(arch, (dict, list, str, int)) else arch

    def example_input(self, batch: int = 2) -> torch.Tensor:
        return torch.randn(batch, self.in_chans, self.img_size, self.img_size)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "img_size": self.img_size,
            "in_chans": self.in_chans,
            "num_classes": self.num_classes,
            "size": self.size(),
            **self.choices(),
        }


# a benchmark index as an architecture (NAS-Bench-201): ASCII digits, a sign so that a
# negative one reaches the index's range check instead of the file system
INDEX = re.compile(r"-?[0-9]+")


JSON_LITERALS = ("null", "true", "false")


def read_architecture(space: SearchSpace, spec: str) -> Any:
    """An architecture from a JSON file path, ``-`` (stdin) or inline text (JSON, or for
    NAS-Bench-201 the bare string or index)."""
    if spec == "-":
        return space.parse(sys.stdin.read())
    stripped = spec.strip()
    if stripped[:1] in ("{", "[", "|", '"') or INDEX.fullmatch(stripped):
        return space.parse(stripped)
    if stripped in JSON_LITERALS and not Path(spec).exists():  # valid JSON, not a file's name
        return space.parse(stripped)
    if problem := not_a_file(spec):
        raise ArchitectureError(f"architecture file {spec!r} {problem}")
    path = Path(spec)
    try:
        return space.parse(path.read_text())
    except ArchitectureError as err:
        raise ArchitectureError(f"{spec}: {err}") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ArchitectureError(f"cannot read architecture file {spec!r}: {err}") from None


def get_space(name: str, **options: Any) -> SearchSpace:
    """Instantiate a registered space, e.g. ``get_space("autoformer-tiny", img_size=32)``.

    Options set to None are left at the space's defaults; an option the space does not take
    (``patch_size`` for nasbench201) is a ``ConfigError``.
    """
    factory = SPACES.get(name)
    given = {k: v for k, v in options.items() if v is not None}
    _check_option_types(name, factory, given)
    try:
        space = factory(**given)
    except TypeError as err:
        unexpected = re.search(r"unexpected keyword argument '(\w+)'", str(err))
        if unexpected:
            raise ConfigError(
                f"option {unexpected.group(1)!r} does not apply to search space {name}"
            ) from None
        raise ConfigError(f"search space {name} cannot take these options ({err})") from None
    space.options = given  # what ``respaced`` rebuilds it from
    return space


_SIMPLE_TYPES = (bool, int, float, str)


def _check_option_types(name: str, factory: Callable[..., Any], given: dict[str, Any]) -> None:
    """Refuse an option whose value has the wrong type for the space's constructor (a string
    image size from a benchmark file would otherwise fail deep inside, as a TypeError), read
    from the constructor's annotations; options typed beyond plain scalars are not checked."""
    target = getattr(factory, "func", factory)
    try:
        hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
    except Exception:  # annotations that cannot be resolved: nothing to check against
        return
    for key, value in given.items():
        allowed = set(typing.get_args(hints[key]) or (hints[key],)) - {type(None)} \
            if key in hints else set()
        if not allowed or not allowed <= set(_SIMPLE_TYPES):
            continue
        kind = next((t for t in _SIMPLE_TYPES if isinstance(value, t)), None)
        if kind not in allowed and not (kind is int and float in allowed):
            names = " or ".join(t.__name__ for t in _SIMPLE_TYPES if t in allowed)
            raise ConfigError(f"search space {name}: option {key} must be {names}, got "
                              f"{type(value).__name__} {value!r}"[:300])


def respaced(space: SearchSpace, **overrides: Any) -> SearchSpace:
    """The same space with some options changed (``img_size``, ``patch_size``, ...); an
    override of None drops the option back to the space's default. Options the space does not
    take are left out, so one call serves every family."""
    options = {**getattr(space, "options", {}), **overrides}
    factory = SPACES.get(space.name)
    target = getattr(factory, "func", factory)
    accepted = inspect.signature(target).parameters
    return get_space(space.name, **{k: v for k, v in options.items() if k in accepted})


def list_spaces() -> list[str]:
    return SPACES.names()
