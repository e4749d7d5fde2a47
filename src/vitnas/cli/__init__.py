"""The ``vitnas`` command line: parse arguments, call one library function, format the result.

One module per command group, each holding its parsers beside its handlers (``add_parsers``);
``common`` has what they share. Every ``VitnasError`` becomes one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from vitnas import __version__
from vitnas.cli import bench, calibrate, proxies, revit, search, spaces
from vitnas.cli.common import MAIN_JOB, Parser, usable_threads, usable_workers
from vitnas.errors import VitnasError

__all__ = ["MAIN_JOB", "build_parser", "main"]

GROUPS = (spaces, proxies, search, bench, calibrate, revit)  # `vitnas --help` order


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="vitnas", description="Training-free NAS for Vision Transformers.",
                    epilog=f"the main job (as in the README): {MAIN_JOB}")
    parser.add_argument("--version", action="version", version=f"vitnas {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, or a one-line usage error
        return stop.code if isinstance(stop.code, int) else 0
    try:
        _cap_to_cores(args)
        args.func(args)
    except VitnasError as err:
        print(f"vitnas: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("vitnas: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as err:  # a path the file system refuses (a name too long, no permission,
        # a full disk) that no earlier check named: one line, not a traceback
        name = str(err.filename or "")
        name = name if len(name) <= 80 else name[:77] + "..."
        print(f"vitnas: error: {err.strerror or err}" + (f": {name}" if name else ""),
              file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as err:  # the estimates before the work missed it
        if not _out_of_memory(err):
            raise
        print(f"vitnas: error: out of memory ({str(err).splitlines()[0][:160]}); try a smaller "
              "--batch-size or --img-size", file=sys.stderr)
        return 2
    return 0


def _cap_to_cores(args: argparse.Namespace) -> None:
    """Every command's --workers and --threads capped at this machine's cores in one place,
    so no command can forget it (a Ray backend counts its cluster's own)."""
    backend = getattr(args, "backend", "local")
    if getattr(args, "workers", None) is not None:
        args.workers = usable_workers(args.workers, backend)
    if getattr(args, "threads", None) is not None:
        args.threads = usable_threads(args.threads, backend)


def _out_of_memory(err: BaseException) -> bool:
    text = str(err)
    return (isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in text or "out of memory" in text)
