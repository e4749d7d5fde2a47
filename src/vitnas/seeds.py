"""The one range every seed vitnas takes must lie in: torch and numpy seeds are 64-bit, and a
seed outside it would either be refused deep inside a run or wrap around silently."""

from __future__ import annotations

from vitnas.errors import ConfigError

SEED_MAX = 2**63 - 1


def check_seed(value: int, what: str = "seed", room: int = 0) -> int:
    """``value`` if it is a seed in 0..SEED_MAX - room (room: offsets added for derived draws)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= SEED_MAX - room:
        top = "2^63-1" if room == 0 else f"2^63-{room + 1}"
        raise ConfigError(f"{what} must be an integer in 0..{top}, got {value!r}")
    return value
