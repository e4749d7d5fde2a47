"""The number rule every string grammar shares: a number is written in ASCII, without
underscores.

Python's ``int()`` and ``float()`` also read ``1_0`` (as 10), Arabic-Indic or fullwidth digits,
and ``str.isdigit`` passes a superscript two that ``int()`` then refuses. A typed option that is
read as some other number, or that crashes the parser, is worse than a refused one; and a value
written one way is one key in the score store.
"""

from __future__ import annotations


def plain_number(text: str) -> bool:
    """``text`` may be read by ``int()``/``float()``: ASCII only, no underscore."""
    return text.isascii() and "_" not in text


def plain_digits(text: str) -> bool:
    """``text`` is a non-negative integer in ASCII digits (an index, a count, a port)."""
    return text.isascii() and text.isdigit()
