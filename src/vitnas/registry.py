"""A name -> factory registry, so the CLI says ``--proxy vintk`` and nobody edits an if-chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from vitnas.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects (usually classes or factories) of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def add(value: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def get(self, name: str) -> T:
        if not isinstance(name, str):
            raise ConfigError(f"a {self.kind} name must be a string, got "
                              f"{type(name).__name__} {name!r}"[:300])
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose from: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
