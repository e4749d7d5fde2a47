"""Files a run writes to continue later: ``torch.save`` dicts tagged with a ``format`` string,
written atomically and read back with ``weights_only`` (never a pickle of code), and the
training state a trainer saves after every epoch so that a killed run resumes where it stopped
(``vitnas train --resume``, ``vitnas revit train --resume``) with the weights a run that was
never interrupted would have.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from vitnas.errors import ConfigError


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        torch.save(payload, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)  # atomic: a kill at any moment leaves the old file or the new one
    return path


def load(path: str | Path, expected: str) -> dict[str, Any]:
    if not str(path).strip():
        raise ConfigError(f"an input file name is empty; name a {expected} file")
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"{path}: not a readable vitnas file ({type(exc).__name__})") from exc
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != expected:
        raise ConfigError(f"{path}: expected a {expected} file, found {found or 'something else'}")
    return payload


def state_path_for(out: str | Path) -> Path:
    """Where a trainer writing OUT keeps its per-epoch training state: OUT.state.pt."""
    out = Path(out)
    return out.with_name(out.stem + ".state.pt")


def plain(value: Any) -> Any:
    """JSON-like form (tuples -> lists) so identities compare equal across a save/load."""
    return json.loads(json.dumps(value))


def load_training_state(path: str | Path, identity: dict[str, Any], fmt: str) -> dict[str, Any]:
    """A saved training state, refused (one line) when it belongs to another run: ``identity``
    names what makes a run (its config, recipe and data)."""
    state = load(path, fmt)
    saved = state.get("identity")
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: training state has no run identity")
    mine = plain(identity)
    differ = sorted(k for k in set(saved) | set(mine) if saved.get(k) != mine.get(k))
    if differ:
        key, before, now = differ[0], saved.get(differ[0]), mine.get(differ[0])
        if isinstance(before, dict) and isinstance(now, dict):
            inner = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))[0]
            key, before, now = f"{key}.{inner}", before.get(inner), now.get(inner)
        raise ConfigError(f"{path}: saved for another run ({key} was {before!r}, now {now!r}); "
                          f"drop --resume or use another --out")
    return state
