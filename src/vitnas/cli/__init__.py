"""The ``vitnas`` command line: parse arguments, call one library function, format the result.

One module per command group, each holding its parsers beside its handlers (``add_parsers``);
``common`` has what they share. Every ``VitnasError`` becomes one line on stderr and exit
code 2.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from vitnas import __version__
from vitnas.cli import bench, calibrate, proxies, revit, search, spaces
from vitnas.cli.common import MAIN_JOB, Parser, usable_threads, usable_workers
from vitnas.errors import reported

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

    def run() -> None:
        _cap_to_cores(args)
        args.func(args)

    return reported(run)


def _cap_to_cores(args: argparse.Namespace) -> None:
    """Every command's --workers and --threads capped at this machine's cores in one place,
    so no command can forget it (a Ray backend counts its cluster's own)."""
    backend = getattr(args, "backend", "local")
    if getattr(args, "workers", None) is not None:
        args.workers = usable_workers(args.workers, backend)
    if getattr(args, "threads", None) is not None:
        args.threads = usable_threads(args.threads, backend)
