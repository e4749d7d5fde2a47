"""Numbers and tables for people, and headless plots: one home for what every report prints.

Torch-free, so the CLI can import it without slowing ``vitnas --help``.
"""

from __future__ import annotations

import contextlib
import json
import math
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

UNITS = {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def format_count(value: float) -> str:
    """``5000000`` -> ``5M``: exact as written (``%g``), for windows a user types back in."""
    for unit in ("T", "G", "M", "K"):
        if abs(value) >= UNITS[unit]:
            return f"{value / UNITS[unit]:g}{unit}"
    return f"{value:g}"


def human(value: float) -> str:
    """1234567 -> '1.23M' (tables only; JSON keeps exact integers)."""
    for unit in ("G", "M", "K"):
        if abs(value) >= UNITS[unit]:
            return f"{value / UNITS[unit]:.2f}{unit}"
    return f"{value:g}"


def text_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns under a dashed rule, for a terminal."""
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in cells]
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub Markdown table; missing cells are empty."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def strict_json(value: Any) -> Any:
    """``value`` with every non-finite float (NaN, +-inf, numpy's too) replaced by ``None``:
    Python's ``json`` writes them as ``NaN``/``Infinity``, tokens that strict parsers (``jq``,
    browsers, most other languages) reject, so a result file must say ``null`` ("undefined")."""
    if isinstance(value, Mapping):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    if isinstance(value, bool):
        return value
    if isinstance(value, numbers.Integral):  # numpy's integers too
        return int(value)
    if isinstance(value, numbers.Real):  # numpy's floats too
        number = float(value)
        return number if math.isfinite(number) else None
    return value


# where a non-finite number means something (a proxy's -inf ranks last; NaN is "no score"),
# a file that must read back keeps it as one of these words rather than null
NON_FINITE_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def nonfinite_word(value: Any) -> Any:
    """A non-finite float as ``"nan"``, ``"inf"`` or ``"-inf"``; anything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def from_nonfinite_word(value: Any) -> Any:
    """The inverse of :func:`nonfinite_word`."""
    return NON_FINITE_WORDS.get(value, value) if isinstance(value, str) else value


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


def loads_strict(text: str, what: str) -> Any:
    """JSON text -> value, or a ``ConfigError`` whose one line says what is wrong with
    ``what``: bad syntax, nesting too deep, a number too long for Python to read (over 4300
    digits), or a key given twice (JSON readers resolve a repeated key differently, and a
    silent last-wins would hide a typo)."""
    from vitnas.errors import ConfigError

    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as err:
        raise ConfigError(f"{what} is not valid JSON: {err.msg} at line {err.lineno} column "
                          f"{err.colno}") from None
    except _DuplicateKey as err:
        raise ConfigError(f"{what} gives the key {err.args[0]!r} twice") from None
    except RecursionError:
        raise ConfigError(f"{what} is nested too deeply") from None
    except ValueError as err:  # e.g. an integer beyond Python's digit limit
        raise ConfigError(f"{what} cannot be read: {str(err).split(';')[0]}") from None


def dumps_strict(value: Any, **options: Any) -> str:
    """``json.dumps`` of :func:`strict_json` (``allow_nan=False``, so nothing slips through)."""
    return json.dumps(strict_json(value), allow_nan=False, **options)


def headless_pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend: reports are written on machines
    without a display (CI, a GPU node), and a GUI backend would fail or pop up windows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class _NoBar:
    """What ``progress_bar`` yields when no bar is wanted: every call draws nothing."""

    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass


@contextlib.contextmanager
def progress_bar(enabled: bool, **options: Any) -> Iterator[Any]:
    """A tqdm bar (``options`` are tqdm's), or one that draws nothing, closed however the block
    ends: an error's or an interrupt's one line then comes after the bar, not inside its last
    redraw."""
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    bar = tqdm(**options)
    try:
        yield bar
    finally:
        bar.close()
