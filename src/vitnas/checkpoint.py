"""Files a run writes to continue later: ``torch.save`` dicts tagged with a ``format`` string,
written atomically and read back with ``weights_only`` (never a pickle of code), and the
training state a trainer saves after every epoch so that a killed run resumes where it stopped
(``vitnas train --resume``, ``vitnas revit train --resume``) with the weights a run that was
never interrupted would have.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from vitnas.errors import ConfigError, interrupts_deferred
from vitnas.paths import not_a_file


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` atomically: a kill at any moment leaves the old file or the new one; a
    Ctrl-C waits for the write to finish (``interrupts_deferred``), and a failed write leaves
    no temp file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with interrupts_deferred():
        try:
            with open(temporary, "wb") as handle:
                torch.save(payload, handle)
                handle.flush()
                os.fsync(handle.fileno())
            temporary.replace(path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return path


def load(path: str | Path, expected: str) -> dict[str, Any]:
    if not str(path).strip():
        raise ConfigError(f"an input file name is empty; name a {expected} file")
    path = Path(path)
    if problem := not_a_file(path):
        raise ConfigError(f"{path}: {'no such file' if problem == 'not found' else problem}")
    try:
        # a foreign pickle makes torch warn (protocol, unsupported globals) before it fails:
        # the one-line error below says all the user can act on
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise ConfigError(f"{path}: not a readable vitnas file ({type(exc).__name__})") from exc
    found = payload.get("format") if isinstance(payload, dict) else None
    if found != expected:
        raise ConfigError(f"{path}: expected a {expected} file, found {found or 'something else'}")
    return payload


def state_path_for(out: str | Path) -> Path:
    """Where a trainer writing OUT keeps its per-epoch training state: OUT with its suffix
    replaced, model.pt -> model.state.pt."""
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


def resumes(state_path: str | Path | None, resume: bool) -> bool:
    """Whether a trainer continues from ``state_path``: asked to and a state is there. A path
    that exists but is not a file (a directory) is refused before any training, not after
    the first epoch, when the state could not be saved."""
    if state_path is None:
        return False
    path = Path(state_path)
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path}: the training state's place is taken by something that is "
                          f"not a file; move it or use another --out")
    return resume and path.is_file()


def restore_training_state(path: str | Path, saved: dict[str, Any], model: torch.nn.Module,
                           optimizer: torch.optim.Optimizer,
                           total_steps: int) -> tuple[int, int, list[float], float]:
    """Load a saved state's weights and optimizer moments; (step, epoch, losses, seconds).
    A state of the right run whose fields are damaged (missing, of the wrong type or shape, a
    step past the run's end) is one line, not a traceback or a run that claims to be done."""
    try:
        step, epoch, losses, seconds = (saved["step"], saved["epoch"], saved["losses"],
                                        saved["seconds"])
        if (not all(type(v) is int for v in (step, epoch)) or not 0 <= step <= total_steps
                or epoch < 0 or not isinstance(losses, list) or len(losses) != step
                or isinstance(seconds, bool) or not isinstance(seconds, (int, float))):
            raise ValueError("step, epoch, losses or seconds out of place")
        losses = [float(loss) for loss in losses]
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = " ".join(str(exc).split())[:160] or type(exc).__name__
        raise ConfigError(f"{path}: damaged training state ({reason}); drop --resume to "
                          f"start over") from None
    return step, epoch, losses, float(seconds)
