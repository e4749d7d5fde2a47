"""Exceptions a user can act on.

The library raises these with a message that names the problem; ``reported`` (the edge of the
CLI and of every benchmark script) turns any ``VitnasError`` into one line on stderr and exit
code 2 instead of a traceback.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator


class VitnasError(Exception):
    """Base class for every error vitnas reports to a user."""


class ArchitectureError(VitnasError, ValueError):
    """An architecture is malformed or outside its search space."""


class DatasetError(VitnasError):
    """A dataset is missing, truncated or corrupt (the message names the file)."""


class ConfigError(VitnasError, ValueError):
    """An option, name or setting is unknown or out of range."""


def reported(run: Callable[[], int | None], prog: str = "vitnas") -> int:
    """Run a command's body and turn what a user can act on into one line and an exit code:
    a ``VitnasError`` or an ``OSError`` that no earlier check named (a name too long, no
    permission, a full disk) is 2, an interrupt 130 (what finished is kept by each command's
    own resume), a closed pipe 0, and an out-of-memory error the estimates missed 2."""
    try:
        code = run()
    except VitnasError as err:
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as err:
        name = str(err.filename or "")
        name = name if len(name) <= 80 else name[:77] + "..."
        print(f"{prog}: error: {err.strerror or err}" + (f": {name}" if name else ""),
              file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:
        if not out_of_memory(err):
            raise
        first = (str(err).splitlines() or [type(err).__name__])[0]  # a MemoryError may be bare
        # no flag names: not every command that can run out has --batch-size or --img-size
        print(f"{prog}: error: out of memory ({first[:160]}); try a smaller batch, image or "
              "model", file=sys.stderr)
        return 2
    return code if isinstance(code, int) else 0


def out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then act on it: for writing a file that a
    resume reads. An interrupt inside ``torch.save`` leaves its zip writer half-closed, which
    raises its own RuntimeError (a traceback, not the one line) and strands the temp file; a
    write of seconds is worth finishing first. Signals reach the main thread only, so elsewhere
    the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):  # Python's default raises KeyboardInterrupt here
                previous(signal.SIGINT, None)
            elif previous in (signal.SIG_DFL, None):  # None: a handler set outside Python
                raise KeyboardInterrupt
            # SIG_IGN (a pool worker): the interrupt was never this process's to act on
