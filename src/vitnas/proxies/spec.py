"""The proxy spec grammar, in one place: ``vintk:mode=band,cutoff=0.5``, comma lists of specs,
and the list aliases (``all``, ``registered``, ``vintk-variants``).

Parse once at the edge (the CLI, a benchmark script) with :func:`resolve_proxies`; everything
after that passes ``Proxy`` objects or their canonical ``spec`` strings, which re-parse to the
same configuration.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from vitnas.errors import ConfigError
from vitnas.grammar import plain_number
from vitnas.proxies.base import PROXIES, Proxy, unread_options
from vitnas.registry import Registry

# A list alias expands to several specs; each is a function, so it sees proxies registered later.
ALIASES: Registry[Callable[[], list[str]]] = Registry("proxy list alias")


def list_proxies() -> list[str]:
    return PROXIES.names()


def _vintk_variants() -> list[str]:
    from vitnas.proxies.vintk import ALL_VARIANTS

    return list(ALL_VARIANTS)


def training_free_proxies() -> list[str]:
    """Every registered proxy that trains nothing (``brief`` trains for a minute)."""
    from vitnas.proxies.base import TRAINING

    return [name for name in list_proxies() if PROXIES.get(name).cost != TRAINING]


ALIASES.register("registered", training_free_proxies)
ALIASES.register("vintk-variants", _vintk_variants)
# Everything a scoreboard measures: every proxy at its defaults, the whole ViNTK grid, and LGA
# after one epoch (Mok et al. measure it at initialisation and after a little training) and
# brief training at its defaults.
ALIASES.register("all", lambda: [*list_proxies(), *_vintk_variants(), "lga:epochs=1"])


def parse_proxy_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"vintk:mode=band,cutoff=0.5"`` -> ``("vintk", {"mode": "band", "cutoff": "0.5"})``."""
    name, _, options = spec.strip().partition(":")
    pairs: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in options.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ConfigError(f"proxy option {item!r} in {spec!r} must look like key=value")
        if key.strip() in pairs:
            raise ConfigError(f"proxy option {key.strip()!r} is given twice in {spec!r}")
        pairs[key.strip()] = value.strip()
    return name.strip(), pairs


def _coerce(value: str, kind: Any, key: str, proxy: str) -> Any:
    kind = {"int": int, "float": float, "bool": bool, "str": str}.get(kind, kind)
    try:
        if kind is bool:
            if value.lower() in ("1", "true", "yes", "on"):
                return True
            if value.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        # a spec names one number one way, so the store's key for it is one string
        if kind in (int, float) and not plain_number(value):
            raise ValueError
        coerced = kind(value)
        if kind is float and not math.isfinite(coerced):
            raise ValueError
        return coerced
    except (TypeError, ValueError):
        raise ConfigError(
            f"option {key}={value!r} of proxy {proxy} is not a valid "
            f"{'finite float' if kind is float else kind.__name__}"
        ) from None


def get_proxy(spec: str | Proxy) -> Proxy:
    """A configured proxy from its string form (safe parsing, never ``eval``); a ``Proxy``
    passes through unchanged."""
    if isinstance(spec, Proxy):
        return spec
    # the scoreboard's ensemble rows (bench.correlate.ENSEMBLE_PREFIXES), not proxies
    if spec.strip().partition(":")[0].strip() in ("ens", "logrank"):
        raise ConfigError(f"{spec.strip()!r} is an ensemble, a scoreboard row over its members' "
                          f"ranks: use it in `vitnas bench correlate --proxies`; a search "
                          f"combines proxies with --proxy a,b --aggregate")
    cls = PROXIES.get(spec.strip().partition(":")[0].strip())  # an unknown name first
    name, pairs = parse_proxy_spec(spec)
    fields = {f.name: f for f in dataclasses.fields(cls.Config)}
    options = {}
    for key, value in pairs.items():
        if key not in fields:
            valid = ", ".join(fields) or "none"
            raise ConfigError(f"proxy {name} has no option {key!r} (options: {valid})")
        options[key] = _coerce(value, fields[key].type, key, name)
        most = fields[key].metadata.get("max")
        if most is not None and options[key] > most:
            shown = f"{int(most):,}" if float(most).is_integer() else f"{most:g}"
            raise ConfigError(f"option {key}={value} of proxy {name} is past its ceiling of "
                              f"{shown}")
    config = cls.Config(**options)
    if hasattr(config, "check"):
        config.check()
    unread = unread_options(config)
    if unread:
        given = ", ".join(f"{key}={getattr(config, key)}" for key in unread)
        raise ConfigError(f"{name} with {config.setting()} does not read {given}: leave it out "
                          f"(`vitnas proxies {name}` says when each option is read)")
    return cls(config)


def expand_proxy_specs(specs: str | Sequence[str | Proxy]) -> list[str | Proxy]:
    """Split a comma list where a new spec starts (``a,b:x=1,y=2,c``) and expand the aliases.

    A comma starts a new spec unless the item is ``key=value`` without a ``:``; such items
    continue the current spec's options. Specs are returned as written (ensemble rows such as
    ``ens:a+b`` included), not yet parsed; ``Proxy`` objects in a sequence pass through.
    """
    parts = specs.split(",") if isinstance(specs, str) else list(specs)
    out: list[str | Proxy] = []
    for part in parts:
        if isinstance(part, Proxy):
            out.append(part)
            continue
        part = part.strip()
        if not part:
            continue
        if "=" in part and ":" not in part and out and isinstance(out[-1], str):
            out[-1] += ("," if ":" in out[-1] else ":") + part
        elif part in ALIASES:
            out.extend(ALIASES.get(part)())
        else:
            out.append(part)
    return out


def resolve_proxies(specs: str | Sequence[str | Proxy]) -> list[Proxy]:
    """The configured proxies a list names, parsed once; a configuration named twice (say
    ``vintk`` and ``vintk:sigma=<default>``) is kept once, in first-seen order."""
    proxies, seen = [], set()
    for text in expand_proxy_specs(specs):
        proxy = get_proxy(text)
        if proxy.full_spec not in seen:
            seen.add(proxy.full_spec)
            proxies.append(proxy)
    return proxies
